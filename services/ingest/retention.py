"""History retention: updates older than HISTORY_DAYS are removed by a sweep here, about once a minute, on MongoDB
and the embedded server alike. Not by a TTL index: what removes history must note how far it went (the horizon,
`shared.updates.trimmed`), so that a feed resuming from below it is told it missed updates, and one resuming beside
an update its author deleted is not. MongoDB's TTL monitor removes without telling anyone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from shared import tasks
from shared.db import Database, utcnow
from shared.state import Core
from shared.updates import TRIMMED, history_cutoff, is_seq

log = logging.getLogger("gossip.ingest.retention")
EVERY = 60.0  # seconds between two sweeps, as MongoDB's TTL monitor
HISTORY_INDEX = "updates_history"  # on `created_at`: how the sweep finds old updates


# Embedded-server workaround: it names indexes itself and ignores a drop by another name, so they are found by key.
async def keep_history(db: Database, days: float) -> None:
    """The index the sweep finds old updates by, while `days` is not 0 (0 keeps them all). A TTL index on the same
    field (an older release's, on MongoDB) is replaced: its deletions would go unnoted."""
    kept = False
    async for index in await db.updates.list_indexes():
        if dict(index["key"]) != {"created_at": 1}:
            continue
        if days and "expireAfterSeconds" not in index:
            kept = True
        else:
            await db.updates.drop_index(index["name"])
    if days and not kept:
        await db.updates.create_index("created_at", name=HISTORY_INDEX)


async def delete_older(db: Database, cutoff: datetime, batch: int = 1000) -> int:
    """Deletes the updates created before `cutoff`, oldest first, a batch per operation so that none holds the
    database for long, and raises the horizon to each batch's highest seq once the batch is gone: never ahead of what
    was removed, and by `$max`, so sweeps of several ingest processes at once leave the highest. Returns how many
    went. By _id: a document another program wrote may have no seq yet."""
    deleted = 0
    while True:
        found = db.updates.find({"created_at": {"$lt": cutoff}}, {"_id": 1, "seq": 1}).sort("seq", 1).limit(batch)
        old = await found.to_list()
        if old:
            deleted += (await db.updates.delete_many({"_id": {"$in": [update["_id"] for update in old]}})).deleted_count
            await _trimmed_to(db, max((update["seq"] for update in old if is_seq(update.get("seq"))), default=0))
        if len(old) < batch:
            return deleted


async def _trimmed_to(db: Database, seq: int) -> None:
    if seq:
        await db.counters.update_one({"_id": TRIMMED}, {"$max": {"seq": seq}}, upsert=True)


async def sweep(db: Database, days: float) -> int:
    """Removes what is older than `days` now; returns how many updates went."""
    cutoff = history_cutoff(days, utcnow())
    deleted = await delete_older(db, cutoff) if cutoff is not None else 0
    if deleted:
        log.info("removed %d updates older than %g days", deleted, days)
    return deleted


async def _sweeping(db: Database, days: float) -> None:
    while True:
        try:
            await sweep(db, days)
        except Exception:  # the database may be away for a while: the next sweep catches up
            log.warning("could not remove old updates; trying again in %g s", EVERY, exc_info=True)
        await asyncio.sleep(EVERY)


@contextlib.asynccontextmanager
async def retention(core: Core) -> AsyncIterator[dict[str, Any]]:
    """The sweep that keeps HISTORY_DAYS, for as long as the service runs."""
    db, days = core["db"], core["settings"].history_days
    await keep_history(db, days)
    chore = asyncio.create_task(_sweeping(db, days)) if days else None
    try:
        yield {}
    finally:
        await tasks.stop(chore)
