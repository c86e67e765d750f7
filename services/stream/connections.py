"""The server's own connection behind a request, for the one thing ASGI cannot say: drop it now.

A response that ends is followed by a graceful close, which waits until the client has read everything sent; a
client that never reads again would hold the socket for ever. The stream service drops such feeds, and needs the
connection's transport to abort it. uvicorn's `send` is a method of the request's cycle, which holds the transport;
`NotedConnection`, around the whole app, notes that `send` before any middleware wraps it (the server's own, which a
feed's frames may also take past the middleware: services/stream/direct.py). Under a server that keeps the
transport elsewhere there is none, and a dropped feed falls back to cancelling its send.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from typing import Any, Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

SEND = "gossip.send"


class Transport(Protocol):
    """What is used of an asyncio (or uvloop) transport, whose classes uvloop does not share."""

    def abort(self) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def get_extra_info(self, name: str, default: Any = None) -> Any: ...


def note_connection(scope: Scope, send: Send) -> None:
    """One dictionary write per request; what it leads to is looked up only by the feeds that use it."""
    scope[SEND] = send


def forget_connection(scope: Scope) -> None:
    """At the request's end: the server's `send` is a method of the object that holds the scope, a cycle that
    would otherwise wait for the garbage collector."""
    scope.pop(SEND, None)


class NotedConnection:
    """Around the whole app, outside every middleware (shared/app.py `around`): what a request's feed needs of its
    connection is noted as the request starts, and forgotten as it ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        note_connection(scope, send)
        try:
            await self.app(scope, receive, send)
        finally:
            forget_connection(scope)


def server_send(scope: Scope) -> Send | None:
    """The server's own `send`, as the app was given it: no middleware's wrapper around it."""
    send: Send | None = scope.get(SEND)
    return send


def transport_of(scope: Scope) -> Transport | None:
    transport = getattr(getattr(server_send(scope), "__self__", None), "transport", None)
    if callable(getattr(transport, "abort", None)) and callable(getattr(transport, "get_write_buffer_size", None)):
        return transport
    return None


def reset(transport: Transport) -> None:
    """Drops the connection now, and with a reset: a plain close of a socket whose client does not read would
    leave the kernel holding what was sent (megabytes on loopback) until it gave up on the client, minutes later."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
