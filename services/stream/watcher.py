"""One change stream per collection per process, feeding the hub in seq order; the database is the history."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from services.stream.frames import read_frame, update_frame
from services.stream.hub import Hub
from services.stream.metrics import DELIVERED, RESTARTS
from services.stream.reorder import Reorder
from shared.app import USER_FIELDS
from shared.db import Database, as_datetime, next_change
from shared.updates import history, unread

log = logging.getLogger("gossip.stream.watcher")

Update = dict[str, Any]
RETRY_DELAY = 0.5  # between attempts to reopen a failed change stream
STOP_CHECK, STOP_TRIES = 0.1, 30  # stop() cancels its tasks again every STOP_CHECK seconds, up to STOP_TRIES times
BATCH = 1000
LOOKUP = {"full_document": "updateLookup"}  # the embedded server's update events say nothing of what changed


async def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class ChangeFeed:
    """One change stream the watcher keeps open: what to do when it (re)opens, per change, and when idle.

    `server_wait` is how long MongoDB may hold an empty getMore (maxAwaitTimeMS): it answers as soon as a change
    commits, so a change never waits for it, but `on_idle` runs only once it has answered. The embedded server
    answers at once whatever it is told; there `pause` paces the polls instead."""

    collection: AsyncCollection[Update]
    pipeline: list[dict[str, Any]]
    on_open: Callable[[], Awaitable[None]]
    on_change: Callable[[dict[str, Any]], Awaitable[None]]
    on_idle: Callable[[], Awaitable[None]] = _nothing
    pause: float = 0.1  # after an empty batch, the least time before the next getMore
    server_wait: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)


class Watcher:
    """Watches `updates` (inserts), `users` (follows and read marks) and `sessions` (logouts, renewals, expiries).
    After any failure it reopens the stream and reads `updates` above the last delivered seq, so open feeds miss
    nothing."""

    def __init__(self, db: Database, hub: Hub, gap_wait: float = 1.0, sweep: float = 2.0) -> None:
        self.db, self.hub, self.sweep = db, hub, sweep
        self.reorder: Reorder[Update] = Reorder(0, gap_wait)
        self._next_sweep = 0.0
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def delivered(self) -> int:
        """Every update up to here has been handed to the hub (or was a hole); feeds replay up to it."""
        return self.reorder.delivered

    async def start(self) -> None:
        latest = await self.db.updates.find_one({}, {"seq": 1}, sort=[("seq", -1)])
        self.reorder.delivered = latest["seq"] if latest else 0
        streams = [
            ChangeFeed(self.db.updates, [{"$match": {"operationType": "insert"}}], self.catch_up, self._on_update,
                       self._on_idle, pause=0.01, server_wait=0.1),  # so that on_idle settles a gap on time
            ChangeFeed(self.db.users, [{"$match": {"operationType": {"$in": ["update", "replace"]}}}],
                       self._resync_users, self._on_user, pause=0.05, options=LOOKUP),
            ChangeFeed(self.db.sessions, [{"$match": {"operationType": {"$in": ["delete", "update", "replace"]}}}],
                       self._resync_sessions, self._on_session, options=LOOKUP),
        ]  # fmt: skip
        opened = [asyncio.Event() for _ in streams]
        watched = zip(streams, opened, strict=True)
        self._tasks = [asyncio.create_task(self._watch(feed, event)) for feed, event in watched]
        await asyncio.gather(*(event.wait() for event in opened))

    async def stop(self) -> None:
        """Cancels until every stream has ended. When the database has just gone, PyMongo can take a cancellation
        for the dropped connection and resume the change stream, which waits out its 5 s server selection: the
        stream service then took 5 s to stop. A second cancellation ends that wait."""
        for _ in range(STOP_TRIES):
            if not (running := [task for task in self._tasks if not task.done()]):
                return
            for task in running:
                task.cancel()
            await asyncio.wait(running, timeout=STOP_CHECK)
        log.warning("%d change streams did not stop; leaving them", sum(not task.done() for task in self._tasks))

    async def _watch(self, feed: ChangeFeed, opened: asyncio.Event) -> None:
        name = feed.collection.name
        while True:
            try:
                async with await feed.collection.watch(
                    feed.pipeline, max_await_time_ms=int(feed.server_wait * 1000), **feed.options
                ) as stream:
                    await feed.on_open()  # after the stream is open, so nothing falls between the two
                    opened.set()
                    while True:
                        change = await next_change(stream, feed.pause)
                        await (feed.on_change(change) if change is not None else feed.on_idle())
            except asyncio.CancelledError:
                raise
            except Exception:
                RESTARTS.labels(collection=name).inc()
                log.warning("change stream on %s failed; reopening", name, exc_info=True)
                await asyncio.sleep(RETRY_DELAY)

    def _deliver(self, updates: list[Update]) -> None:
        for update in updates:
            DELIVERED.inc(self.hub.publish(update["show"], update_frame(update)))

    async def catch_up(self) -> None:
        """Whatever committed while no stream was open goes through the same ordering as live changes.

        It reads on only while batches come back full: what commits meanwhile is the open stream's to deliver.
        Reading until a read came back empty never ended while publishers kept up a steady pace, so the sweep
        became a loop of reads that held up the change stream it stands in for."""
        after, now = self.delivered, time.monotonic()
        while True:
            batch = await history(self.db, None, after, BATCH)
            for update in batch:
                self._deliver(self.reorder.push(update["seq"], update, now))
            if len(batch) < BATCH:
                break
            after = batch[-1]["seq"]
        self._next_sweep = now + self.sweep

    async def _on_update(self, change: dict[str, Any]) -> None:
        update = change["fullDocument"]
        self._deliver(self.reorder.push(update["seq"], update, time.monotonic()))
        await self._on_idle()

    async def _on_idle(self) -> None:
        now = time.monotonic()
        if self.reorder.overdue(now):
            after, upto = self.reorder.gap()
            found = [(update["seq"], update) for update in await history(self.db, None, after, BATCH, upto)]
            self._deliver(self.reorder.settle(found))
        elif now >= self._next_sweep:
            await self.catch_up()  # a change event lost without an error is found here within `sweep`

    async def _on_user(self, change: dict[str, Any]) -> None:
        user = change.get("fullDocument")
        if user is not None:
            await self._user_changed(change["documentKey"]["_id"], user)

    async def _user_changed(self, user_id: str, user: dict[str, Any]) -> None:
        """A follow change or a new read mark (POST /api/me/read, from any tab or device) reaches every feed of the
        user with the unread count as of the last update those feeds were sent, so no page has to guess it."""
        last_read = user.get("last_read_seq", 0)
        if not self.hub.user_changed(user_id, user.get("follows", []), last_read):
            return
        follows, username = user.get("follows", []), user.get("username", "")
        counted, upto = 0, 0
        while upto < (ceiling := self.delivered):  # updates delivered while counting are counted too
            counted += await unread(self.db, follows, max(last_read, upto), username, ceiling)
            upto = ceiling
        self.hub.tell(user_id, read_frame(last_read, counted))

    async def _resync_users(self) -> None:
        """Follow and read-mark changes made while no stream was open."""
        async for user in self.db.users.find({"_id": {"$in": self.hub.users()}}, USER_FIELDS):
            await self._user_changed(user["_id"], user)

    async def _on_session(self, change: dict[str, Any]) -> None:
        session_id = change["documentKey"]["_id"]
        if change["operationType"] == "delete":
            self.hub.expire(time.time())  # a session deleted once its time was up (the TTL monitor) has expired
            self.hub.revoke(session_id)  # else it was revoked: a logout
        elif (session := change.get("fullDocument")) is not None:
            self._session_ends(session_id, session)

    def _session_ends(self, session_id: str, session: dict[str, Any]) -> None:
        """A renewal moves a session's end later; an end set in the past ends its feeds at once. A session whose end
        is not a date (written by hand) is left as it was: failing here would restart the change stream for ever."""
        try:
            ends = as_datetime(session.get("expires_at")).timestamp()
        except TypeError:
            log.warning("a session's expires_at is not a date: %r", session.get("expires_at"))
            return
        self.hub.session_ends(session_id, ends)
        self.hub.expire(time.time())

    async def _resync_sessions(self) -> None:
        """Sessions revoked, renewed or cut short while no stream was open."""
        open_sessions = self.hub.sessions()
        alive = [session async for session in self.db.sessions.find({"_id": {"$in": open_sessions}}, {"expires_at": 1})]
        for session_id in set(open_sessions) - {session["_id"] for session in alive}:
            self.hub.revoke(session_id)
        for session in alive:
            self._session_ends(session["_id"], session)
