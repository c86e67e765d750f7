"""Mail in tests: a real SMTP server (aiosmtpd) on loopback, in the test's own event loop, keeping what it receives;
and the app served with its links pointing at itself and its mail sent there."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator, Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import httpx
from aiosmtpd.smtp import SMTP, Envelope, Session

from services.all import app as gossip_app
from shared.settings import Settings
from tests.support.servers import LiveServer, loopback_socket


class Inbox:
    """The aiosmtpd handler: every message accepted, parsed, in order; `refuse` messages are turned away first with a
    temporary failure, as a server that is busy would."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []  # each message as it came, for what a parser would smooth over
        self.refused = 0
        self.refuse = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refused < self.refuse:
            self.refused += 1
            return "451 4.3.0 Try again later"
        assert isinstance(envelope.content, bytes)
        message = BytesParser(policy=policy.default).parsebytes(envelope.content)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.raw.append(envelope.content)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [message for message in self.messages if message["To"] == address]


@contextlib.asynccontextmanager
async def smtp_server() -> AsyncIterator[tuple[str, Inbox]]:
    """Yields the SMTP_URL to reach it and its inbox."""
    inbox = Inbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(inbox, hostname="inbox.test"), "127.0.0.1", 0)
    try:
        yield f"smtp://127.0.0.1:{server.sockets[0].getsockname()[1]}", inbox
    finally:
        server.close()
        await server.wait_closed()


def part(message: EmailMessage, subtype: str) -> str:
    """The text of a message's text/plain or text/html part, with its lines ended as Python's are (SMTP sends CRLF)."""
    body = message.get_body(preferencelist=(subtype,))
    assert body is not None and body.get_content_type() == f"text/{subtype}", message
    content = body.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def link(message: EmailMessage, path: str) -> str:
    """The first absolute link to `path` in a message's text part."""
    found = re.search(rf"https?://\S+{re.escape(path)}\?token=[\w.\-%=]+", part(message, "plain"))
    assert found, part(message, "plain")
    return found.group(0)


def csrf_in(page: httpx.Response) -> str:
    """The CSRF token of the form on a page already fetched."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


async def follow(http: httpx.AsyncClient, link: str) -> httpx.Response:
    """A verification link, as a person follows it: opens it, which asks, and presses its button; or the page that
    said why not."""
    page = await http.get(link)
    if 'id="verify"' not in page.text:
        return page
    return await http.post(link, data={"csrf_token": csrf_in(page)})


@contextlib.contextmanager
def mailing_server(settings: Settings, smtp_url: str, **more: Any) -> Iterator[tuple[str, Settings]]:
    """The app on a live uvicorn whose PUBLIC_URL is its own address and whose mail goes to `smtp_url`; yields its URL
    and the settings it runs with. Its socket is bound first, so the links can name its port."""
    sock = loopback_socket()
    served = dataclasses.replace(
        settings, smtp_url=smtp_url, public_url=f"http://127.0.0.1:{sock.getsockname()[1]}", **more
    )
    live = LiveServer(gossip_app.create(served), sock=sock).start()
    try:
        yield live.url, served
    finally:
        live.stop()
