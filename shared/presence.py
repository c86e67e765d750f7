"""Who is looking: each stream process reports, every PRESENCE_INTERVAL seconds, which users it holds open feeds for
and which shows each carries, as one `presence` document of its own (shared/reports.py: a process that dies drops
out within LIFETIMES intervals). The stream service writes it; auth reads it ("N watching", and the push sender's
"has this user an open feed anywhere?")."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from shared import reports
from shared.db import Database

EVERY_SHOW = "*"  # a feed of /events/all carries every show


def report_of(users: Mapping[str, Iterable[str]], figures: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a process reports: per user, the shows their open feeds carry; beside them `figures`, what the operator
    console shows of the process (its feeds per show, change-stream lag)."""
    return {**(figures or {}), "users": {user_id: sorted(shows) for user_id, shows in users.items()}}


async def looking(db: Database, user_ids: Collection[str], now: datetime) -> set[str]:
    """Which of `user_ids` have an open feed on any stream process now: one read of a document per process."""
    if not user_ids:
        return set()
    found = await reports.live(db.presence, now, {"users": 1})
    return {user_id for report in found for user_id in report.get("users", {}) if user_id in user_ids}


async def current(db: Database, now: datetime) -> list[dict[str, Any]]:
    """Every stream process's report that has not expired: one read, a document per process."""
    return await reports.live(db.presence, now)


def watching(found: Iterable[Mapping[str, Any]], shows: Iterable[str]) -> dict[str, int]:
    """Per show, the people with an open feed that carries it (a feed of followed shows that holds it, or a feed of
    every show), each counted once however many feeds and processes they have: a count, never who."""
    every: set[str] = set()
    by_show: dict[str, set[str]] = {}
    for report in found:
        for user_id, carried in (report.get("users") or {}).items():
            for show in carried:
                (every if show == EVERY_SHOW else by_show.setdefault(show, set())).add(user_id)
    return {show: len(by_show.get(show, set()) | every) for show in shows}
