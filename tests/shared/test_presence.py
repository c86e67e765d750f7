"""Presence records: one document per stream process, read back as who has an open feed anywhere, never past its
expiry even before MongoDB's TTL monitor has removed it."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared import presence
from shared.db import Database, utcnow


async def test_a_user_is_looking_while_any_process_reports_them(db: Database) -> None:
    now = utcnow()
    await presence.report(db, "one", {"alice": {"flash"}}, now, interval=5)
    await presence.report(db, "two", {"bob": {"sherlock", "flash"}}, now, interval=5)
    assert await presence.looking(db, ["alice", "bob", "carol"], now) == {"alice", "bob"}
    assert await presence.looking(db, ["carol"], now) == set()
    stored = await db.presence.find_one({"_id": "two"})
    assert stored is not None and stored["users"] == {"bob": ["flash", "sherlock"]}
    assert isinstance(stored["expires_at"], datetime)  # a date, which the TTL index needs


async def test_a_report_that_was_not_renewed_counts_for_nothing(db: Database) -> None:
    now = utcnow()
    await presence.report(db, "one", {"alice": {"flash"}}, now, interval=5)
    assert await presence.looking(db, ["alice"], now + timedelta(seconds=14)) == {"alice"}
    assert await presence.looking(db, ["alice"], now + timedelta(seconds=15)) == set()


async def test_a_new_report_replaces_the_last_and_a_withdrawn_one_is_gone(db: Database) -> None:
    now = utcnow()
    await presence.report(db, "one", {"alice": {"flash"}}, now, interval=5)
    await presence.report(db, "one", {"bob": {"flash"}}, now, interval=5)
    assert await presence.looking(db, ["alice", "bob"], now) == {"bob"}
    await presence.withdraw(db, "one")
    assert await presence.looking(db, ["bob"], now) == set()
