"""The gateway of docker-compose (deploy/Caddyfile), read and run by the real Caddy: it routes by the design's path
table, streams feeds unbuffered, and spreads feeds over several stream processes."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from starlette.routing import Route as AppRoute

from dev.processes import ServiceProcess
from services.all import app as everything
from shared.openapi import PATH, document
from shared.settings import ROOT
from tests.ops.gateway import Gateway, adapt, naming_the_service, routes, to_processes
from tests.support.accounts import api_token, registered
from tests.support.servers import gauge
from tests.support.sse import EventReader, events
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
def naming(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The real routing with every proxy replaced by an answer naming the service it would have reached."""
    with Gateway(tmp_path_factory.mktemp("caddy"), naming_the_service) as gateway:
        yield gateway


def concrete(path: str) -> str:
    """A request path for a route's template: `/api/me/follows/{slug}` → `/api/me/follows/x`."""
    return "/".join("x" if part.startswith("{") else part for part in path.split("/"))


@pytest.mark.parametrize("service", sorted(DESIGN))
def test_every_route_a_service_declares_reaches_that_service(naming: Gateway, service: str) -> None:
    """Checks whichever services exist yet; a route added to a service but not to the gateway fails here."""
    if not (ROOT / "services" / service / "app.py").exists():
        pytest.skip(f"services/{service}/app.py does not exist yet")
    module = importlib.import_module(f"services.{service}.app")
    paths = sorted({concrete(route.path) for route in module.routes if isinstance(route, AppRoute)})
    assert paths, f"services.{service}.app declares no routes"
    assert {path: httpx.get(naming.url + path, timeout=5).text for path in paths} == dict.fromkeys(paths, service)


@pytest.mark.parametrize("path", OWN)
def test_health_and_metrics_stay_inside(naming: Gateway, path: str) -> None:
    response = httpx.get(naming.url + path, timeout=5)
    assert (response.status_code, response.json()["error"]) == (404, "not_found")


def test_the_gateway_serves_the_document_of_the_whole_api(naming: Gateway) -> None:
    """No one service has every operation: docker-compose's `openapi` writes the all-in-one app's document into a
    volume (tests/ops/test_compose.py), and the gateway serves that file."""
    (route,) = [route for route in routes(adapt()) if route.paths == (PATH,)]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    python, *arguments, file = compose["services"]["openapi"]["entrypoint"]
    assert (python, file) == ("python", f"{route.files}/openapi.json")
    subprocess.run([sys.executable, *arguments, str(naming.files / "openapi.json")], check=True, timeout=60)
    response = httpx.get(naming.url + PATH, timeout=5)
    assert (response.status_code, response.headers["content-type"]) == (200, "application/json")
    assert response.json() == document("gossip", everything.app.routes)


@pytest.fixture
def behind_gateway(
    launch: Callable[[str], ServiceProcess], tmp_path: Path
) -> Iterator[tuple[Gateway, list[ServiceProcess]]]:
    """auth, ingest and two stream processes behind Caddy, as `docker compose up --scale stream=2` runs them."""
    auth, ingest, *streams = [launch(name) for name in ("auth", "ingest", "stream", "stream")]
    with Gateway(tmp_path, to_processes({"auth": [auth], "ingest": [ingest], "stream": streams})) as gateway:
        yield gateway, streams


@dataclasses.dataclass
class Feed:
    process: int  # which of the stream processes took it
    reader: EventReader
    stack: contextlib.AsyncExitStack


async def test_a_new_feed_goes_to_the_stream_process_with_the_fewest_feeds(
    behind_gateway: tuple[Gateway, list[ServiceProcess]],
) -> None:
    """Three feeds leave one process with two; those two close. Fewest connections sends the next feed to that
    process, now empty, where round-robin would send it to the other (it took the first and the third)."""
    gateway, streams = behind_gateway

    def counts() -> list[float]:
        return [gauge(stream.url, "gossip_stream_connections") for stream in streams]

    async def opened(http: httpx.AsyncClient) -> Feed:
        before, stack = counts(), contextlib.AsyncExitStack()
        reader = await stack.enter_async_context(events(http))
        after = await wait_until(lambda: (now := counts()) != before and now)
        return Feed([a - b for a, b in zip(after, before, strict=True)].index(1), reader, stack)

    async def closed(feed: Feed) -> None:
        before = counts()
        await feed.stack.aclose()
        await wait_until(lambda: counts()[feed.process] == before[feed.process] - 1)

    async with registered(gateway.url, "gina") as gina:
        assert (await gina.put("/api/me/follows/flash")).status_code == 204
        headers = {"authorization": f"Bearer {await api_token(gina)}"}
        feeds = [await opened(gina) for _ in range(3)]
        busy = next(feed.process for feed in feeds if [f.process for f in feeds].count(feed.process) == 2)
        for feed in feeds:
            if feed.process == busy:
                await closed(feed)
        (other,) = [feed for feed in feeds if feed.process != busy]
        fourth = await opened(gina)
        assert (fourth.process, counts()) == (busy, [1, 1])
        async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=10) as script:
            published = [await publish(script, "flash", f"through the gateway {i}") for i in range(3)]
        for feed in (other, fourth):  # one on each process, each delivering every update
            assert await feed.reader.updates(3) == published
            await closed(feed)
