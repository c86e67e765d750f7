"""A feed's life (services/stream/feed.py): over a real socket, what sse-starlette's task group did per response,
done another way; at the ASGI level, its endings, and when a live frame goes straight to the connection or through
a sender."""

from __future__ import annotations

import asyncio
import gc
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import httpx
import pytest
from starlette.types import Message

from services.stream.feed import OVERFLOW, Feed
from services.stream.hub import Hub
from services.stream.server import Connection
from shared.auth import Caller
from tests.support.servers import gauge
from tests.support.sse import events
from tests.support.updates import publish
from tests.support.waiting import wait_until


async def test_a_client_that_goes_away_leaves_the_hub_at_once(server: str, alice: httpx.AsyncClient) -> None:
    """uvicorn's send returns quietly once the client has gone: only the wait for the disconnect notices it."""
    before = gauge(server, "gossip_stream_connections")
    async with events(alice):
        await wait_until(lambda: gauge(server, "gossip_stream_connections") == before + 1)
    await wait_until(lambda: gauge(server, "gossip_stream_connections") == before)


async def test_head_answers_the_headers_and_opens_no_feed(server: str, alice: httpx.AsyncClient) -> None:
    before = gauge(server, "gossip_stream_connections")
    response = await alice.head("/events")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert response.content == b"" and gauge(server, "gossip_stream_connections") == before


async def test_a_feed_streams_its_history_then_live_frames(alice: httpx.AsyncClient) -> None:
    await alice.put("/api/me/follows/flash")
    missed = await publish(alice, "flash", "before the feed opened")
    async with events(alice, f"/events?after={missed['seq'] - 1}") as feed:
        assert await feed.updates(1) == [missed]
        live = await publish(alice, "flash", "while it is open")
        assert await feed.updates(1) == [live]


class Client:
    """The ASGI side of one connection: it stays until `leave()`, and keeps what was sent to it."""

    def __init__(self, reads: bool = True) -> None:
        self.reads = reads  # False: a client that stopped reading, on whom every send hangs
        self.sent: list[Message] = []
        self.closed: list[Feed] = []
        self._asked = 0
        self._gone = asyncio.Event()

    async def receive(self) -> Message:
        self._asked += 1
        if self._asked == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        if not self.reads:
            await asyncio.Event().wait()

    def leave(self) -> None:
        self._gone.set()

    async def serve(self, feed: Feed) -> None:
        """Fails if the response has not ended within five seconds (never cancelled: it must end by itself)."""
        serving = asyncio.create_task(feed({"type": "http", "method": "GET"}, self.receive, self.send))
        done, _ = await asyncio.wait([serving], timeout=5)
        assert done, "the response did not end"
        serving.result()

    def bodies(self) -> list[bytes]:
        """What went through ASGI after the head, but the end."""
        return [message["body"] for message in self.sent[1:] if message.get("more_body")]


async def _history(*chunks: bytes, then: Exception | None = None) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
    if then is not None:
        raise then


async def test_a_history_that_fails_ends_the_response_with_its_error() -> None:
    client, feed = Client(), Feed(Caller("u1", "una"), None)
    feed.serves(_history(b"retry: 2000\n\n", then=RuntimeError("the database went away")), client.closed.append)
    with pytest.raises(RuntimeError, match="went away"):
        await client.serve(feed)
    assert client.closed == [feed] and client.sent[1]["body"] == b"retry: 2000\n\n"


async def test_a_feed_the_hub_drops_ends_its_response_unfinished() -> None:
    client, feed = Client(reads=False), Feed(Caller("u1", "una"), None)
    serving = asyncio.create_task(client.serve(feed.serves(_history(), client.closed.append)))
    await wait_until(lambda: feed.sending_since > 0)
    feed.drop()
    await serving
    assert client.closed == [feed] and not any(message.get("more_body") is False for message in client.sent)


async def test_a_client_that_leaves_ends_its_response() -> None:
    client, feed = Client(), Feed(Caller("u1", "una"), None)
    serving = asyncio.create_task(client.serve(feed.serves(_history(), client.closed.append)))
    await wait_until(lambda: len(client.sent) == 1)
    client.leave()
    await serving
    assert client.closed == [feed]


async def test_an_ended_feed_completes_its_response() -> None:
    client, feed = Client(), Feed(Caller("u1", "una"), None)
    serving = asyncio.create_task(client.serve(feed.serves(_history(), client.closed.append)))
    feed.offer(b"data: last\n\n")
    feed.end()
    await wait_until(lambda: client.sent and client.sent[-1].get("more_body") is False)
    client.leave()  # as uvicorn answers the wait for the client once the response is complete
    await serving
    assert [message.get("body") for message in client.sent[1:]] == [b"data: last\n\n", b""]


def frame(seq: int) -> bytes:
    return f"id: {seq}\n\n".encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


@dataclass
class Wire:
    """A connection's transport as server.py uses it: what was written, what the client has not yet taken, and what
    a reset did."""

    written: list[bytes] = field(default_factory=list)
    buffered: int = 0
    closing: bool = False
    aborted: bool = False
    linger: bytes = b""

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self if name == "socket" else default

    def setsockopt(self, level: int, option: int, value: bytes) -> None:
        self.linger = value


@dataclass
class Cycle:
    """What server.py reads of uvicorn's request cycle (tests/stream/test_server.py checks uvicorn still has it)."""

    transport: Wire = field(default_factory=Wire)
    flow: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(write_paused=False))
    chunked_encoding: bool | None = True
    response_complete: bool = False
    disconnected: bool = False


async def serving(
    feed: Feed, cycle: Cycle, history: AsyncIterator[bytes] | None = None
) -> tuple[Client, asyncio.Task[None]]:
    """The feed's response, running on `cycle`'s connection: its client, and its task."""
    client = Client()
    feed.connection = Connection(cycle, writes=True)
    task = asyncio.create_task(client.serve(feed.serves(history or _history(), client.closed.append)))
    await wait_until(lambda: len(client.sent) >= 1)
    return client, task


async def ended(client: Client, task: asyncio.Task[None]) -> None:
    await wait_until(lambda: client.sent[-1].get("more_body") is False)
    client.leave()
    await task


async def test_an_idle_feed_holds_no_task_and_its_frames_go_straight_to_its_connection_as_chunks() -> None:
    feed, cycle = Feed(Caller("u1", "una"), None), Cycle()
    client, task = await serving(feed, cycle)
    await wait_until(feed.idle)
    assert feed.sender is None
    feed.offer(frame(1))
    feed.offer(frame(2))
    assert cycle.transport.written == [chunk(frame(1)), chunk(frame(2))] and not feed._frames and feed.sender is None
    feed.end()
    await ended(client, task)
    assert client.bodies() == []


async def test_a_frame_too_large_for_the_queue_is_not_written_straight_to_the_connection_either() -> None:
    feed, cycle = Feed(Caller("u1", "una"), None, max_bytes=100), Cycle()
    client, task = await serving(feed, cycle)
    await wait_until(feed.idle)
    feed.offer(b"x" * 101)
    assert cycle.transport.written == [] and feed.too_slow == OVERFLOW
    await ended(client, task)
    assert client.bodies() == []


async def test_no_live_frame_overtakes_the_history() -> None:
    feed, cycle, more = Feed(Caller("u1", "una"), None), Cycle(), asyncio.Event()

    async def history() -> AsyncIterator[bytes]:
        yield frame(1)
        await more.wait()  # the database's next page
        yield frame(2)

    client, task = await serving(feed, cycle, history())
    await wait_until(lambda: client.bodies() == [frame(1)])
    feed.offer(frame(3))
    more.set()
    await wait_until(feed.idle)
    feed.offer(frame(4))
    feed.end()
    await ended(client, task)
    assert client.bodies() == [frame(1), frame(2), frame(3)] and cycle.transport.written == [chunk(frame(4))]


@pytest.mark.parametrize(
    "busy",
    [
        Cycle(Wire(buffered=1)),  # the client has not taken all that was written
        Cycle(flow=SimpleNamespace(write_paused=True)),
        Cycle(Wire(closing=True)),
        Cycle(disconnected=True),
        Cycle(response_complete=True),
        Cycle(chunked_encoding=None),  # the head has not gone out
    ],
    ids=["buffered", "paused", "closing", "disconnected", "complete", "not chunked"],
)
async def test_a_connection_that_cannot_take_a_frame_at_once_leaves_it_to_a_sender(busy: Cycle) -> None:
    feed = Feed(Caller("u1", "una"), None)
    client, task = await serving(feed, busy)
    await wait_until(feed.idle)
    feed.offer(frame(1))
    assert feed.sender is not None
    feed.end()
    await ended(client, task)
    assert client.bodies() == [frame(1)] and busy.transport.written == []


async def test_fan_outs_back_to_back_queue_their_frames_for_one_sender_to_write_together() -> None:
    """Changes coming faster than the feeds are written to: one write a feed per batch of updates, not per update."""
    hub, cycle = Hub(back_to_back=3600.0), Cycle()  # every fan-out but the first follows the last one back to back
    feed = hub.open(Caller("u1", "una", "s1"), ["flash"])
    client, task = await serving(feed, cycle)
    await wait_until(feed.idle)
    for seq in (1, 2, 3):
        hub.publish("flash", frame(seq), seq)
    feed.end()
    await ended(client, task)
    assert cycle.transport.written == [chunk(frame(1))] and client.bodies() == [frame(2) + frame(3)]


class BrokenWire(Wire):
    def write(self, data: bytes) -> None:
        raise AttributeError("a uvicorn that changed underneath")


async def test_a_direct_write_that_fails_leaves_the_frame_and_the_rest_to_asgi() -> None:
    feed, cycle = Feed(Caller("u1", "una"), None), Cycle(BrokenWire())
    client, task = await serving(feed, cycle)
    await wait_until(feed.idle)
    feed.offer(frame(1))
    assert feed.connection is not None and not feed.connection.writes
    feed.offer(frame(2))
    feed.end()
    await ended(client, task)
    assert b"".join(client.bodies()) == frame(1) + frame(2)


async def test_a_dropped_feed_resets_its_connection_instead_of_waiting_for_the_client() -> None:
    hub, cycle = Hub(), Cycle()
    feed = hub.open(Caller("u1", "una", "s1"), ["flash"])
    client, task = await serving(feed, cycle)
    await wait_until(feed.idle)
    feed.sending_since = 10.0  # as a send that began long ago and has not returned
    hub.drop_stalled(before=20.0)
    assert cycle.transport.aborted and cycle.transport.linger == struct.pack("ii", 1, 0) and feed.too_slow
    client.leave()  # as uvicorn answers the wait for the client once the connection is lost
    await task


def parked_feeds(username: str) -> list[bool]:
    """Whether each open feed of `username` on this process's servers has parked."""
    return [feed.parked for feed in gc.get_objects() if type(feed) is Feed and feed.connection is not None and
            feed.caller.username == username]  # fmt: skip


async def test_an_idle_feed_parks_and_its_live_frames_still_reach_it(alice: httpx.AsyncClient) -> None:
    """On uvicorn's httptools protocol, once its head and history are out the request returns and the feed holds
    the connection itself (server.py)."""
    await alice.put("/api/me/follows/flash")
    missed = await publish(alice, "flash", "before the feed opened")
    async with events(alice, f"/events?after={missed['seq'] - 1}") as feed:
        assert await feed.updates(1) == [missed]
        await wait_until(lambda: parked_feeds("alice") == [True])
        live = [await publish(alice, "flash", f"while it is parked {n}") for n in range(3)]
        assert await feed.updates(3) == live


def parked(feed: Feed, wire: Wire) -> Wire:
    """`feed` as parked on `wire`: what Connection.park leaves."""
    feed.connection = Connection(Cycle(wire), writes=True)
    feed.connection.parked = feed.parked = True
    return wire


async def test_a_parked_feed_writes_what_it_queued_in_order_then_its_end_and_closes() -> None:
    feed = Feed(Caller("u1", "una"), None)
    wire = parked(feed, Wire())
    feed.offer(frame(1))
    feed.offer(frame(2), direct=False)  # a fan-out back to back with the last: written once the loop comes round
    feed.offer(frame(3))
    feed.end()
    await wait_until(lambda: wire.closing)
    assert wire.written == [chunk(frame(1)), chunk(frame(2) + frame(3)), b"0\r\n\r\n"]


async def test_a_parked_feeds_bound_counts_what_its_client_has_not_taken() -> None:
    feed = Feed(Caller("u1", "una"), None, max_bytes=100)
    wire = parked(feed, Wire(buffered=90))
    feed.offer(b"x" * 11)
    assert feed.too_slow == OVERFLOW and wire.written == []


async def test_a_parked_feed_whose_client_stopped_reading_is_dropped_by_the_sweep() -> None:
    hub, closed = Hub(), list[Feed]()
    feed = hub.open(Caller("u1", "una", "s1"), ["flash"]).serves(_history(), closed.append)
    wire = parked(feed, Wire())
    feed.paused(10.0)  # as the transport asks to stop writing, past its high-water mark
    hub.drop_stalled(before=20.0)
    assert wire.aborted and feed.too_slow
    feed.gone()  # as the transport reports the connection lost
    assert closed == [feed]


async def test_a_parked_feed_that_ended_is_dropped_if_its_connection_does_not_close() -> None:
    """Its close waits for the client to take what is buffered: for ever, from one that never reads again."""
    hub = Hub()
    feed = hub.open(Caller("u1", "una", "s1"), ["flash"])
    wire = parked(feed, Wire(buffered=10))
    feed.end()
    await wait_until(lambda: wire.closing)
    feed.paused(0.0)  # the buffer drained below the low-water mark: the close is still under way
    hub.drop_stalled(before=time.monotonic() + 1)
    assert wire.aborted
