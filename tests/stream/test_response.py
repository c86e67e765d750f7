"""A feed's response (services/stream/response.py) over a real socket, on a uvicorn in the test's own event loop so
that the test holds the feed: a client that stops reading is dropped by the hub's sweep once a send has hung (which
it sees only because sse-starlette sends every chunk through the private hook FeedResponse overrides), or ends when
its queue overflows; either way the socket is let go. The full service's counters of both: tests/stream/test_app.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import uvicorn
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.stream.hub import MAX_BYTES, OVERFLOW, STALLED, Feed, Hub
from services.stream.response import FeedResponse
from shared.auth import Caller
from tests.support.waiting import wait_until

FRAME = b"data: " + b"x" * 200_000 + b"\n\n"
HUNG = 0.3  # seconds a send must hang before the test calls it stalled


@contextlib.asynccontextmanager
async def stalled_feed() -> AsyncIterator[tuple[Hub, Feed, socket.socket]]:
    """A feed whose client connected and never reads again, on a live uvicorn in this loop."""
    hub, opened = Hub(), asyncio.get_running_loop().create_future()

    async def endpoint(request: Request) -> Response:
        feed = hub.open(Caller("u1", "una", "s1"), None)
        opened.set_result(feed)
        return FeedResponse(feed, feed.frames(), ping=0)

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    config = uvicorn.Config(Starlette(routes=[Route("/feed", endpoint)]), log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.setblocking(False)
    try:
        await wait_until(lambda: server.started)
        await asyncio.get_running_loop().sock_connect(client, listening.getsockname())
        client.sendall(b"GET /feed HTTP/1.1\r\nhost: x\r\n\r\n")
        yield hub, await asyncio.wait_for(opened, 5), client
    finally:
        client.close()
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        listening.close()


def fill_until_a_send_hangs(feed: Feed) -> bool:
    """A frame at a time, each once the last has gone to the socket, so that the queue never overflows: True once a
    send has hung, the kernel's buffers and uvicorn's full."""
    if feed.sending_since and time.monotonic() - feed.sending_since > HUNG:
        return True
    if not feed._frames:
        feed.offer(FRAME)
    return False


async def received_until_closed(client: socket.socket) -> bytes:
    """What the client reads once it reads again, up to the end: the server has let the socket go."""
    received = b""
    while chunk := await asyncio.wait_for(asyncio.get_running_loop().sock_recv(client, 1 << 20), 5):
        received += chunk
    return received


def test_feed_response_overrides_a_hook_that_sse_starlette_has() -> None:
    """A rename in sse-starlette would leave the override orphaned; the tests below would then see no send hang."""
    assert "_send_with_timeout" in vars(EventSourceResponse) and "_send_with_timeout" in vars(FeedResponse)


async def test_a_send_that_hangs_is_seen_through_the_hook_and_the_feed_dropped_by_the_sweep() -> None:
    async with stalled_feed() as (hub, feed, client):
        await wait_until(lambda: fill_until_a_send_hangs(feed), timeout=30)
        assert feed.sender is not None and not feed.ended  # the hook noted the sending task; no overflow
        hub.drop_stalled(time.monotonic() - HUNG)
        assert (feed.too_slow, feed.ended) == (STALLED, True)
        received = await received_until_closed(client)
        assert not received.endswith(b"\r\n0\r\n\r\n")  # cut off mid-stream: the hung send was cancelled


async def test_a_queue_that_overflows_ends_the_feed_after_what_it_holds() -> None:
    async with stalled_feed() as (hub, feed, client):
        await wait_until(lambda: fill_until_a_send_hangs(feed), timeout=30)
        while not feed.ended:  # the send hangs on: the queue fills up to its bound
            feed.offer(FRAME)
        assert feed.too_slow == OVERFLOW
        hub.drop_stalled(time.monotonic() - 60)  # a sweep that finds nothing hung for long ends nothing more
        assert feed.too_slow == OVERFLOW and not feed.sender.cancelled()  # type: ignore[union-attr]
        received = await received_until_closed(client)  # the queue's frames first, then the response's clean end
        assert received.endswith(FRAME + b"\r\n0\r\n\r\n") and received.count(b"data: ") > MAX_BYTES // len(FRAME)
