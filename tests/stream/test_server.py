"""Every reach into uvicorn's and sse-starlette's private objects (services/stream/server.py): what each relies on,
checked here so that a change in either library, or in the app's middleware, shows as a failure, not as a corrupted
stream, a socket held for ever or a shutdown that hangs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from sse_starlette.sse import AppStatus
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from services.all import app as gossip
from services.stream import app as stream
from services.stream.feed import HEADERS
from services.stream.server import Connection, stopping
from shared.app import Service, create_app
from shared.auth import RenewedSession
from shared.headers import Nosniff
from shared.logs import AccessLog
from shared.proxies import TrustedProxies
from shared.settings import Settings
from shared.tracing import Traced
from tests.support.accounts import registered
from tests.support.http import async_client
from tests.support.memory import alive, collector_off
from tests.support.servers import LiveServer
from tests.support.sse import events
from tests.support.updates import publish
from tests.support.waiting import wait_until


class Mixed:
    """A response whose body goes out in turns through ASGI and past it, as a feed's does."""

    def __init__(self) -> None:
        self.connection: Connection | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.connection = Connection.of(receive)
        await send({"type": "http.response.start", "status": 200, "headers": list(HEADERS)})
        for number in range(3):
            if self.connection is not None:
                assert self.connection.write(f"data: past {number}\n\n".encode()) == self.connection.writes
            await send({"type": "http.response.body", "body": f"data: through {number}\n\n".encode(),
                        "more_body": True})  # fmt: skip
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def served(app: Mixed, protocol: str) -> httpx.Response:
    live = LiveServer(Service(routes=[Route("/", app)]), http=protocol).start()
    try:
        async with async_client(base_url=live.url) as http:
            return await http.get("/")
    finally:
        live.stop()


async def test_uvicorn_still_has_what_a_direct_write_relies_on_and_frames_its_chunks_alike() -> None:
    """Fails if uvicorn's httptools cycle loses what server.py reads (the feeds would fall back to ASGI, slower), or
    frames a chunk otherwise (the client would read garbage or nothing)."""
    mixed = Mixed()
    response = await served(mixed, "httptools")
    assert mixed.connection is not None and mixed.connection.writes, "uvicorn changed: feeds no longer write past ASGI"
    assert response.text == "".join(f"data: past {n}\n\ndata: through {n}\n\n" for n in range(3))
    assert response.headers["transfer-encoding"] == "chunked"


async def test_another_protocol_gets_no_direct_write_but_can_still_be_reset() -> None:
    async def receive() -> object: ...

    mixed = Mixed()
    response = await served(mixed, "h11")
    assert mixed.connection is not None and not mixed.connection.writes, "uvicorn's h11 cycle changed"
    assert Connection.of(receive) is None
    assert response.text == "".join(f"data: through {n}\n\n" for n in range(3))


@pytest.fixture
def h11_server(settings: Settings) -> Iterator[str]:
    live = LiveServer(gossip.create(settings), http="h11").start()
    yield live.url
    live.stop()


async def test_under_another_protocol_a_feed_streams_through_asgi_alone(h11_server: str) -> None:
    async with registered(h11_server, "hana") as hana:
        await hana.put("/api/me/follows/flash")
        missed = await publish(hana, "flash", "before the feed opened")
        async with events(hana, f"/events?after={missed['seq'] - 1}") as feed:
            assert await feed.updates(1) == [missed]
            live = [await publish(hana, "flash", f"while it is open {n}") for n in range(3)]
            assert await feed.updates(3) == live


@pytest.mark.parametrize("traces", [False, True], ids=["untraced", "traced"])
async def test_through_every_middleware_a_response_still_finds_its_connection(settings: Settings, traces: bool) -> None:
    """A feed finds uvicorn's connection from the `receive` it is given: a middleware that wrapped it (OpenTelemetry's
    does, unless told not to trace receives) would leave every feed without its direct write and its reset."""
    provider = TracerProvider() if traces else None
    mixed = Mixed()
    live = LiveServer(create_app("probe", [Route("/probe", mixed)], settings, tracer_provider=provider)).start()
    try:
        async with async_client(base_url=live.url) as http:
            response = await http.get("/probe")
    finally:
        live.stop()
    assert response.status_code == 200 and mixed.connection is not None and mixed.connection.writes


@pytest.mark.parametrize("app", [stream.app, gossip.app], ids=["stream", "all"])
def test_only_middleware_that_leaves_bodies_alone_stands_before_a_feed(app: Starlette) -> None:
    """A feed's live frames go past the middleware (server.py), and its connection is found from the `receive` it is
    given, which none of them may wrap. Each one here only reads or adds to a response's
    start; one that changed bodies (compression, say) would not see them. Before adding a middleware, check that it
    leaves a body as it is, then name it here."""
    known = [TrustedProxies, Traced, Nosniff, AccessLog, RenewedSession]  # Traced: OpenTelemetry's reads, adds none
    assert [middleware.cls for middleware in app.user_middleware] == known


async def test_sse_starlettes_exit_signal_still_ends_the_wait_for_shutdown() -> None:
    """lifecycle waits on this private hook once for all feeds: if sse-starlette renames or changes it, the stream
    service would no longer end its feeds when told to stop (test_resilience's shutdown test shows the effect)."""
    waiting = asyncio.create_task(stopping())
    AppStatus.should_exit = True
    try:
        await asyncio.wait_for(waiting, 5)  # its watcher looks twice a second
    finally:
        AppStatus.should_exit = False


async def test_a_request_is_freed_as_it_ends_not_left_for_the_collector(server: str) -> None:
    """uvicorn's request cycle and the scope it holds are freed as the request ends: nothing the app keeps of a
    request (the server's `send` or `receive`, both methods of the cycle) may make every request a cycle for the
    collector, which a busy process runs rarely."""
    with collector_off():
        for _ in range(10):
            async with async_client(base_url=server) as http:  # a connection each, closed after
                assert (await http.get("/healthz")).status_code == 200
        await wait_until(lambda: alive(RequestResponseCycle) == 0, timeout=5, interval=0.2)
