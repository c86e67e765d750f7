"""The one scheduler: of two on one database only the lease holder runs jobs, and the lease passes on when its
holder stops renewing it. Time is the injected clock's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.auth.scheduler import LEASE_TICKS, Lease, Scheduler
from shared.db import Database, as_datetime
from tests.support.clock import Clock

EVERY = 15.0


class Recorder:
    def __init__(self) -> None:
        self.runs: list[datetime] = []

    async def __call__(self, now: datetime) -> None:
        self.runs.append(now)


async def test_only_the_lease_holder_runs_jobs(db: Database) -> None:
    clock, first, second = Clock(), Recorder(), Recorder()
    a = Scheduler(db, [("job", first)], EVERY, clock, holder="a")
    b = Scheduler(db, [("job", second)], EVERY, clock, holder="b")
    for _ in range(3):
        assert await a.tick()
        assert not await b.tick()
        clock.advance(EVERY)
    assert (len(first.runs), second.runs) == (3, [])


async def test_the_lease_passes_on_when_its_holder_stops_renewing(db: Database) -> None:
    clock, first, second = Clock(), Recorder(), Recorder()
    a = Scheduler(db, [("job", first)], EVERY, clock, holder="a")
    b = Scheduler(db, [("job", second)], EVERY, clock, holder="b")
    assert await a.tick()
    clock.advance(EVERY * LEASE_TICKS - 1)  # a misses its renewals, but the lease has not run out yet
    assert not await b.tick()
    clock.advance(1)
    assert await b.tick()
    assert not await a.tick()  # a comes back: it has lost the lease and runs nothing
    assert (len(first.runs), len(second.runs)) == (1, 1)
    lease = await db.leases.find_one({"_id": "scheduler"})
    assert lease is not None and lease["holder"] == "b"
    assert isinstance(lease["expires_at"], datetime) and as_datetime(lease["expires_at"]) > clock()


async def test_a_stopped_holder_hands_the_lease_on_at_once(db: Database) -> None:
    clock = Clock()
    a, b = Scheduler(db, [], EVERY, clock, holder="a"), Scheduler(db, [], EVERY, clock, holder="b")
    assert await a.tick()
    await a.stop()
    assert await b.tick()


async def test_a_failing_job_is_logged_and_the_next_runs(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    async def broken(now: datetime) -> None:
        raise RuntimeError("boom")

    after = Recorder()
    scheduler = Scheduler(db, [("broken", broken), ("after", after)], EVERY, Clock(), holder="a")
    assert await scheduler.tick()
    assert await scheduler.tick()
    assert len(after.runs) == 2
    assert "the scheduled job broken failed" in caplog.text


async def test_a_holder_that_loses_the_lease_mid_round_stops(db: Database) -> None:
    clock, later = Clock(), Recorder()
    b = Scheduler(db, [], EVERY, clock, holder="b")

    async def pause(now: datetime) -> None:
        """The round stalls past the lease, and another scheduler takes it meanwhile."""
        clock.advance(EVERY * LEASE_TICKS)
        assert await b.tick()

    a = Scheduler(db, [("pause", pause), ("later", later)], EVERY, clock, holder="a")
    assert not await a.tick()
    assert later.runs == []


async def test_a_lease_taken_leaves_every_other_lease_to_its_holder(db: Database) -> None:
    """Each lease is its own document, whatever another's holder (the filter is an explicit $and: shared/db.py
    `all_of`)."""
    now = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    for name in ("first", "second", "first"):
        assert await Lease(db, "me", 60, name=name).hold(now)
    held = {lease["_id"]: lease["holder"] async for lease in db.leases.find()}
    assert held == {"first": "me", "second": "me"}
