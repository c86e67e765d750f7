"""The stream service reports who has feeds open: a feed opened shows its user as looking, with the shows it
carries, within a report interval; closed, the user drops out; a stopped process withdraws its report."""

from __future__ import annotations

from dataclasses import replace

from shared import presence
from shared.db import Database, utcnow
from shared.presence import EVERY_SHOW
from shared.settings import Settings
from tests.support.accounts import registered
from tests.support.servers import gossip_server
from tests.support.sse import events
from tests.support.waiting import wait_until


async def _carried(db: Database) -> dict[str, list[str]]:
    carried: dict[str, list[str]] = {}
    for report in await db.presence.find({"expires_at": {"$gt": utcnow()}}).to_list():
        carried.update(report["users"])
    return carried


async def test_open_feeds_are_reported_and_closed_ones_drop_out(settings: Settings, db: Database) -> None:
    live = gossip_server(replace(settings, presence_interval=0.2))
    try:
        async with registered(live.url, "alice") as alice:
            assert (await alice.put("/api/me/follows/sherlock")).status_code == 204
            user = await db.users.find_one({"username": "alice"})
            assert user is not None
            user_id = user["_id"]
            async with events(alice, "/events"), events(alice, "/events/all"):
                assert await wait_until(lambda: _has(db, user_id, [EVERY_SHOW, "sherlock"]))
                assert await presence.looking(db, [user_id], utcnow()) == {user_id}
            await wait_until(lambda: _gone(db, user_id))
            assert await presence.looking(db, [user_id], utcnow()) == set()
    finally:
        live.stop()
    assert await db.presence.count_documents({}) == 0  # withdrawn at shutdown, not left to expire


async def _has(db: Database, user_id: str, shows: list[str]) -> bool:
    return sorted((await _carried(db)).get(user_id, [])) == sorted(shows)


async def _gone(db: Database, user_id: str) -> bool:
    return user_id not in await _carried(db)
