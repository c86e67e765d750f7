"""One change stream per collection per process, feeding the hub in seq order; the database is the history."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import ConnectionFailure

from services.stream.adoption import Adoption
from services.stream.deletions import Deletions
from services.stream.frames import edit_frame, read_frame, retract_frame, update_frame
from services.stream.hub import Hub
from services.stream.metrics import DELIVERED, EDITS, RESTARTS, RETRACTIONS, SKIPPED
from services.stream.reorder import Reorder
from shared.app import USER_FIELDS
from shared.catalogue import Catalogue
from shared.db import Database, as_datetime, change_id, next_change, numbers, utcnow, with_now
from shared.updates import digest, is_seq, newest, problem, seq_in_id, unread

log = logging.getLogger("gossip.stream.watcher")

Update = dict[str, Any]
UPDATE_CHANGES = ["insert", "update", "replace", "delete"]
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


def text_changed(change: dict[str, Any], update: Update) -> bool:
    """Whether an update or replace event changed a stored update's text. MongoDB's update events say so in
    updateDescription (their fullDocument is looked up later, and may already hold the next write). A replace, and
    every update event of the embedded server, carry none; their fullDocument is the document as that change left
    it, so its text is compared with `announced`, the digest of the text its feeds were last told."""
    described = change.get("updateDescription")
    if described:
        return "text" in described.get("updatedFields", {})
    return bool(update.get("announced") != digest(update["text"]))


def timed_by_writer(change: dict[str, Any], update: Update) -> bool:
    """Whether the edit's writer set edited_at with the text, as the API's edit does: then that time is the edit's.
    Without updateDescription, the API's edit is known by the `announced` it drops; any other writer's edit is
    timed by its change event."""
    described = change.get("updateDescription")
    if described:
        return "edited_at" in described.get("updatedFields", {})
    return "announced" not in update and "edited_at" in update


class Watcher:
    """Watches `updates` (every write: inserts, edits, deletions), `users` (follows and read marks) and `sessions`
    (logouts, renewals, expiries). After any failure it reopens the stream and reads `updates` above the last
    delivered seq, so open feeds miss nothing. A change it cannot use is logged and skipped; only the database's
    failures reopen."""

    def __init__(
        self,
        db: Database,
        hub: Hub,
        catalogue: Catalogue,
        history_days: float = 0,
        gap_wait: float = 1.0,
        sweep: float = 2.0,
    ) -> None:
        self.db, self.hub, self.catalogue, self.sweep = db, hub, catalogue, sweep
        self.reorder: Reorder[Update | None] = Reorder(0, gap_wait)  # None: a rejected seq, passed over in order
        self.adoption, self.deletions = Adoption(db, catalogue), Deletions(db, history_days)
        self._next_sweep = 0.0
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def delivered(self) -> int:
        """Every update up to here has been handed to the hub (or was a hole); feeds replay up to it."""
        return self.reorder.delivered

    async def start(self) -> None:
        self.reorder.delivered = await newest(self.db)
        streams = [
            ChangeFeed(self.db.updates, [{"$match": {"operationType": {"$in": UPDATE_CHANGES}}}], self.catch_up,
                       self._on_update, self._on_idle, pause=0.01, server_wait=0.1,  # on_idle settles a gap on time
                       options=LOOKUP),
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
                        await (_skipping(name, feed.on_change, change) if change is not None else feed.on_idle())
            except asyncio.CancelledError:
                raise
            except Exception:
                RESTARTS.labels(collection=name).inc()
                log.warning("change stream on %s failed; reopening", name, exc_info=True)
                await asyncio.sleep(RETRY_DELAY)

    async def _deliver(self, updates: list[Update | None]) -> None:
        """Each update's frame is encoded once and the same bytes go to every feed; then the seqs of documents
        whose _id does not hold it are noted, after the feeds have them, so that a deletion can be retracted."""
        foreign = []
        for update in updates:
            if update is not None:
                DELIVERED.inc(self.hub.publish(update["show"], update_frame(update)))
                if seq_in_id(update["_id"]) != update["seq"]:
                    foreign.append(update)
        for update in foreign:
            await self.deletions.remember(update)

    async def _read(self, after: int, upto: int | None = None) -> list[Update]:
        """Stored documents in (after, upto] in seq order, whatever they hold: each is checked as a change is."""
        seq = {"$gt": after} if upto is None else {"$gt": after, "$lte": upto}
        return await self.db.updates.find({"seq": numbers(seq)}).sort("seq", 1).limit(BATCH).to_list()

    async def _vetted(self, document: Update) -> Update | None:
        """The document if it is an update to deliver; None if it is not, rejected (logged and counted once)."""
        if "rejected" in document:
            return None
        seq = document.get("seq")
        why = problem(document, await self.catalogue.titles()) if is_seq(seq) else f"seq: {seq!r} is not a seq"
        if why is None:
            return document
        await self.adoption.reject(document["_id"], why)
        return None

    async def catch_up(self) -> None:
        """Whatever committed while no stream was open goes through the same ordering as live changes.

        It reads on only while batches come back full: what commits meanwhile is the open stream's to deliver.
        Reading until a read came back empty never ended while publishers kept up a steady pace, so the sweep
        became a loop of reads that held up the change stream it stands in for."""
        after, now = self.delivered, time.monotonic()
        while True:
            batch = await self._read(after)
            for document in batch:
                update = await self._vetted(document)
                if is_seq(document["seq"]):
                    await self._deliver(self.reorder.push(document["seq"], update, now))
            if len(batch) < BATCH:
                break
            after = batch[-1]["seq"]
        await self.adoption.sweep()  # documents without a seq, inserted while no stream was open
        self._next_sweep = now + self.sweep

    async def _on_update(self, change: dict[str, Any]) -> None:
        kind = change["operationType"]
        if kind == "delete":
            await self._on_delete(change_id(change))
        elif kind in ("insert", "update", "replace"):
            document = change.get("fullDocument")
            if document is None and kind != "update":
                raise ValueError(f"an {kind} event without fullDocument")
            if document is not None:  # None: an update looked up after a deletion, whose own event follows
                document["_id"] = change_id(change)  # the embedded server's fullDocument may hold it encoded
                await self._on_document(change, document)
        else:
            raise ValueError(f"an unexpected operationType {kind!r}")
        await self._on_idle()

    async def _on_document(self, change: dict[str, Any], document: Update) -> None:
        """A new update goes out in seq order; a delivered one whose text changed goes out as an edit, and one that
        can no longer be shown as a retraction. A document without a seq is another program's, to be numbered."""
        if "rejected" in document:
            return
        seq = document.get("seq")
        if seq is None:
            if "claim" not in document:  # a claimed one is its claimer's, or the sweep's once the claim is stale
                inserted_at = change.get("wallTime") if change["operationType"] == "insert" else None
                await self.adoption.adopt(document["_id"], inserted_at)
            return
        update = await self._vetted(document)
        if not is_seq(seq):
            return
        if seq > self.delivered:
            await self._deliver(self.reorder.push(seq, update, time.monotonic()))
        elif update is None:  # a delivered update changed into something that is not one: history drops it too
            RETRACTIONS.inc(self.hub.broadcast(retract_frame(seq)))
        elif change["operationType"] != "insert" and text_changed(change, update):
            await self._edited(change, update)

    async def _edited(self, change: dict[str, Any], update: Update) -> None:
        """Tells the feeds, then stores `announced` so that later writes to the document are not taken for edits,
        and the edit's time if its writer gave none. Every process that saw the change tells its own feeds; the
        first to store it wins, the rest change nothing."""
        by_api = timed_by_writer(change, update)
        edited_at = update["edited_at"] if by_api else change.get("wallTime") or utcnow()
        EDITS.inc(self.hub.publish(update["show"], edit_frame(update["seq"], update["text"], edited_at)))
        announced = digest(update["text"])
        stamp = {"$set": {"announced": announced}}
        await self.db.updates.update_one(
            {"_id": update["_id"], "text": update["text"], "announced": {"$ne": announced}},
            stamp if by_api else with_now(stamp, "edited_at"),
        )

    async def _on_delete(self, document_id: object) -> None:
        """Sent to every feed: a delete event does not say the show, and a retraction is rare."""
        seq = await self.deletions.seq(document_id, self.delivered)
        if seq is None:
            return
        if seq <= self.delivered:
            RETRACTIONS.inc(self.hub.broadcast(retract_frame(seq)))
        else:
            self.reorder.discard(seq)

    async def _on_idle(self) -> None:
        now = time.monotonic()
        if self.reorder.overdue(now):
            after, upto = self.reorder.gap()
            found = [(doc["seq"], await self._vetted(doc)) for doc in await self._read(after, upto)]
            await self._deliver(self.reorder.settle((seq, update) for seq, update in found if is_seq(seq)))
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
        session_key = change["documentKey"]["_id"]
        if change["operationType"] == "delete":
            self.hub.expire(time.time())  # a session deleted once its time was up (the TTL monitor) has expired
            self.hub.revoke(session_key)  # else it was revoked: a logout
        elif (session := change.get("fullDocument")) is not None:
            self._session_ends(session_key, session)

    def _session_ends(self, session_key: str, session: dict[str, Any]) -> None:
        """A renewal moves a session's end later; an end set in the past ends its feeds at once. A session whose end
        is not a date (written by hand) is left as it was: failing here would restart the change stream for ever."""
        try:
            ends = as_datetime(session.get("expires_at")).timestamp()
        except TypeError:
            log.warning("a session's expires_at is not a date: %r", session.get("expires_at"))
            return
        self.hub.session_ends(session_key, ends)
        self.hub.expire(time.time())

    async def _resync_sessions(self) -> None:
        """Sessions revoked, renewed or cut short while no stream was open."""
        open_sessions = self.hub.sessions()
        alive = [session async for session in self.db.sessions.find({"_id": {"$in": open_sessions}}, {"expires_at": 1})]
        for session_key in set(open_sessions) - {session["_id"] for session in alive}:
            self.hub.revoke(session_key)
        for session in alive:
            self._session_ends(session["_id"], session)


async def _skipping(name: str, handle: Callable[[dict[str, Any]], Awaitable[None]], change: dict[str, Any]) -> None:
    """A change the code cannot use (a field missing or of a wrong type, an operation it does not expect) is logged
    in one line and skipped: reopening the stream would not make it usable, and the changes after it still count.
    Only the database's own failures reach the loop, which reopens the stream and catches up."""
    try:
        await handle(change)
    except ConnectionFailure:
        raise
    except Exception as error:  # any bug a document can trigger: one line, not a traceback per change
        SKIPPED.labels(collection=name).inc()
        key = change.get("documentKey") if isinstance(change, dict) else None
        log.warning("skipped a change on %s (%r): %s: %s", name, key, type(error).__name__, error)
