"""History retention against the real server: updates older than HISTORY_DAYS go, newer ones stay."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from services.all import app as gossip
from shared.db import Database, utcnow
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
