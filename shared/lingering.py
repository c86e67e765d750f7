"""Lingering close: an answer given before the request's body was read reaches the client instead of a reset.

A server that answers early (a 413 decided from Content-Length, a 401, 404 or 415 before reading) and closes its
socket with the client's bytes still unread makes the kernel reset the connection, and a client that sends its whole
body before reading, as most scripts do, reads that reset instead of the answer. So, as nginx's lingering close does,
the answer is written whole, then what the client still sends is read and discarded, up to DRAIN_BYTES and for at
most DRAIN_TIMEOUT seconds, and only then does the response end and the connection close.

A client that waits on `Expect: 100-continue` is left waiting: asking for the body would tell it to send what is
refused anyway. Around the whole app, outside Starlette's own error handling, so that every answer is covered, its
500 included."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.settings import Settings

DEFAULTS = Settings(secret_key="")  # the bounds, for a server whose lifespan gave no settings


def _bounds(scope: Scope) -> tuple[int, float]:
    settings: Settings = scope.get("state", {}).get("settings") or DEFAULTS
    return settings.drain_bytes, settings.drain_timeout


def _sends_a_body(headers: Headers) -> bool:
    return headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers


async def _discard(receive: Receive, most: int, timeout: float) -> None:
    """Reads until the body ends, the client goes, `most` bytes were read or `timeout` seconds passed."""
    read = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while read <= most:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return
                read += len(message.get("body", b""))


async def answer_then_drain(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Runs `app`; if it answers without having read the whole body, the answer says `Connection: close`, is written
    whole, and its end waits for the rest of the body to be discarded."""
    headers = Headers(scope=scope)
    if scope["type"] != "http" or not _sends_a_body(headers) or headers.get("expect", "").lower() == "100-continue":
        await app(scope, receive, send)
        return
    read_all, lingering = False, False

    async def noting_receive() -> Message:
        nonlocal read_all
        message = await receive()
        read_all = read_all or message["type"] != "http.request" or not message.get("more_body", False)
        return message

    async def lingering_send(message: Message) -> None:
        nonlocal lingering
        if message["type"] == "http.response.start" and not read_all:
            lingering = True
            MutableHeaders(scope=message)["connection"] = "close"
        elif message["type"] == "http.response.body" and lingering and not message.get("more_body", False):
            await send({**message, "more_body": True})
            most, timeout = _bounds(scope)
            declared = headers.get("content-length", "")
            if not (declared.isdigit() and int(declared) > most):  # past the bound, draining would be in vain
                await _discard(receive, most, timeout)
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        await send(message)

    await app(scope, noting_receive, lingering_send)
