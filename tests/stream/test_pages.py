"""The notifications pages over real HTTP: what the first page shows, what it marks unread, and older pages."""

from __future__ import annotations

import re

import httpx

from tests.support import publish, registered


def listed(page: httpx.Response) -> list[tuple[int, bool]]:
    """Each item on a notifications page: its seq, and whether it is marked unread."""
    assert page.status_code == 200, page.text
    items = re.findall(r'<li data-seq="(\d+)"[^>]*class="(\w*)"', page.text)
    return [(int(seq), unread == "unread") for seq, unread in items]


async def test_only_others_updates_since_joining_are_marked_unread(server: str) -> None:
    async with registered(server, "bob") as bob:
        before = await publish(bob, "flash", "before alice joined")
        async with registered(server, "alice") as alice:
            await alice.put("/api/me/follows/flash")
            own = await publish(alice, "flash", "her own")
            news = await publish(bob, "flash", "news to alice")
            page = await alice.get("/notifications")
    assert listed(page) == [(news["seq"], True), (own["seq"], False), (before["seq"], False)]
