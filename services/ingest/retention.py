"""History retention: updates older than HISTORY_DAYS are removed, by MongoDB's TTL monitor, or where a TTL index
would cost every read a scan (the embedded server), by a chore here that deletes them about as often."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from shared import tasks
from shared.db import Database, purges_ttl_on_read, utcnow
from shared.state import Core
from shared.updates import history_cutoff

log = logging.getLogger("gossip.ingest.retention")
EVERY = 60.0  # seconds between two sweeps, as MongoDB's TTL monitor
HISTORY_INDEX = "updates_history"  # the TTL index that removes old updates on MongoDB


# Embedded-server workaround: its TTL index purges on every read, with a full scan, so there a chore deletes instead.
async def keep_history(db: Database, days: float) -> bool:
    """Updates older than `days` are removed (0 keeps them all): by a TTL index on MongoDB, whose monitor deletes
    them about once a minute. True when the caller must delete them itself (delete_older), as on the embedded server.
    A changed setting replaces the index."""
    seconds = round(days * 86400)
    indexes = {index["name"]: index async for index in await db.updates.list_indexes()}
    kept = indexes.get(HISTORY_INDEX, {}).get("expireAfterSeconds")
    chore = bool(seconds) and await purges_ttl_on_read(db)
    wanted = None if chore or not seconds else seconds
    if kept is not None and kept != wanted:
        await db.updates.drop_index(HISTORY_INDEX)
    if wanted is not None and kept != wanted:
        await db.updates.create_index("created_at", name=HISTORY_INDEX, expireAfterSeconds=wanted)
    return chore


# Embedded-server workaround: the chore keep_history asks for there; on MongoDB the TTL monitor does this.
async def delete_older(db: Database, cutoff: datetime, batch: int = 1000) -> int:
    """Deletes the updates created before `cutoff`, oldest first, a batch per operation so that none holds the
    database for long. Returns how many went. By _id: a document another program wrote may have no seq yet."""
    deleted = 0
    while True:
        old = await db.updates.find({"created_at": {"$lt": cutoff}}, {"_id": 1}).sort("seq", 1).limit(batch).to_list()
        if old:
            deleted += (await db.updates.delete_many({"_id": {"$in": [update["_id"] for update in old]}})).deleted_count
        if len(old) < batch:
            return deleted


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
    """The index (or the chore) that keeps HISTORY_DAYS, for as long as the service runs."""
    db, days = core["db"], core["settings"].history_days
    chore = asyncio.create_task(_sweeping(db, days)) if await keep_history(db, days) else None
    try:
        yield {}
    finally:
        await tasks.stop(chore)
