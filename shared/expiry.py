"""Expired documents' removal where a TTL index would cost every read a scan (the embedded server): a chore in the
service that owns the collection deletes them about as often as MongoDB's TTL monitor would. Readers treat an
expired document as absent whenever it goes, so nothing depends on the chore's timing."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from shared import tasks
from shared.app import Extension
from shared.db import EXPIRING, purges_ttl_on_read, utcnow
from shared.state import Core

log = logging.getLogger("gossip.expiry")
EVERY = 60.0  # seconds between two sweeps, as MongoDB's TTL monitor
BATCH, MAX_BATCHES = 1000, 100  # a sweep deletes at most this many batches; the next one goes on


# Embedded-server workaround: the chore that stands for the TTL index (shared/db.py `_index_expiry`) there.
async def delete_expired(collection: AsyncCollection[dict[str, Any]], now: datetime, batch: int = BATCH) -> int:
    """Deletes the documents whose `expires_at` is before `now`, a batch per operation so that none holds the
    database for long, and at most MAX_BATCHES of them. Returns how many went."""
    deleted = 0
    for _ in range(MAX_BATCHES):
        expired = await collection.find({"expires_at": {"$lt": now}}, {"_id": 1}).limit(batch).to_list()
        if expired:
            ids = [document["_id"] for document in expired]
            deleted += (await collection.delete_many({"_id": {"$in": ids}})).deleted_count
        if len(expired) < batch:
            break
    return deleted


async def sweep(core: Core, names: tuple[str, ...]) -> None:
    now = utcnow()
    for name in names:
        if deleted := await delete_expired(core["db"][name], now):
            log.info("removed %d expired documents from %s", deleted, name)


def expiring(*names: str) -> Extension:
    """The chore that removes the expired documents of `names` (each of EXPIRING) on the embedded server, for as long
    as the service that owns them runs; nothing on MongoDB, whose TTL monitor does it."""
    assert set(names) <= set(EXPIRING), names

    @contextlib.asynccontextmanager
    async def chore(core: Core) -> AsyncIterator[dict[str, Any]]:
        if not await purges_ttl_on_read(core["db"]):
            yield {}
            return
        async with tasks.repeating(lambda: sweep(core, names), EVERY, f"the sweep of expired {', '.join(names)}"):
            yield {}

    return chore
