"""History retention against the real server: updates older than HISTORY_DAYS go, newer ones stay, by a sweep on
MongoDB and the embedded server alike, which notes the highest seq it removed (the horizon of missed history)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import httpx

from services.all import app as gossip
from services.ingest.retention import HISTORY_INDEX, delete_older, keep_history, sweep
from shared.db import Database, ensure_indexes, next_seq, utcnow
from shared.settings import Settings
from shared.updates import trimmed
from tests.support.accounts import registered
from tests.support.servers import LiveServer
from tests.support.sse import events, opening
from tests.support.updates import publish, stored_update
from tests.support.waiting import wait_until


async def test_updates_older_than_history_days_are_removed(settings: Settings, db: Database) -> None:
    old = utcnow() - timedelta(days=2)
    await db.updates.insert_many([{**stored_update(seq), "created_at": old} for seq in (1, 2, 3)])
    await db.updates.insert_many([stored_update(seq) for seq in (4, 5)])
    kept = dataclasses.replace(settings, history_days=1)
    live = LiveServer(gossip.create(kept)).start()

    async def only_recent_ones_left() -> bool:
        return [update["seq"] async for update in db.updates.find({}).sort("seq", 1)] == [4, 5]

    try:
        await wait_until(only_recent_ones_left)  # the first sweep runs as the service starts
    finally:
        live.stop()
    assert await trimmed(db) == 3


async def test_old_updates_go_in_batches_and_recent_ones_stay(db: Database) -> None:
    old = utcnow() - timedelta(days=3)
    await db.updates.insert_many([{**stored_update(seq), "created_at": old} for seq in range(1, 6)])
    await db.updates.insert_one(stored_update(6))
    assert await delete_older(db, utcnow() - timedelta(days=1), batch=2) == 5
    assert [update["seq"] async for update in db.updates.find({})] == [6]
    assert await trimmed(db) == 5


async def test_the_horizon_never_goes_back_nor_moves_for_documents_without_a_seq(db: Database) -> None:
    """A sweep of another ingest process may finish after this one's, with older updates."""
    old = utcnow() - timedelta(days=3)
    await db.updates.insert_many([{**stored_update(9), "created_at": old}, {"text": "old", "created_at": old}])
    await delete_older(db, utcnow() - timedelta(days=1))
    assert await trimmed(db) == 9
    await db.updates.insert_many([{**stored_update(4), "created_at": old}, {"text": "old", "created_at": old}])
    assert await delete_older(db, utcnow() - timedelta(days=1)) == 2
    assert await trimmed(db) == 9


async def test_sweeps_of_two_ingest_processes_at_once_remove_each_update_once_and_leave_the_highest_horizon(
    db: Database,
) -> None:
    old = utcnow() - timedelta(days=3)
    await db.updates.insert_many([{**stored_update(seq), "created_at": old} for seq in range(1, 8)])
    cutoff = utcnow() - timedelta(days=1)
    deleted = await asyncio.gather(delete_older(db, cutoff, batch=2), delete_older(db, cutoff, batch=3))
    assert (sum(deleted), await db.updates.find_one({}), await trimmed(db)) == (7, None, 7)


async def test_an_old_document_without_a_seq_takes_no_other_with_it(db: Database) -> None:
    await db.updates.insert_many([{"text": "old", "created_at": utcnow() - timedelta(days=2)}, {"text": "new"}])
    assert await delete_older(db, utcnow() - timedelta(days=1)) == 1
    assert [update["text"] async for update in db.updates.find({})] == ["new"]
    assert await trimmed(db) == 0


async def test_old_updates_are_found_by_a_plain_index_and_a_ttl_index_is_replaced(db: Database) -> None:
    """MongoDB's TTL monitor would remove updates without noting the horizon, as an older release's index did. By
    key: the embedded server names indexes its own way."""
    await ensure_indexes(db)
    await db.updates.create_index("created_at", name=HISTORY_INDEX, expireAfterSeconds=86400)
    for days in (90, 1, 0, 1):
        await keep_history(db, days)
        by_age = [index async for index in await db.updates.list_indexes() if dict(index["key"]) == {"created_at": 1}]
        assert [index.get("expireAfterSeconds") for index in by_age] == ([None] if days else [])


async def test_a_resume_from_below_what_the_sweep_removed_is_told_and_one_beside_a_deletion_is_not(
    alice: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    """An update older than HISTORY_DAYS goes by the sweep: a feed from before it opens with `resync`, missed
    unknown, resuming at it; the next update was deleted by its author, so a feed from the old one missed nothing."""
    await alice.put("/api/me/follows/flash")
    aged = stored_update(await next_seq(db), created_at=utcnow() - timedelta(days=settings.history_days + 1))
    await db.updates.insert_one(aged)
    async with events(alice) as live:  # once it has the retraction, no feed opened below can get one
        deleted, kept = [(await publish(alice, "flash", text))["seq"] for text in ("deleted", "kept")]
        assert (await alice.delete(f"/api/updates/{deleted}")).status_code == 204
        assert (await live.named("retract")).json() == {"seq": deleted}
    await sweep(db, settings.history_days)  # the server's own sweep ran as it started, and may run again meanwhile
    assert await trimmed(db) == aged["seq"]
    resync = {"after": 0, "resume": aged["seq"], "missed": None}
    assert await opening(alice, 0, 2) == [("resync", resync), ("update", kept)]
    assert await opening(alice, aged["seq"], 1) == [("update", kept)]


async def test_history_removed_while_kept_for_a_while_is_still_missed_once_kept_for_ever(
    settings: Settings, db: Database
) -> None:
    """HISTORY_DAYS was set, then 0 (keep for ever): no sweep runs any more, but what the earlier ones removed stays
    gone, so a feed resuming from below their horizon opens with `resync` still, and one from it does not."""
    aged = stored_update(await next_seq(db), created_at=utcnow() - timedelta(days=settings.history_days + 1))
    await db.updates.insert_one(aged)
    await sweep(db, settings.history_days)
    assert await trimmed(db) == aged["seq"]
    forever = LiveServer(gossip.create(dataclasses.replace(settings, history_days=0))).start()
    try:
        async with registered(forever.url, "alice") as alice:
            await alice.put("/api/me/follows/flash")
            async with events(alice) as live:  # once it has them, a feed opened below replays them
                first, _ = [(await publish(alice, "flash", text))["seq"] for text in ("first", "second")]
                await live.updates(2)
            resync = {"after": 0, "resume": aged["seq"], "missed": None}
            assert await opening(alice, 0, 2) == [("resync", resync), ("update", first)]
            assert await opening(alice, aged["seq"], 1) == [("update", first)]
    finally:
        forever.stop()
