"""A feed: one open SSE connection on /events or /events/all, from the moment the hub lets it open to the moment its
response ends. Its state and every change of it live here: what it carries, its bounded queue of frames, its
sending, its end (overflow, logout, expiry, shutdown, a client that left or stopped reading) and its close.

Every open feed pays for each object and frame it holds for as long as it is open, and every delivery for each step
between the hub and the socket, so an idle feed holds no task: on uvicorn's httptools protocol, once the head and the
history are out the feed parks (services/stream/server.py `Connection.park`): the request's task returns through
the middleware, uvicorn lets the connection go, and from then on the feed writes to it straight, is told by it when
the client leaves or stops reading, and ends it itself. So access logs and traces see a feed's request end once its
head and history are out, not when the feed closes (the feed's gauge, `gossip_stream_connections`, still counts it
until then). On any other server the request's own task waits for the client to go, a live frame is written straight
to the connection when nothing is queued before it, and a sending task runs only while there is something to send
through ASGI (the head and the history, a backlog, a burst, the end). What sse-starlette's EventSourceResponse did
per response (a task group of three tasks, a ping task, a lock and a cancel scope around every send) is done once for
every feed: the hub's heartbeat pings, and drops a feed whose send has hung or whose parked connection has stopped
taking what it is given (Feed.drop); the lifecycle ends every feed when the server stops (lifecycle.fan_out).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.stream.server import Connection
from shared.auth import Caller

MAX_FRAMES = 1000
MAX_BYTES = 1 << 20
MAX_BATCH = 64  # frames in one write, at most
# Why a feed was ended for its client: its queue overflowed, or a send to it hung for the send timeout.
OVERFLOW, STALLED = "overflow", "stalled"
HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),  # no proxy keeps a copy
    (b"connection", b"close"),  # a parked feed's connection closes with its response: no proxy may reuse it
    (b"x-accel-buffering", b"no"),  # nor holds frames back (nginx)
)


def _start() -> Message:
    """A new message each time: a middleware may add headers to the one it is given."""
    return {"type": "http.response.start", "status": 200, "headers": list(HEADERS)}


def _end() -> Message:
    return {"type": "http.response.body", "body": b"", "more_body": False}


class Feed:
    """One open feed; `shows=None` means every show. It is its own ASGI response (`__call__`).

    Slots, not a dict per instance: ten thousand open feeds each pay for every attribute."""

    __slots__ = (
        "_bytes",
        "_closed",
        "_flushing",
        "_frames",
        "_history",
        "_max_bytes",
        "_max_frames",
        "_request",
        "_send",
        "caller",
        "connection",
        "ended",
        "number",
        "parked",
        "resumed",
        "sender",
        "sending_since",
        "shows",
        "too_slow",
    )  # fmt: skip

    def __init__(
        self,
        caller: Caller,
        shows: frozenset[str] | None,
        number: int = 0,
        max_frames: int = MAX_FRAMES,
        max_bytes: int = MAX_BYTES,
        resumed: int = 0,
    ) -> None:
        self.caller, self.shows, self.number = caller, shows, number
        self.resumed = resumed  # the client has every update up to this seq already (see Hub.publish)
        self.ended = False
        self.too_slow: str | None = None  # OVERFLOW or STALLED once the feed was ended for its client
        self.sending_since = 0.0  # when the send now under way began (time.monotonic()); 0.0 while none is
        self.sender: asyncio.Task[None] | None = None  # the task sending through ASGI, while there is something to
        self.connection: Connection | None = None  # the server's connection, once the response runs (server.py)
        # What waits to be sent through ASGI; None while nothing does, as for an idle feed most of its life. A list,
        # not a deque: an empty deque costs 700 bytes, times every open feed.
        self._frames: list[bytes] | None = None
        self._bytes, self._max_frames, self._max_bytes = 0, max_frames, max_bytes
        self._send: Send | None = None  # the response's ASGI send, once it runs
        self._request: asyncio.Task[Any] | None = None  # the request's task, once the response runs
        self._history: AsyncIterator[bytes] | None = None  # what the feed missed, until it has been sent
        self._closed: Callable[[Feed], None] | None = None  # told once the response is over
        self.parked = False  # uvicorn has let the connection go to the feed (server.py)
        self._flushing: asyncio.Handle | None = None  # a parked feed's write of what is queued, once scheduled

    def offer(self, frame: bytes, direct: bool = True) -> None:
        """Never awaits: one stalled browser must not hold up the fan-out, nor grow without limit. `direct`: the
        frame may be written at once, past ASGI (server.py), if the feed is idle. The bounds hold for both ways: a
        frame too large for the queue is not written straight to the socket either."""
        if self.ended:
            return
        frames, pending = self._frames, self._bytes + len(frame)
        if self.parked and self.connection is not None:
            pending += self.connection.unread()  # a parked feed's transport holds what its client has not taken
        if (frames is not None and len(frames) >= self._max_frames) or pending > self._max_bytes:
            self.too_slow = OVERFLOW
            self.end()  # the browser reconnects and replays from MongoDB
            return
        if direct and self.connection is not None and self.idle() and self.connection.write(frame):
            return
        if frames is None:
            self._frames = [frame]
        else:
            frames.append(frame)
        self._bytes += len(frame)
        self._wake()

    def idle(self) -> bool:
        """The head and the history are out, nothing is queued and no send is under way: only then may a frame go
        straight to the connection, and none can overtake one queued before it."""
        if self._frames:
            return False
        return self.parked or (self.sender is None and self._send is not None and self._history is None)

    def end(self) -> None:
        """Ends the feed after what is already queued (overflow, logout, expiry, shutdown)."""
        self.ended = True
        self._wake()

    def drop(self) -> None:
        """Ends a feed whose send has hung (a client that stopped reading): its queue cannot drain. The connection
        is reset, which frees the socket at once and ends the hung send; a graceful close would wait for the client
        to read what is buffered, for ever if it never does. Without the connection (server.py), the send is
        cancelled, which ends the response but leaves the close to the server."""
        self.too_slow = self.too_slow or STALLED  # one that overflowed first was ended for that
        self.end()
        if self.connection is not None:
            self.connection.reset()
        elif self.sender is not None:
            self.sender.cancel()

    def carry(self, shows: frozenset[str] | None) -> None:
        """What the feed carries from now on (a follow change); the hub moves it between its indexes around this."""
        self.shows = shows

    def let_go(self) -> None:
        """Once the feed has left the hub, what its response held is let go: the sender's frame, the send's wrappers
        and the connection's objects refer back to the feed, and such a cycle of a feed that was open for a while
        waits in the collector's oldest generation for a full collection, which a busy process runs rarely
        (shared/app.py `_tune_gc`). Let go, they are freed as the response ends."""
        self.sender = self.connection = self._send = self._request = self._history = self._closed = None
        self._flushing = None

    def take(self) -> bytes | None:
        """Whatever is queued, as one chunk: under a burst, one socket write carries many frames."""
        frames = self._frames
        if not frames:
            return None
        chunk = b"".join(frames[:MAX_BATCH])
        del frames[:MAX_BATCH]
        if not frames:
            self._frames = None
        self._bytes -= len(chunk)
        return chunk

    def _wake(self) -> None:
        """Starts the sender if the response runs and none is under way; a running one takes what was queued. A
        parked feed's sender is a write of all that is queued, once the fan-out at hand is over."""
        if self.parked:
            if self._flushing is None:
                self._flushing = asyncio.get_running_loop().call_soon(self._flush)
        elif self.sender is None and self._send is not None:
            self.sender = sender = asyncio.get_running_loop().create_task(self._sending())
            sender.add_done_callback(self._sent)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The feed's response. The request's task waits for the client to go (or for the last send, or the feed's
        parking, which uvicorn reports the same way), and is cancelled if a sender fails or is cancelled (a dropped
        feed). HEAD is answered as sse-starlette answers it: the headers, no stream."""
        if scope["method"] == "HEAD":
            await self._head(send)
            return
        self._request, self._send = asyncio.current_task(), send
        if self.connection is None:  # none given beforehand (a test's stand-in for uvicorn's)
            self.connection = Connection.of(receive)
        self._wake()  # the head, the history, then whatever queued meanwhile
        try:
            while (await receive())["type"] != "http.disconnect":  # the client gone, or the last send made
                pass
        except asyncio.CancelledError:
            sender, request = self.sender, asyncio.current_task()
            assert request is not None
            if sender is None or not sender.done() or request.uncancel():
                raise  # the server's cancellation, not the sender's
            if not sender.cancelled() and (error := sender.exception()) is not None:
                raise error from None
            # else the feed was dropped (its client stopped reading): the response ends here, unfinished
        finally:
            if self.parked:
                self._send = self._request = None  # the response goes on without them; the feed is over when gone()
            else:
                self._over()

    def gone(self) -> None:
        """A parked feed's connection has closed: the client left, or the feed ended or was dropped."""
        self._over()

    def paused(self, since: float) -> None:
        """A parked feed's connection holds more than the client has taken since `since` (time.monotonic()), or
        no longer (0.0): to the hub's sweep, a send under way since then. Once the feed has ended, its end is under
        way until the connection has closed (_flush)."""
        if not self.ended:
            self.sending_since = since

    def _over(self) -> None:
        self.ended = True
        if self.sender is not None:
            self.sender.remove_done_callback(self._sent)
            self.sender.cancel()
        if self._flushing is not None:
            self._flushing.cancel()
        if not self.parked and self.connection is not None and self.connection.unread():
            # The client has not taken all that was sent: a graceful close would wait until it does, for ever if it
            # never reads again. It reconnects and replays what it missed.
            self.connection.reset()
        if self._closed is not None:
            self._closed(self)

    async def _head(self, send: Send) -> None:
        try:
            await send(_start())
            await send(_end())
        finally:
            if self._closed is not None:
                self._closed(self)

    async def _sending(self) -> None:
        """Sends through ASGI: the head and the history first (once), then what is queued, then the end once the feed
        has ended. Every send is noted, so that the hub's sweep sees a response stuck on any of them (the feed leaves
        the hub only once the response is over). The task ends when nothing is left to send: a live frame then goes
        straight to the connection, or starts a sender again."""
        if (history := self._history) is not None:
            await self._noted(_start())
            async for missed in history:
                await self._noted({"type": "http.response.body", "body": missed, "more_body": True})
            self._history = None  # let go: the feed may stay open for hours
        while (chunk := self.take()) is not None:
            await self._noted({"type": "http.response.body", "body": chunk, "more_body": True})
        if self.ended:
            await self._noted(_end())
        elif self.connection is not None and self.connection.park(self):
            self.parked = True
        self.sender = None

    def _flush(self) -> None:
        """A parked feed's sending: what is queued, in one write, then the end once the feed has ended. The
        connection then closes, and the feed is over once it has (`gone`)."""
        self._flushing = None
        if (connection := self.connection) is None:
            return
        while (chunk := self.take()) is not None:
            connection.write(chunk)
        if self.ended:
            # The close waits for the client to take what is buffered: one that never does is dropped by the sweep.
            self.sending_since = self.sending_since or time.monotonic()
            connection.finish()

    async def _noted(self, message: Message) -> None:
        """Notes when the send began, so that the hub can drop a feed whose client has stopped reading."""
        assert self._send is not None
        self.sending_since = time.monotonic()
        await self._send(message)
        self.sending_since = 0.0

    def _sent(self, sender: asyncio.Task[None]) -> None:
        """A sender that made the last send has woken the request already (uvicorn answers its wait for the client
        with a disconnect once the response is complete); one that was cancelled or failed wakes it here."""
        if self._request is not None and (sender.cancelled() or sender.exception() is not None):
            self._request.cancel()

    def serves(self, history: AsyncIterator[bytes], closed: Callable[[Feed], None]) -> Feed:
        """The feed as its route's response: `history` goes out first, and `closed` is told once it is over."""
        self._history, self._closed = history, closed
        return self


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
        scope.pop("state", None)  # the request's copy of the app's state: read while answering, not for hours after
        await response(scope, receive, send)
