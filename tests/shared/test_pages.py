"""What every page gets from shared/pages.py, over real HTTP: the layout's unread badge, and error pages."""

from __future__ import annotations

import re

import httpx

from tests.support import json_error, publish, registered


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


async def test_the_api_the_feeds_and_scripts_still_get_json_errors(client: httpx.AsyncClient) -> None:
    for path, headers in (("/api/no/such", BROWSER), ("/events/no/such", BROWSER), ("/no/such/page", {})):
        assert json_error(await client.get(path, headers=headers))[:2] == (404, "not_found"), path
