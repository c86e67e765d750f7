"""History retention against the real server: updates older than HISTORY_DAYS go, newer ones stay; by a TTL index
on MongoDB, by a chore on the embedded server."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from services.all import app as gossip
from services.ingest.retention import HISTORY_INDEX, delete_older, keep_history
from shared.db import Database, ensure_indexes, purges_ttl_on_read, utcnow
from shared.settings import Settings
from tests.support.servers import LiveServer
from tests.support.updates import stored_update
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
        await wait_until(only_recent_ones_left, timeout=90)  # MongoDB's TTL monitor runs once a minute
    finally:
        live.stop()


async def test_old_updates_go_in_batches_and_recent_ones_stay(db: Database) -> None:
    old = utcnow() - timedelta(days=3)
    await db.updates.insert_many([{**stored_update(seq), "created_at": old} for seq in range(1, 6)])
    await db.updates.insert_one(stored_update(6))
    assert await delete_older(db, utcnow() - timedelta(days=1), batch=2) == 5
    assert [update["seq"] async for update in db.updates.find({})] == [6]


async def test_an_old_document_without_a_seq_takes_no_other_with_it(db: Database) -> None:
    await db.updates.insert_many([{"text": "old", "created_at": utcnow() - timedelta(days=2)}, {"text": "new"}])
    assert await delete_older(db, utcnow() - timedelta(days=1)) == 1
    assert [update["text"] async for update in db.updates.find({})] == ["new"]


@pytest.mark.embedded
async def test_history_is_kept_by_a_chore_on_the_embedded_server(db: Database) -> None:
    """Its TTL index would make every read of `updates` scan it: no index, and the caller deletes old updates."""
    await ensure_indexes(db)
    assert await purges_ttl_on_read(db)
    for days in (90, 1, 0):
        assert await keep_history(db, days) == (days > 0)
        ttl = {index["name"]: index.get("expireAfterSeconds") async for index in await db.updates.list_indexes()}
        assert ttl.get(HISTORY_INDEX) is None


@pytest.mark.mongodb
async def test_history_is_kept_by_a_ttl_index_on_mongodb(db: Database) -> None:
    await ensure_indexes(db)
    assert not await purges_ttl_on_read(db)
    for days in (90, 1, 0):
        assert await keep_history(db, days) is False
        ttl = {index["name"]: index.get("expireAfterSeconds") async for index in await db.updates.list_indexes()}
        assert ttl.get(HISTORY_INDEX) == (days * 86400 if days else None)
