"""What every page gets from shared/pages.py, over real HTTP: the layout's caller and unread badge."""

from __future__ import annotations

import re

import httpx

from tests.support import publish, registered


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
