"""The one scheduler: whichever auth process holds the lease in `leases` runs the jobs (pushes, digests) in turn, at
least once a minute; the others only try for the lease. A job is `async (now) -> None`, now from the injected clock,
so that tests move time on instead of waiting for it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
from pymongo.errors import DuplicateKeyError

from services.auth.digest import digest_job
from services.auth.push import Pusher
from services.auth.webpush import WebPush, application_server_key, server_key, tls
from shared import tasks
from shared.db import Database, all_of, farewell, new_id, utcnow
from shared.state import Core

log = logging.getLogger("gossip.auth.scheduler")

Job = Callable[[datetime], Awaitable[None]]
Clock = Callable[[], datetime]
LEASE = "scheduler"
LEASE_TICKS = 4  # the lease lasts this many ticks: a holder that misses a renewal or two keeps it


class Lease:
    """One holder at a time across every process: a document {_id, holder, expires_at} that only its holder may
    renew, and anyone may take once it has expired. Written by replace_one, not $set: the embedded server would store
    the date as a string. The filter misses when another holds it, and the upsert then fails on the _id."""

    def __init__(self, db: Database, holder: str, seconds: float, name: str = LEASE) -> None:
        self.db, self.holder, self.seconds, self.name = db, holder, seconds, name

    async def hold(self, now: datetime) -> bool:
        """Takes or renews the lease until `seconds` after `now`; False while another holds it."""
        mine = {"_id": self.name, "holder": self.holder, "expires_at": now + timedelta(seconds=self.seconds)}
        taken = all_of({"_id": self.name}, {"$or": [{"holder": self.holder}, {"expires_at": {"$lte": now}}]})
        try:
            await self.db.leases.replace_one(taken, mine, upsert=True)
        except DuplicateKeyError:
            return False
        return True

    async def release(self) -> None:
        """At shutdown, so that another process takes over at its next tick instead of when the lease expires."""
        await self.db.leases.delete_one({"_id": self.name, "holder": self.holder})


class Scheduler:
    def __init__(
        self, db: Database, jobs: Sequence[tuple[str, Job]], every: float, clock: Clock = utcnow, holder: str = ""
    ) -> None:
        self.jobs, self.every, self.clock = list(jobs), every, clock
        self.lease = Lease(db, holder or new_id(), every * LEASE_TICKS)
        self.holding = False

    async def tick(self) -> bool:
        """One round: the jobs in turn while this process holds the lease, which is renewed before each, so that a
        holder that lost it (a long pause, the database away) stops at once. True if it held the lease throughout."""
        for name, job in self.jobs:
            now = self.clock()
            if not await self._held(now):
                return False
            try:
                await job(now)
            except Exception:  # one job's failure must not stop the others, nor the next round
                log.exception("the scheduled job %s failed; it runs again at the next tick", name)
        return await self._held(self.clock())

    async def _held(self, now: datetime) -> bool:
        try:
            held = await self.lease.hold(now)
        except Exception:  # the database is away: nobody can be sure of the lease, so nothing runs
            log.warning("could not renew the scheduler's lease", exc_info=True)
            held = False
        if held != self.holding:
            log.info("this process %s the scheduler's lease", "holds" if held else "no longer holds")
            self.holding = held
        return held

    async def stop(self) -> None:
        """Releases the lease it holds: a farewell, bounded and skipped when the database has gone (it expires)."""
        if self.holding:
            await farewell(self.lease.db, "releasing the scheduler's lease", self.lease.release)
            self.holding = False


@contextlib.asynccontextmanager
async def scheduling(core: Core) -> AsyncIterator[dict[str, Any]]:
    """The scheduler of this auth process, with its jobs, for as long as the service runs; and the public half of the
    key its pushes are signed with, which browsers subscribe with (GET /api/push/key)."""
    db, settings = core["db"], core["settings"]
    vapid = server_key(settings)
    async with httpx.AsyncClient(verify=tls()) as http:
        pusher = Pusher(db, settings, core["catalogue"], WebPush(vapid, settings.vapid_subject, http))
        jobs: list[tuple[str, Job]] = [("push", pusher), ("digest", digest_job(core))]
        scheduler = Scheduler(db, jobs, settings.scheduler_interval)
        try:
            async with tasks.repeating(scheduler.tick, scheduler.every, "a scheduler round"):
                yield {"push_key": application_server_key(vapid)}
        finally:
            await scheduler.stop()
