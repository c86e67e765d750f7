"""Expired documents' removal against the real server: a plain index and the services' chores on the embedded server,
TTL indexes on MongoDB; what has not expired stays."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.all import app as gossip
from shared.db import EXPIRING, Database, ensure_indexes, new_id, purges_ttl_on_read, utcnow
from shared.expiry import MAX_BATCHES, delete_expired
from shared.settings import Settings
from tests.support.servers import LiveServer
from tests.support.waiting import wait_until


async def _expiry_ttls(db: Database, name: str) -> list[Any]:
    """The expireAfterSeconds of each index of the collection on `expires_at` (None for a plain one)."""
    indexes = [index async for index in await db[name].list_indexes()]
    return [index.get("expireAfterSeconds") for index in indexes if index["key"] == {"expires_at": 1}]


async def _some_expired(db: Database, name: str, count: int) -> list[str]:
    ids = [new_id() for _ in range(count)]
    await db[name].insert_many([{"_id": i, "expires_at": utcnow() - timedelta(hours=1)} for i in ids])
    return ids


async def test_expired_documents_go_in_batches_and_live_ones_stay(db: Database) -> None:
    expired = await _some_expired(db, "sessions", 5)
    await db.sessions.insert_one({"_id": "live", "expires_at": utcnow() + timedelta(hours=1)})
    assert await delete_expired(db.sessions, utcnow(), batch=2) == len(expired)
    assert [session["_id"] async for session in db.sessions.find({})] == ["live"]


async def test_a_sweep_is_bounded_and_the_next_one_goes_on(db: Database) -> None:
    await _some_expired(db, "presence", MAX_BATCHES + 1)
    assert await delete_expired(db.presence, utcnow(), batch=1) == MAX_BATCHES
    assert await delete_expired(db.presence, utcnow(), batch=1) == 1


async def test_each_service_removes_the_expired_documents_of_its_collections(settings: Settings, db: Database) -> None:
    expired = {name: await _some_expired(db, name, 3) for name in EXPIRING}
    for name in EXPIRING:
        await db[name].insert_one({"_id": "live", "expires_at": utcnow() + timedelta(days=1)})
    live = LiveServer(gossip.create(settings)).start()

    async def only_live_ones_left() -> bool:
        for name, ids in expired.items():
            if [d["_id"] async for d in db[name].find({"_id": {"$in": [*ids, "live"]}})] != ["live"]:
                return False
        return True

    try:
        await wait_until(only_live_ones_left, timeout=90)  # MongoDB's TTL monitor runs once a minute
    finally:
        live.stop()


@pytest.mark.embedded
async def test_the_embedded_server_gets_plain_expiry_indexes(db: Database) -> None:
    """Its TTL index would make every read of the collection scan it. One left by an earlier start is replaced."""
    assert await purges_ttl_on_read(db)
    await db.sessions.create_index("expires_at", expireAfterSeconds=0)
    await ensure_indexes(db)
    for name in EXPIRING:
        assert await _expiry_ttls(db, name) == [None], name


@pytest.mark.mongodb
async def test_mongodb_gets_ttl_indexes(db: Database) -> None:
    assert not await purges_ttl_on_read(db)
    await db.sessions.create_index("expires_at")
    await ensure_indexes(db)
    for name in EXPIRING:
        assert await _expiry_ttls(db, name) == [0], name
