"""Presence records: one document per stream process, read back as who has an open feed anywhere, never past its
expiry even before MongoDB's TTL monitor has removed it; counted per show, never naming anyone."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from shared import presence, reports
from shared.db import Database, utcnow
from shared.presence import EVERY_SHOW


async def _report(db: Database, process: str, users: Mapping[str, Iterable[str]], now: datetime) -> None:
    await reports.write(db.presence, process, presence.report_of(users), now, interval=5)


async def test_a_user_is_looking_while_any_process_reports_them(db: Database) -> None:
    now = utcnow()
    await _report(db, "one", {"alice": {"flash"}}, now)
    await _report(db, "two", {"bob": {"sherlock", "flash"}}, now)
    assert await presence.looking(db, ["alice", "bob", "carol"], now) == {"alice", "bob"}
    assert await presence.looking(db, ["carol"], now) == set()
    stored = await db.presence.find_one({"_id": "two"})
    assert stored is not None and stored["users"] == {"bob": ["flash", "sherlock"]}
    assert isinstance(stored["expires_at"], datetime)  # a date, which the TTL index needs


async def test_a_report_that_was_not_renewed_counts_for_nothing(db: Database) -> None:
    now = utcnow()
    await _report(db, "one", {"alice": {"flash"}}, now)
    assert await presence.looking(db, ["alice"], now + timedelta(seconds=14)) == {"alice"}
    assert await presence.looking(db, ["alice"], now + timedelta(seconds=15)) == set()


async def test_a_new_report_replaces_the_last(db: Database) -> None:
    now = utcnow()
    await _report(db, "one", {"alice": {"flash"}}, now)
    await _report(db, "one", {"bob": {"flash"}}, now)
    assert await presence.looking(db, ["alice", "bob"], now) == {"bob"}


def test_watching_counts_each_person_once_per_show_across_processes_and_feeds_of_every_show() -> None:
    found = [
        {"users": {"alice": ["flash", "sherlock"], "bob": [EVERY_SHOW]}},
        {"users": {"alice": ["flash"], "carol": ["suits"]}},
        {"feeds": 0},  # a process with no open feed reports no users
    ]
    assert presence.watching(found, ["flash", "sherlock", "suits", "gossip_girl"]) == {
        "flash": 2, "sherlock": 2, "suits": 2, "gossip_girl": 1,
    }  # fmt: skip
