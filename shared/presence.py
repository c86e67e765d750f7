"""Who is looking: each stream process reports, every PRESENCE_INTERVAL seconds, which users it holds open feeds for
and which shows each carries, as one `presence` document of its own. The stream service writes it; the push sender
reads it ("has this user an open feed anywhere?").

A process that dies stops renewing its document, which then drops out: `expires_at` is TTL-indexed, and since
MongoDB's TTL monitor runs only once a minute, every read also skips what has expired."""

from __future__ import annotations

import os
import socket
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from shared.db import Database, new_id, put

EVERY_SHOW = "*"  # a feed of /events/all carries every show
LIFETIMES = 3  # a report stands for this many intervals: one missed write does not make a user vanish


def process_id() -> str:
    """This process's name in `presence`: host and pid for whoever reads the collection, and a random part since a
    pid is reused after a restart."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()[:8]}"


async def report(
    db: Database,
    process: str,
    users: Mapping[str, Iterable[str]],
    now: datetime,
    interval: float,
    figures: Mapping[str, Any] | None = None,
) -> None:
    """One write for the whole process, however many feeds it holds. replace_one (through `put`), not $set: the
    embedded server would store the expiry date as a string. `figures`: what the operator console shows of the
    process (its feeds per show, change-stream lag, refusals), beside who is looking."""
    carried = {user_id: sorted(shows) for user_id, shows in users.items()}
    expires_at = now + timedelta(seconds=interval * LIFETIMES)
    document = {**(figures or {}), "_id": process, "users": carried, "reported_at": now, "expires_at": expires_at}
    await put(db.presence, document)


async def withdraw(db: Database, process: str) -> None:
    """At shutdown: the process's users drop out at once instead of when the report expires."""
    await db.presence.delete_one({"_id": process})


async def looking(db: Database, user_ids: Collection[str], now: datetime) -> set[str]:
    """Which of `user_ids` have an open feed on any stream process now: one read of a document per process."""
    if not user_ids:
        return set()
    reports = await db.presence.find({"expires_at": {"$gt": now}}, {"users": 1}).to_list()
    return {user_id for report in reports for user_id in report.get("users", {}) if user_id in user_ids}


async def current(db: Database, now: datetime) -> list[dict[str, Any]]:
    """Every stream process's report that has not expired: one read, a document per process."""
    return await db.presence.find({"expires_at": {"$gt": now}}).sort("_id", 1).to_list()


def watching(reports: Iterable[Mapping[str, Any]], shows: Iterable[str]) -> dict[str, int]:
    """Per show, the people with an open feed that carries it (a feed of followed shows that holds it, or a feed of
    every show), each counted once however many feeds and processes they have: a count, never who."""
    every: set[str] = set()
    by_show: dict[str, set[str]] = {}
    for report in reports:
        for user_id, carried in (report.get("users") or {}).items():
            for show in carried:
                (every if show == EVERY_SHOW else by_show.setdefault(show, set())).add(user_id)
    return {show: len(by_show.get(show, set()) | every) for show in shows}
