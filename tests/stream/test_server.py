"""Every reach into uvicorn's and sse-starlette's private objects (services/stream/server.py): what each relies on,
checked here so that a change in either library, or in the app's middleware, shows as a failure, not as a corrupted
stream, a socket held for ever or a shutdown that hangs."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from sse_starlette.sse import AppStatus
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from services.all import app as gossip
from services.stream import app as stream
from services.stream.feed import HEADERS
from services.stream.server import Connection, stopping
from shared.app import Service, create_app
from shared.auth import RenewedSession
from shared.headers import Nosniff
from shared.logs import AccessLog
from shared.malformed import JsonErrorProtocol
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
    assert mixed.connection.parks, "uvicorn changed: feeds no longer park"
    assert response.text == "".join(f"data: past {n}\n\ndata: through {n}\n\n" for n in range(3))
    assert response.headers["transfer-encoding"] == "chunked"


async def test_another_protocol_gets_no_direct_write_but_can_still_be_reset() -> None:
    async def receive() -> object: ...

    mixed = Mixed()
    response = await served(mixed, "h11")
    assert mixed.connection is not None and not mixed.connection.writes, "uvicorn's h11 cycle changed"
    assert not mixed.connection.parks  # its request's task waits for the client, as before
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


class Parking:
    """A response that hands its connection over once its head is out, as a feed parks, and notes what the
    connection tells it. Its server runs in another thread: `later` runs a call on the server's loop."""

    def __init__(self) -> None:
        self.connection: Connection | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.told: list[str] = []
        self.returned = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.loop, self.connection = asyncio.get_running_loop(), Connection.of(receive)
        await send({"type": "http.response.start", "status": 200, "headers": list(HEADERS)})
        await send({"type": "http.response.body", "body": b"data: through\n\n", "more_body": True})
        assert self.connection is not None and self.connection.park(self), "uvicorn changed: feeds no longer park"
        assert (await receive())["type"] == "http.disconnect"
        self.returned = True

    def later(self, call: Callable[..., object], *args: object) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(call, *args)

    def end(self) -> None:
        self.told.append("end")
        assert self.connection is not None
        self.connection.finish()

    def gone(self) -> None:
        self.told.append("gone")

    def paused(self, since: float) -> None:
        self.told.append("paused" if since else "resumed")


@pytest.fixture
async def parking() -> AsyncIterator[tuple[Parking, LiveServer]]:
    app = Parking()
    live = LiveServer(Service(routes=[Route("/", app)]), timeout_keep_alive=1).start()
    try:
        yield app, live
    finally:
        live.stop()


def protocols() -> int:
    return alive(HttpToolsProtocol) + alive(JsonErrorProtocol) + alive(RequestResponseCycle)


async def test_uvicorn_still_lets_a_parked_connection_go_and_frees_its_request(
    parking: tuple[Parking, LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    """Fails if uvicorn no longer lets a response that parked return without closing its connection, or keeps its
    request's objects (each feed would hold them for as long as it is open), or lets the connection's end go
    unheard."""
    app, live = parking
    with collector_off(), caplog.at_level(logging.INFO, logger="uvicorn.error"):
        async with async_client(base_url=live.url) as http, http.stream("GET", "/") as response:
            lines = response.aiter_lines()
            assert await anext(lines) == "data: through"
            await wait_until(lambda: app.returned and protocols() == 0, timeout=5, interval=0.1)
            assert app.connection is not None
            app.later(app.connection.write, b"data: past\n\n")
            app.later(app.end)
            assert [line async for line in lines] == ["", "data: past", ""]  # the last chunk: the body ends cleanly
        await wait_until(lambda: app.told == ["end", "gone"], timeout=5)
    assert live.server.server_state.connections == set()
    assert "without completing response" not in caplog.text


async def test_uvicorns_keep_alive_timeout_leaves_a_parked_connection_open(parking: tuple[Parking, LiveServer]) -> None:
    """uvicorn arms it when its own send completes a response: never for a parked one."""
    app, live = parking
    async with async_client(base_url=live.url) as http, http.stream("GET", "/") as response:
        lines = response.aiter_lines()
        assert await anext(lines) == "data: through"
        await wait_until(lambda: app.returned)
        with socket.create_connection(("127.0.0.1", live.port)) as idle:
            idle.sendall(b"GET /elsewhere HTTP/1.1\r\nhost: x\r\n\r\n")  # a 404, then the connection idles
            idle.settimeout(10)
            while idle.recv(1 << 16):  # until the keep-alive timeout closes it
                pass
        assert app.connection is not None and app.told == []
        app.later(app.connection.write, b"data: still\n\n")
        assert [await anext(lines), await anext(lines)] == ["", "data: still"]


async def test_a_parked_connection_tells_of_its_client_leaving(parking: tuple[Parking, LiveServer]) -> None:
    app, live = parking
    async with async_client(base_url=live.url) as http, http.stream("GET", "/") as response:
        assert await anext(response.aiter_lines()) == "data: through"
        await wait_until(lambda: app.returned)
    await wait_until(lambda: app.told == ["gone"], timeout=5)


async def test_uvicorns_shutdown_ends_a_parked_connection_and_waits_for_it(parking: tuple[Parking, LiveServer]) -> None:
    """uvicorn calls `shutdown()` on every connection it holds and waits for each to close: the parked one stands
    among them in its place."""
    app, live = parking
    async with async_client(base_url=live.url) as http, http.stream("GET", "/") as response:
        lines = response.aiter_lines()
        assert await anext(lines) == "data: through"
        await wait_until(lambda: app.returned)
        stopping = asyncio.create_task(asyncio.to_thread(live.stop))
        assert [line async for line in lines] == [""]  # ended by the last chunk, not cut off
        await stopping
    assert app.told == ["end", "gone"]


async def test_a_request_sent_on_a_parked_connection_ends_it(parking: tuple[Parking, LiveServer]) -> None:
    """A parked connection serves nothing more: its response never ends by itself."""
    app, live = parking
    with socket.create_connection(("127.0.0.1", live.port)) as client:
        client.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        await wait_until(lambda: app.returned)
        client.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        await wait_until(lambda: app.told == ["end", "gone"], timeout=5)
        client.settimeout(5)
        received = b""
        while chunk := client.recv(1 << 16):
            received += chunk
    assert received.endswith(b"data: through\n\n\r\n0\r\n\r\n")
