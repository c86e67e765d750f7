"""A live frame written straight to its connection (services/stream/direct.py): what it relies on in uvicorn and in
the app's middleware, checked here so that a change in either shows as a failure, not as a corrupted stream."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from services.all import app as gossip
from services.stream import app as stream
from services.stream.direct import Direct
from services.stream.response import HEADERS
from shared.app import Service, create_app
from shared.auth import RenewedSession
from shared.connections import server_send
from shared.headers import Nosniff
from shared.logs import AccessLog
from shared.proxies import TrustedProxies
from shared.settings import Settings
from shared.tracing import Traced
from tests.support.accounts import registered
from tests.support.servers import LiveServer
from tests.support.sse import events
from tests.support.updates import publish


class Mixed:
    """A response whose body goes out in turns through ASGI and past it, as a feed's does."""

    def __init__(self) -> None:
        self.direct: Direct | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.direct = Direct.of(server_send(scope))
        await send({"type": "http.response.start", "status": 200, "headers": list(HEADERS)})
        for number in range(3):
            if self.direct is not None:
                self.direct.write(f"data: past {number}\n\n".encode())
            await send({"type": "http.response.body", "body": f"data: through {number}\n\n".encode(),
                        "more_body": True})  # fmt: skip
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def served(app: Mixed, protocol: str) -> httpx.Response:
    live = LiveServer(Service(routes=[Route("/", app)]), http=protocol).start()
    try:
        async with httpx.AsyncClient(base_url=live.url) as http:
            return await http.get("/")
    finally:
        live.stop()


async def test_uvicorn_still_has_what_a_direct_write_relies_on_and_frames_its_chunks_alike() -> None:
    """Fails if uvicorn's httptools cycle loses what direct.py reads (the feeds would fall back to ASGI, slower), or
    frames a chunk otherwise (the client would read garbage or nothing)."""
    mixed = Mixed()
    response = await served(mixed, "httptools")
    assert mixed.direct is not None, "uvicorn has changed: feeds no longer write past ASGI"
    assert response.text == "".join(f"data: past {n}\n\ndata: through {n}\n\n" for n in range(3))
    assert response.headers["transfer-encoding"] == "chunked"


async def test_another_protocol_gets_no_direct_write() -> None:
    async def send(message: object) -> None: ...

    mixed = Mixed()
    response = await served(mixed, "h11")
    assert mixed.direct is None and Direct.of(None) is None and Direct.of(send) is None
    assert response.text == "".join(f"data: through {n}\n\n" for n in range(3))


@pytest.fixture
def h11_server(settings: Settings) -> Iterator[str]:
    live = LiveServer(create_app("gossip", gossip.routes, settings, gossip.extensions), http="h11").start()
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


@pytest.mark.parametrize("app", [stream.app, gossip.app], ids=["stream", "all"])
def test_only_middleware_that_leaves_bodies_alone_stands_before_a_feed(app: Starlette) -> None:
    """A feed's live frames go past the middleware (direct.py). Each one here only reads or adds to a response's
    start; one that changed bodies (compression, say) would not see them. Before adding a middleware, check that it
    leaves a body as it is, then name it here."""
    known = [TrustedProxies, Traced, Nosniff, AccessLog, RenewedSession]  # Traced: OpenTelemetry's reads, adds none
    assert [middleware.cls for middleware in app.user_middleware] == known
