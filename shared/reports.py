"""A process's own document in a collection, rewritten every few seconds and withdrawn when the process stops: how one
process tells the others what only it knows (a stream process: who has feeds open there; every process: what it has
refused). A process that dies stops renewing its document, which then counts for nothing once its `expires_at` has
passed: the collection is TTL-indexed on it, and since MongoDB's TTL monitor runs only once a minute, every read
skips what has expired as well."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from shared import tasks
from shared.db import farewell, new_id, put, utcnow

LIFETIMES = 3  # a report stands for this many intervals: one missed write does not make a process vanish

Reports = AsyncCollection[dict[str, Any]]


def process_id() -> str:
    """This process's name in a report: host and pid for whoever reads the collection, and a random part since a pid
    is reused after a restart."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()[:8]}"


async def write(reports: Reports, process: str, body: Mapping[str, Any], now: datetime, interval: float) -> None:
    """One write for the whole process. replace_one (through `put`), not $set: the embedded server would store the
    expiry date as a string."""
    expires_at = now + timedelta(seconds=interval * LIFETIMES)
    await put(reports, {**body, "_id": process, "reported_at": now, "expires_at": expires_at})


# Embedded-server workaround: its `find` compares dates in whole seconds, so a report whose lease ends later in the
# current second reads as over (a lease under a second is then hardly ever seen). A second more is read and each
# date checked here, which is correct on MongoDB too.
async def live(reports: Reports, now: datetime, fields: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    """Every report that has not expired: one read, a document per process, in the order of their names."""
    wanted = None if fields is None else {**fields, "expires_at": 1}
    found = reports.find({"expires_at": {"$gt": now - timedelta(seconds=1)}}, wanted).sort("_id", 1)
    return [report async for report in found if isinstance(end := report.get("expires_at"), datetime) and end > now]


@contextlib.asynccontextmanager
async def reporting(
    reports: Reports, body: Callable[[], Mapping[str, Any]], interval: float, what: str,
    clock: Callable[[], datetime] = utcnow,
) -> AsyncIterator[None]:  # fmt: skip
    """Writes `body()` every `interval` seconds for as long as the context lasts, then withdraws it (a farewell:
    bounded, and skipped when the database has gone, since the report expires on its own). `clock`: injected, so
    that a test reads the report's lease without waiting for it to run out."""
    process = process_id()

    async def report() -> None:
        await write(reports, process, body(), clock(), interval)

    try:
        async with tasks.repeating(report, interval, f"reporting {what}"):
            yield
    finally:
        await farewell(reports.database, f"withdrawing {what}", lambda: reports.delete_one({"_id": process}))
