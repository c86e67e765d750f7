"""History retention: updates older than HISTORY_DAYS are removed, by MongoDB's TTL monitor, or where a TTL index
would cost every read a scan (the embedded server), by a chore here that deletes them about as often."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from shared import tasks
from shared.db import Database, delete_older, keep_history, utcnow
from shared.state import Core

log = logging.getLogger("gossip.ingest.retention")
EVERY = 60.0  # seconds between two sweeps, as MongoDB's TTL monitor


async def sweep(db: Database, days: float) -> int:
    """Removes what is older than `days` now; returns how many updates went."""
    deleted = await delete_older(db, utcnow() - timedelta(days=days))
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
