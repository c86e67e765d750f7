"""What every page gets from shared/pages.py, over real HTTP: the unread badge, error pages, headers, cookies."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dev.embedded import EmbeddedMongo
from services.all import app as gossip
from shared.app import create_app
from shared.settings import Settings
from tests.support.accounts import csrf_of, json_error, registered
from tests.support.http import async_client
from tests.support.servers import LiveServer
from tests.support.updates import publish


def badge(page: httpx.Response) -> str | None:
    assert page.status_code == 200, page.text
    match = re.search(r'id="unread-count"[^>]*>(\d+)<', page.text)
    return match.group(1) if match else None


async def test_every_page_of_a_logged_in_caller_shows_the_unread_badge(alice: httpx.AsyncClient, server: str) -> None:
    await alice.put("/api/me/follows/flash")
    async with registered(server, "bob") as bob:
        for text in ("one", "two"):
            await publish(bob, "flash", text)
    for path in ("/", "/shows", "/publish", "/notifications", "/notifications/all", "/login"):
        assert badge(await alice.get(path)) == "2", path
    await alice.post("/api/me/read", json={"seq": 2})
    assert badge(await alice.get("/shows")) is None


BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


async def test_a_browser_asking_for_a_page_gets_the_error_page_with_the_status(client: httpx.AsyncClient) -> None:
    for path, status in (("/no/such/page", 404), ("/logout", 405)):
        response = await client.get(path, headers=BROWSER)
        assert response.status_code == status and response.headers["content-type"].startswith("text/html"), path
        assert "Something is off" in response.text
    assert "POST" in (await client.get("/logout", headers=BROWSER)).headers["allow"]


async def test_an_error_page_keeps_the_logged_in_header(alice: httpx.AsyncClient) -> None:
    for path in ("/no/such/page", "/logout"):
        page = await alice.get(path, headers=BROWSER)
        assert page.status_code in (404, 405) and "Something is off" in page.text, path
        assert 'class="who signed-in" title="alice">alice<' in page.text and 'id="logout"' in page.text, path


async def test_with_the_database_gone_an_error_page_is_still_the_error_page(settings: Settings, tmp_path: Path) -> None:
    with EmbeddedMongo(tmp_path) as mongo:
        app = gossip.create(dataclasses.replace(settings, mongo_url=mongo.url))
        live = LiveServer(app).start()
        try:
            async with registered(live.url, "alice") as alice:
                mongo.stop()
                page = await alice.get("/no/such/page", headers=BROWSER)
            mongo.start()  # back before the server stops: a stop while the database is away is not what this tests
        finally:
            live.stop()
    assert page.status_code == 404 and "Something is off" in page.text and 'id="logout"' not in page.text


async def _bug(request: Request) -> Response:
    raise RuntimeError("a bug")


@pytest.fixture
def buggy(settings: Settings) -> Iterator[str]:
    """A service with a page and an API route that fail as a bug would: what its users get is under test."""
    live = LiveServer(create_app("buggy", [Route("/broken", _bug), Route("/api/broken", _bug)], settings)).start()
    yield live.url
    live.stop()


async def test_a_bug_shows_a_browser_the_error_page_and_a_script_json_never_a_traceback(buggy: str) -> None:
    fresh = httpx.Limits(max_keepalive_connections=0)  # uvicorn closes a connection after an application error
    async with async_client(base_url=buggy, limits=fresh) as http:
        page = await http.get("/broken", headers=BROWSER)
        assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
        assert "Something went wrong on our side." in page.text and "RuntimeError" not in page.text
        for path, headers in (("/broken", {}), ("/api/broken", BROWSER)):
            assert json_error(await http.get(path, headers=headers))[:2] == (500, "internal"), path


async def test_the_api_the_feeds_and_scripts_still_get_json_errors(client: httpx.AsyncClient) -> None:
    for path, headers in (("/api/no/such", BROWSER), ("/events/no/such", BROWSER), ("/no/such/page", {})):
        assert json_error(await client.get(path, headers=headers))[:2] == (404, "not_found"), path


@pytest.fixture
async def behind_a_proxy(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a server that believes forwarded headers from 127.0.0.1, as a service behind the gateway does."""
    app = gossip.create(dataclasses.replace(settings, trusted_proxies=("127.0.0.1",)))
    live = LiveServer(app).start()
    try:
        async with async_client(base_url=live.url, timeout=10) as http:
            yield http
    finally:
        live.stop()


async def test_over_https_the_flash_cookie_is_secure_like_the_others(behind_a_proxy: httpx.AsyncClient) -> None:
    client = behind_a_proxy
    token = await csrf_of(client, "/login")
    https = {"x-forwarded-proto": "https"}  # what the gateway says when it terminates TLS
    response = await client.post("/logout", data={"csrf_token": token}, headers=https)
    (flash,) = [cookie for cookie in response.headers.get_list("set-cookie") if cookie.startswith("gossip_flash=")]
    assert "; secure" in flash.lower()
    # httpx keeps a Secure cookie from a plain-HTTP URL to itself, so the test hands it back as the browser would
    shown = await client.get("/login", headers={**https, "cookie": flash.split(";")[0]})
    assert "You are logged out." in shown.text
    (cleared,) = [cookie for cookie in shown.headers.get_list("set-cookie") if cookie.startswith("gossip_flash=")]
    assert "; secure" in cleared.lower()


async def test_pages_run_only_this_sites_scripts_are_framed_by_no_one_and_keep_their_address(
    alice: httpx.AsyncClient,
) -> None:
    for path in ("/", "/login", "/shows", "/notifications", "/publish", "/no/such/page"):
        response = await alice.get(path, headers=BROWSER)
        policy = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
        assert (policy["script-src"], policy["frame-ancestors"], policy["object-src"]) == (
            "'self'", "'none'", "'none'"
        ), path  # fmt: skip
        assert response.headers["x-frame-options"] == "DENY", path
        assert response.headers["referrer-policy"] == "same-origin", path
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert re.findall(r"<script(?![^>]*\ssrc=)", response.text) == [], path  # no inline script
        assert re.findall(r"<[^>]*\son[a-z]+=", response.text) == [], path  # no event handler attributes
