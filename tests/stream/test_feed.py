"""The feed's response over a real socket: what sse-starlette's task group did per response, done another way; and
its two tasks' endings, at the ASGI level."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sse_starlette.sse import AppStatus, EventSourceResponse
from starlette.types import Message

from services.stream.hub import Feed
from services.stream.response import FeedResponse
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
    await wait_until(lambda: gauge(server, "gossip_stream_connections") == before, timeout=2)


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


async def test_sse_starlettes_exit_signal_still_ends_the_wait_for_shutdown() -> None:
    """lifecycle waits on this private hook once for all feeds: if sse-starlette renames or changes it, the stream
    service would no longer end its feeds when told to stop (test_resilience's shutdown test shows the effect)."""
    waiting = asyncio.create_task(EventSourceResponse._listen_for_exit_signal())
    AppStatus.should_exit = True
    try:
        await asyncio.wait_for(waiting, 2)  # its watcher looks twice a second
    finally:
        AppStatus.should_exit = False


class Client:
    """The ASGI side of one connection: it stays until `leave()`, and keeps what was sent to it."""

    def __init__(self) -> None:
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

    def leave(self) -> None:
        self._gone.set()

    async def serve(self, response: FeedResponse) -> None:
        """Fails if the response has not ended within two seconds (never cancelled: it must end by itself)."""
        serving = asyncio.create_task(response({"type": "http", "method": "GET"}, self.receive, self.send))
        done, _ = await asyncio.wait([serving], timeout=2)
        assert done, "the response did not end"
        serving.result()


async def _history(*chunks: bytes, then: Exception | None = None) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
    if then is not None:
        raise then


async def test_a_history_that_fails_ends_the_response_with_its_error() -> None:
    client, feed = Client(), Feed(Caller("u1", "una"), None)
    response = FeedResponse(feed, _history(b"retry: 2000\n\n", then=RuntimeError("the database went away")),
                            client.closed.append)  # fmt: skip
    with pytest.raises(RuntimeError, match="went away"):
        await client.serve(response)
    assert client.closed == [feed] and client.sent[1]["body"] == b"retry: 2000\n\n"


async def test_a_feed_the_hub_drops_ends_its_response_unfinished() -> None:
    client, feed = Client(), Feed(Caller("u1", "una"), None)
    serving = asyncio.create_task(client.serve(FeedResponse(feed, _history(), client.closed.append)))
    await wait_until(lambda: feed.sender is not None)
    feed.drop()
    await serving
    assert client.closed == [feed] and not any(message.get("more_body") is False for message in client.sent)


async def test_a_client_that_leaves_ends_its_response() -> None:
    client, feed = Client(), Feed(Caller("u1", "una"), None)
    serving = asyncio.create_task(client.serve(FeedResponse(feed, _history(), client.closed.append)))
    await wait_until(lambda: len(client.sent) == 1)
    client.leave()
    await serving
    assert client.closed == [feed]


async def test_an_ended_feed_completes_its_response() -> None:
    client, feed = Client(), Feed(Caller("u1", "una"), None)
    serving = asyncio.create_task(client.serve(FeedResponse(feed, _history(), client.closed.append)))
    feed.offer(b"data: last\n\n")
    feed.end()
    await wait_until(lambda: client.sent and client.sent[-1].get("more_body") is False)
    client.leave()  # as uvicorn answers the wait for the client once the response is complete
    await serving
    assert [message.get("body") for message in client.sent[1:]] == [b"data: last\n\n", b""]
