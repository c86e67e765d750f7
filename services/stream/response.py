"""A feed's SSE response, and the route app that serves it: the narrowest path through Starlette and uvicorn that
keeps what the feeds need (pings, disconnects, slow-client drops, shutdown), since every open feed pays for each
object and frame it holds for as long as it is open, and every delivery for each step between the hub and the
socket."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.stream.connections import reset, server_send
from services.stream.direct import Direct
from services.stream.hub import Feed

HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),  # no proxy keeps a copy
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),  # nor holds frames back (nginx)
)


def _start() -> Message:
    """A new message each time: a middleware may add headers to the one it is given."""
    return {"type": "http.response.start", "status": 200, "headers": list(HEADERS)}


def _end() -> Message:
    return {"type": "http.response.body", "body": b"", "more_body": False}


class FeedResponse:
    """sse-starlette's EventSourceResponse serves a response with a task group of three tasks beside the request's
    own (one streams, one waits for the client to go, one for the server to stop), each with its cancel scope, and a
    lock and a cancel scope around every send; its constructor alone (an anyio lock, the headers encoded anew) cost
    1.5 KB per feed. With thousands of open feeds that machinery was most of what a feed cost, and a fifth of the
    stream process's time at fan-out.

    Here one small task sends the history, then the feed's frames, and the request's task waits for the client to
    go (or for the last send, which uvicorn reports the same way). A live frame usually skips even that task: the hub
    writes it to the connection itself (services/stream/direct.py). What the rest did is done once for every feed:
    the hub's heartbeat pings, and drops a feed whose send has hung (Hub.drop_stalled, which resets its connection,
    or cancels the sending task where the server gave none); the lifecycle ends every feed when sse-starlette
    signals that the server is stopping (lifecycle.feeds). HEAD is answered as sse-starlette answers it: the
    headers, no stream."""

    __slots__ = ("feed", "history", "on_close", "request")

    def __init__(self, feed: Feed, history: AsyncIterator[bytes], on_close: Callable[[Feed], None]) -> None:
        self.feed, self.on_close = feed, on_close
        self.history: AsyncIterator[bytes] | None = history
        self.request: asyncio.Task[Any] | None = None  # the request's task, once the response runs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        feed = self.feed
        if scope["method"] == "HEAD":
            await self._head(send)
            return
        chunks, self.history = feed.frames(self.history), None  # the history is let go once sent
        self.request = request = asyncio.current_task()
        assert request is not None
        direct = Direct.of(server_send(scope))
        feed.sender = pump = asyncio.create_task(_pump(chunks, feed, send, direct))
        pump.add_done_callback(self._stopped)
        try:
            while (await receive())["type"] != "http.disconnect":  # the client gone, or the pump's last send made
                pass
        except asyncio.CancelledError:
            if not pump.done() or request.uncancel():
                raise  # the server's cancellation, not the pump's
            if not pump.cancelled() and (error := pump.exception()) is not None:
                raise error from None
            # else the hub dropped the feed (its client stopped reading): the response ends here, unfinished
        finally:
            pump.remove_done_callback(self._stopped)
            pump.cancel()
            if feed.transport is not None and feed.transport.get_write_buffer_size():
                # The client has not taken all that was sent: a graceful close would wait until it does, for ever
                # if it never reads again. It reconnects and replays what it missed.
                reset(feed.transport)
            self.on_close(feed)

    def _stopped(self, pump: asyncio.Task[None]) -> None:
        """A pump that made its last send has woken the request already (uvicorn answers its wait for the client
        with a disconnect once the response is complete); one that was cancelled or failed wakes it here."""
        if self.request is not None and (pump.cancelled() or pump.exception() is not None):
            self.request.cancel()

    async def _head(self, send: Send) -> None:
        try:
            await send(_start())
            await send(_end())
        finally:
            self.on_close(self.feed)


async def _pump(chunks: AsyncIterator[bytes], feed: Feed, send: Send, direct: Direct | None) -> None:
    """The feed's sends, in a task of its own: the head, the history, then whatever the feed queues. Once the head is
    out, the hub writes a live frame straight to the connection while this task waits with nothing queued (`direct`,
    when the server allows: services/stream/direct.py); this task sends what queued while it could not. Every send
    is noted, the first and the last too, so that the hub's sweep sees a response stuck on any of them (the feed
    leaves the hub only once the response is over)."""
    await _noted(send, feed, _start())
    feed.direct = direct
    async for chunk in chunks:  # the same as _noted, inline: this runs once per delivery
        feed.sending_since = time.monotonic()
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        feed.sending_since = 0.0
    await _noted(send, feed, _end())


async def _noted(send: Send, feed: Feed, message: Message) -> None:
    """Notes when the send began, so that the hub can drop a feed whose client has stopped reading."""
    feed.sending_since = time.monotonic()
    await send(message)
    feed.sending_since = 0.0


class Streamed:
    """A feed endpoint as its route's ASGI app: Starlette's request_response, less what a response that stays open
    for hours pays for all that time. request_response keeps the Request and three frames of its own, one of them a
    second exception wrapper around every send, for as long as the response runs; here the endpoint's Request goes
    once it has answered, and an error it raises is answered by the app's exception middleware as before."""

    def __init__(self, endpoint: Callable[[Request[Any]], Awaitable[ASGIApp]]) -> None:
        self.endpoint = endpoint
        functools.update_wrapper(self, endpoint)  # named as the endpoint: routes, logs and the API document say so

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.endpoint(Request(scope, receive, send))
        await response(scope, receive, send)
