"""Every process's refusal counts, reported to MongoDB and summed for the console: live reports only, every limit
named, and a process's report withdrawn when it stops."""

from __future__ import annotations

from datetime import timedelta

from shared import refusals, reports
from shared.db import Database, utcnow
from shared.limits import LIMITS, refusal
from tests.support.waiting import wait_until


async def test_the_totals_sum_the_live_reports_of_every_process_and_name_every_limit(db: Database) -> None:
    now = utcnow()
    await reports.write(db.refusals, "auth-1", {"service": "auth", "counts": {"login": 2, "hashing": 1}}, now, 5)
    await reports.write(db.refusals, "ingest-1", {"service": "ingest", "counts": {"publish": 3}}, now, 5)
    await reports.write(
        db.refusals, "auth-2", {"service": "auth", "counts": {"login": 1}}, now - timedelta(seconds=9), 1
    )
    zero = dict.fromkeys(LIMITS, 0)
    assert await refusals.totals(db, now) == {**zero, "login": 2, "hashing": 1, "publish": 3}  # auth-2 has expired
    assert await refusals.totals(db, now + timedelta(seconds=15)) == zero


async def test_a_process_reports_what_it_has_refused_until_it_stops(db: Database) -> None:
    refusal("registration", 429, "Too many.", 1)  # counted in this process's gossip_refusals_total
    async with refusals.reported(db, "auth", 0.1):  # a lease under a second, read all the same
        report = await wait_until(lambda: db.refusals.find_one({}))
        assert report["service"] == "auth" and report["counts"]["registration"] >= 1
        assert report["counts"] == refusals.counted()
        assert (await refusals.totals(db, utcnow()))["registration"] == report["counts"]["registration"]
    assert await db.refusals.count_documents({}) == 0
