"""The gateway of docker-compose (deploy/Caddyfile), read and run by the real Caddy: it routes by the design's path
table, streams feeds unbuffered, and spreads feeds over several stream processes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import json
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pymongo
import pytest
import yaml
from starlette.routing import Route as AppRoute

from dev.processes import ServiceProcess
from services.all import app as everything
from shared.openapi import PATH, document
from shared.responses import END
from shared.settings import ROOT, Settings
from tests.ops.gateway import Gateway, adapt, naming_the_service, routes, server, to_processes
from tests.support.accounts import PASSWORD, api_token, registered
from tests.support.http import async_client, async_transport, get
from tests.support.servers import access_lines, gauge
from tests.support.sse import EventReader, events
from tests.support.updates import publish
from tests.support.waiting import wait_until

# The README's path table, in Caddy's path patterns (`*` matches any rest, slashes included); /static goes to auth.
DESIGN = {
    "auth": {
        "/",
        "/login",
        "/register",
        "/logout",
        "/shows",
        "/api",
        "/preferences",
        "/email",
        "/email/*",
        "/unsubscribe*",
        "/admin*",
        "/api/auth/*",
        "/api/admin/*",
        "/api/shows*",
        "/api/me*",
        "/api/push/*",
        "/sw.js",
        "/static/*",
    },
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


def test_the_readme_path_table_is_the_design_table() -> None:
    """Every route path a newcomer is told of, under the service that answers it."""
    text = (ROOT / "README.md").read_text().split("\n### Which service answers what\n", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| (`.*`) \| (.*) \|$", text, re.MULTILINE)
    told = {service: set(re.findall(r"`([^`]+)`", paths)) for paths, service in rows}
    assert {service: told[service] for service in DESIGN} == DESIGN
    assert told["the gateway itself (the whole API's document; each service serves its own part)"] == {PATH}
    assert told["each service, its own; the gateway keeps them inside"] == set(OWN)


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
    assert {path: get(naming.url + path, timeout=5).text for path in paths} == dict.fromkeys(paths, service)


@pytest.mark.parametrize("path", [*OWN, "/no/such/page"])
def test_health_metrics_and_unknown_paths_are_the_gateways_own_404(naming: Gateway, path: str) -> None:
    """The gateway's own answer is shaped as the services' JSON answers are, down to the newline that ends it."""
    response = get(naming.url + path, timeout=5)
    assert (response.status_code, response.headers["content-type"]) == (404, "application/json")
    assert response.content.endswith(END), response.content
    assert json.loads(response.content) == {"error": "not_found", "detail": "No such page.", "fields": {}}


def test_the_gateway_serves_the_document_of_the_whole_api(naming: Gateway) -> None:
    """No one service has every operation: docker-compose's `openapi` writes the all-in-one app's document into a
    volume (tests/ops/test_compose.py), and the gateway serves that file."""
    (route,) = [route for route in routes(adapt()) if route.paths == (PATH,)]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    python, *arguments, file = compose["services"]["openapi"]["entrypoint"]
    assert (python, file) == ("python", f"{route.files}/openapi.json")
    subprocess.run([sys.executable, *arguments, str(naming.files / "openapi.json")], check=True, timeout=60)
    response = get(naming.url + PATH, timeout=5)
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
        async with async_client(base_url=gateway.url, headers=headers, timeout=10) as script:
            published = [await publish(script, "flash", f"through the gateway {i}") for i in range(3)]
        for feed in (other, fourth):  # one on each process, each delivering every update
            assert await feed.reader.updates(3) == published
            await closed(feed)


SECOND = 1_000_000_000  # Caddy's JSON counts durations in nanoseconds
GIVEN = {"read_header_timeout": 10 * SECOND, "read_timeout": 30 * SECOND, "idle_timeout": 120 * SECOND}
SHORT = {"read_header_timeout": 1 * SECOND, "read_timeout": 2 * SECOND, "idle_timeout": 2 * SECOND}


def test_slow_requests_are_timed_out_but_responses_never() -> None:
    """A feed is one response that lasts for hours: no write timeout may cut it."""
    config = server(adapt())
    assert {key: config.get(key) for key in GIVEN} == GIVEN
    assert "write_timeout" not in config


def test_the_gateway_believes_no_front_proxy_unless_the_operator_names_one() -> None:
    assert server(adapt(env={"FRONT_PROXIES": ""}))["trusted_proxies"] == {"source": "static"}
    named = server(adapt(env={"FRONT_PROXIES": "10.0.0.5 192.168.0.0/16"}))
    assert named["trusted_proxies"] == {"source": "static", "ranges": ["10.0.0.5", "192.168.0.0/16"]}
    assert named["trusted_proxies_strict"]  # the rightmost address that is no trusted proxy is the client


@dataclasses.dataclass(frozen=True)
class Guarded:
    gateway: Gateway
    auth: ServiceProcess
    upstreams: dict[str, list[ServiceProcess]]  # for more gateways in front of the same services


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, mongo_url: str) -> Iterator[Guarded]:
    """auth, ingest and stream behind Caddy with the gateway's timeouts shortened (the tests wait them out), the
    services believing forwarded headers from the gateway (on 127.0.0.1) only, and 3 failed logins per address.
    One for the module, as it takes seconds to start: each test uses names and addresses of its own."""
    settings = Settings(secret_key=uuid.uuid4().hex, mongo_url=mongo_url, mongo_db=f"test_{uuid.uuid4().hex[:12]}")
    env = {"TRUSTED_PROXIES": "127.0.0.1", "LOGIN_FAILURES_PER_ADDRESS": "3", "LOGIN_WINDOW": "3600",
           "LOG_FORMAT": "json"}  # fmt: skip
    tmp_path = tmp_path_factory.mktemp("guarded")
    with pymongo.MongoClient(mongo_url) as client, contextlib.ExitStack() as stack:
        stack.callback(client.drop_database, settings.mongo_db)
        auth, ingest, stream = (
            stack.enter_context(ServiceProcess(f"services.{name}.app", settings, **env))
            for name in ("auth", "ingest", "stream")
        )
        upstreams = {"auth": [auth], "ingest": [ingest], "stream": [stream]}
        yield Guarded(stack.enter_context(Gateway(tmp_path, to_processes(upstreams), **SHORT)), auth, upstreams)


def closed_within(sock: socket.socket, timeout: float) -> float:
    """Seconds until the gateway closed the connection (whatever it answered first); fails past `timeout`."""
    start = time.monotonic()
    sock.settimeout(timeout)
    with contextlib.suppress(ConnectionResetError):
        while sock.recv(65536):
            pass
    return time.monotonic() - start


def test_headers_sent_too_slowly_are_cut_off(guarded: Guarded) -> None:
    with socket.create_connection(("127.0.0.1", guarded.gateway.port)) as slow:
        slow.sendall(b"GET /login HTTP/1.1\r\nhost: x\r\n")  # and never the blank line
        assert closed_within(slow, 5) < 3


async def test_a_body_sent_too_slowly_frees_the_service_behind_the_gateway(guarded: Guarded) -> None:
    """Caddy (2.11) gives up on the body after read_body and ends the request it was passing on, so the service
    is free; its own connection to the stalled client it keeps."""

    def login_ended() -> bool:
        return any(line["path"] == "/api/auth/login" for line in access_lines(guarded.auth))

    with socket.create_connection(("127.0.0.1", guarded.gateway.port)) as slow:
        slow.sendall(b"POST /api/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: 1000\r\n\r\n{")  # fmt: skip
        start = time.monotonic()
        await wait_until(login_ended, timeout=10)
        assert time.monotonic() - start < 5  # read_body is 2 s here
    (line,) = [line for line in access_lines(guarded.auth) if line["path"] == "/api/auth/login"]
    assert line["status"] == 400 and "Traceback" not in guarded.auth.output()


async def test_a_feed_outlives_every_timeout(guarded: Guarded) -> None:
    async with registered(guarded.gateway.url, "gail") as gail:
        assert (await gail.put("/api/me/follows/flash")).status_code == 204
        async with events(gail) as feed:
            await asyncio.sleep(3)  # past the shortened read, header and idle timeouts: what is under test
            update = await publish(gail, "flash", "still here")
            assert await feed.updates(1) == [update]


async def test_the_gateway_passes_the_real_client_address_whatever_the_client_claims(guarded: Guarded) -> None:
    """The service believes the gateway; the gateway believes no client. Addresses in 127/8 are all loopback."""
    body = {"username": "nobody", "password": "not-the-password"}

    def client(address: str) -> httpx.AsyncClient:
        transport = async_transport(local_address=address)
        return async_client(base_url=guarded.gateway.url, transport=transport, timeout=30)

    async with client("127.0.0.7") as mallory, client("127.0.0.8") as other:
        statuses = []
        for n in range(4):
            claims = {"x-forwarded-for": f"198.51.100.{n}", "x-real-ip": f"198.51.100.{n}"}
            statuses.append((await mallory.post("/api/auth/login", json=body, headers=claims)).status_code)
        assert statuses == [401, 401, 401, 429]
        assert (await other.post("/api/auth/login", json=body)).status_code == 401


async def test_the_gateway_passes_the_real_scheme_whatever_the_client_claims(guarded: Guarded) -> None:
    async with async_client(base_url=guarded.gateway.url, timeout=30) as http:
        body = {"username": "hanna", "password": PASSWORD}
        response = await http.post("/api/auth/register", json=body, headers={"x-forwarded-proto": "https"})
        assert response.status_code == 201
        assert response.headers["set-cookie"].startswith("gossip_session=")  # plain HTTP: no __Host-, no Secure


def from_address(url: str, address: str, **options: Any) -> httpx.AsyncClient:
    """A client whose connections come from `address`: all of 127/8 is loopback."""
    transport = async_transport(local_address=address, **options)
    return async_client(base_url=url, transport=transport, timeout=30)


FRONT = "127.0.0.9"  # the proxy in front of the gateway, as an operator names it in FRONT_PROXIES


@pytest.fixture(scope="module")
def fronted(guarded: Guarded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The gateway told of a front proxy, in front of the same services."""
    workdir = tmp_path_factory.mktemp("fronted")
    with Gateway(workdir, to_processes(guarded.upstreams), env={"FRONT_PROXIES": f"{FRONT}/32"}) as gateway:
        yield gateway


async def test_a_named_front_proxy_passes_on_each_clients_address_and_scheme(fronted: Gateway) -> None:
    """Behind a host's proxy every client would otherwise share its address (one login bucket for everybody) and
    its scheme (`http`, so no Secure cookie)."""
    body = {"username": "nobody", "password": "not-the-password"}
    async with from_address(fronted.url, FRONT) as front, from_address(fronted.url, "127.0.0.10") as direct:

        async def login(client: httpx.AsyncClient, claimed: str) -> int:
            response = await client.post("/api/auth/login", json=body, headers={"x-forwarded-for": claimed})
            return response.status_code

        assert [await login(front, f"198.51.100.{n}") for n in range(4)] == [401] * 4  # four clients, one try each
        assert [await login(front, "198.51.100.20") for _ in range(4)] == [401, 401, 401, 429]  # one, four tries
        assert [await login(direct, f"198.51.100.{n}") for n in range(30, 34)] == [401, 401, 401, 429]  # no proxy
        secure = await front.post(
            "/api/auth/register",
            json={"username": "fran", "password": PASSWORD},
            headers={"x-forwarded-proto": "https"},
        )
        assert secure.status_code == 201 and secure.headers["set-cookie"].startswith("__Host-gossip_session=")


@pytest.fixture(scope="module")
def https_gateway(guarded: Guarded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The gateway over HTTPS on loopback, its certificate from Caddy's own local CA, kept under the test's
    directory (XDG_DATA_HOME)."""
    with Gateway(tmp_path_factory.mktemp("https"), to_processes(guarded.upstreams), https=True) as gateway:
        yield gateway


async def test_over_https_cookies_are_secure_and_only_same_site_writes_pass(https_gateway: Gateway) -> None:
    async with async_client(base_url=https_gateway.url, verify=https_gateway.verify, timeout=30) as http:
        response = await http.post("/api/auth/register", json={"username": "tessa", "password": PASSWORD})
        assert response.status_code == 201
        cookies = {cookie.split("=", 1)[0]: cookie for cookie in response.headers.get_list("set-cookie")}
        for name in ("__Host-gossip_session", "__Host-gossip_device"):
            flags = {flag.strip().lower() for flag in cookies[name].split(";")[1:]}
            assert {"secure", "httponly", "path=/", "samesite=lax"} <= flags, cookies[name]
            assert not any(flag.startswith("domain") for flag in flags)
        same_site = await http.put("/api/me/follows/flash", headers={"origin": https_gateway.url})
        assert same_site.status_code == 204
        foreign = await http.put("/api/me/follows/sherlock", headers={"origin": "https://evil.example"})
        assert (foreign.status_code, foreign.json()["error"]) == (403, "cross_site")
        plain = https_gateway.url.replace("https://", "http://")  # the same host over plain HTTP: another origin
        downgraded = await http.put("/api/me/follows/sherlock", headers={"origin": plain})
        assert (downgraded.status_code, downgraded.json()["error"]) == (403, "cross_site")
        assert (await http.get("/api/me")).json()["follows"] == ["flash"]
