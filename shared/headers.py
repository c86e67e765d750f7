"""Headers that harden every answer, and those that harden pages."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Pages load their scripts and styles from /static only (no inline script), connect only to this origin, are
# framed by no one and name only this site in a Referer.
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-frame-options": "DENY",  # frame-ancestors, for browsers that predate it
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


class Nosniff:
    """`X-Content-Type-Options: nosniff` on every answer, errors and static files included: a browser must not
    read a JSON error or an update's text as a script or a page."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["x-content-type-options"] = "nosniff"
            await send(message)

        await self.app(scope, receive, send_nosniff)
