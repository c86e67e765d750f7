"""A process's report to the others (shared/reports.py): live for LIFETIMES intervals from its writing, to the
millisecond on either server, whatever fields the reader asks for."""

from __future__ import annotations

from datetime import timedelta

from shared import reports
from shared.db import Database, utcnow


async def test_a_report_is_live_until_its_lease_ends_within_the_second(db: Database) -> None:
    """The embedded server's `find` compares dates in whole seconds: this lease ends in the second it began."""
    now = utcnow().replace(microsecond=100_000)
    await reports.write(db.refusals, "one", {"counts": {"login": 1}}, now, interval=0.2)  # until .700
    for after in (0.0, 0.3, 0.599):
        assert [report["_id"] for report in await reports.live(db.refusals, now + timedelta(seconds=after))] == ["one"]
    assert await reports.live(db.refusals, now + timedelta(seconds=0.6)) == []
    assert await reports.live(db.refusals, now + timedelta(seconds=0.3), {"counts": 1}) == [
        {"_id": "one", "counts": {"login": 1}, "expires_at": now + timedelta(seconds=0.6)}
    ]


async def test_reports_are_read_in_the_order_of_their_processes(db: Database) -> None:
    now = utcnow()
    for process in ("b", "c", "a"):
        await reports.write(db.presence, process, {}, now, interval=5)
    assert [report["_id"] for report in await reports.live(db.presence, now)] == ["a", "b", "c"]
