"""The gateway of docker-compose (deploy/Caddyfile), read and run by the real Caddy: it routes by the design's path
table, streams feeds unbuffered, and spreads feeds over several stream processes."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.routing import Route as AppRoute

from dev.processes import ServiceProcess
from shared.settings import ROOT
from tests.ops.gateway import Gateway, adapt, naming_the_service, routes, to_processes
from tests.support.accounts import api_token, registered
from tests.support.servers import gauge
from tests.support.sse import events
from tests.support.updates import publish
from tests.support.waiting import wait_until

# DESIGN.md's path table, in Caddy's path patterns (`*` matches any rest, slashes included); /static goes to auth.
DESIGN = {
    "auth": {"/", "/login", "/register", "/logout", "/shows", "/api/auth/*", "/api/shows*", "/api/me*", "/static/*"},
    "ingest": {"/publish", "/api/updates*"},
    "stream": {"/notifications", "/notifications/all", "/events*"},
}
OWN = ("/healthz", "/readyz", "/metrics")  # each service's own, for Docker and scraping: never through the gateway


def test_the_gateway_routes_the_design_path_table() -> None:
    table: dict[str, set[str]] = {}
    for route in routes(adapt()):
        if route.service:
            table.setdefault(route.service, set()).update(route.paths)
    assert table == DESIGN


def test_feeds_pass_the_gateway_unbuffered() -> None:
    (stream,) = [route for route in routes(adapt()) if route.service == "stream"]
    assert stream.unbuffered


def test_anything_else_is_a_404_from_the_gateway_itself() -> None:
    *_, last = routes(adapt())
    assert (last.paths, last.service, last.status) == ((), None, 404)


@pytest.fixture(scope="module")
def naming(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real routing with every proxy replaced by an answer naming the service it would have reached."""
    with Gateway(tmp_path_factory.mktemp("caddy"), naming_the_service) as gateway:
        yield gateway.url


def concrete(path: str) -> str:
    """A request path for a route's template: `/api/me/follows/{slug}` → `/api/me/follows/x`."""
    return "/".join("x" if part.startswith("{") else part for part in path.split("/"))


@pytest.mark.parametrize("service", sorted(DESIGN))
def test_every_route_a_service_declares_reaches_that_service(naming: str, service: str) -> None:
    """Checks whichever services exist yet; a route added to a service but not to the gateway fails here."""
    if not (ROOT / "services" / service / "app.py").exists():
        pytest.skip(f"services/{service}/app.py does not exist yet")
    module = importlib.import_module(f"services.{service}.app")
    paths = sorted({concrete(route.path) for route in module.routes if isinstance(route, AppRoute)})
    assert paths, f"services.{service}.app declares no routes"
    assert {path: httpx.get(naming + path, timeout=5).text for path in paths} == dict.fromkeys(paths, service)


@pytest.mark.parametrize("path", OWN)
def test_health_and_metrics_stay_inside(naming: str, path: str) -> None:
    response = httpx.get(naming + path, timeout=5)
    assert (response.status_code, response.json()["error"]) == (404, "not_found")


@pytest.fixture
def behind_gateway(
    launch: Callable[[str], ServiceProcess], tmp_path: Path
) -> Iterator[tuple[Gateway, list[ServiceProcess]]]:
    """auth, ingest and two stream processes behind Caddy, as `docker compose up --scale stream=2` runs them."""
    auth, ingest, *streams = [launch(name) for name in ("auth", "ingest", "stream", "stream")]
    with Gateway(tmp_path, to_processes({"auth": [auth], "ingest": [ingest], "stream": streams})) as gateway:
        yield gateway, streams


async def test_feeds_through_the_gateway_spread_over_stream_processes(
    behind_gateway: tuple[Gateway, list[ServiceProcess]],
) -> None:
    gateway, streams = behind_gateway
    async with registered(gateway.url, "gina") as gina, registered(gateway.url, "gus") as gus:
        for person in (gina, gus):
            assert (await person.put("/api/me/follows/flash")).status_code == 204
        headers = {"authorization": f"Bearer {await api_token(gina)}"}
        async with (
            events(gina) as first,
            events(gus) as second,
            httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=10) as script,
        ):
            await wait_until(lambda: [gauge(s.url, "gossip_stream_connections") for s in streams] == [1, 1])
            published = [await publish(script, "flash", f"through the gateway {i}") for i in range(5)]
            assert await first.updates(5) == published
            assert await second.updates(5) == published
