"""One change stream per collection per process, feeding the hub in seq order; the database is the history."""

from __future__ import annotations

import logging
import time
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Tracer

from services.stream.adoption import Adoption
from services.stream.audience import Audience
from services.stream.changes import LOOKUP, Change, ChangeStream, ChangeStreams, change_id
from services.stream.deletions import Deletions
from services.stream.frames import edit_frame, retract_frame, update_frame
from services.stream.hub import Hub
from services.stream.metrics import DELIVERED, DELIVERY_LATENCY, EDITS, RETRACTIONS
from services.stream.reorder import Reorder
from shared.catalogue import Catalogue
from shared.db import Database, as_datetime, numbers, utcnow, with_now
from shared.settings import SESSION_ABSOLUTE_AGE
from shared.tracing import stored_context, within
from shared.updates import WIRE_FIELDS, digest, is_seq, newest, titled, why_undeliverable

log = logging.getLogger("gossip.stream.watcher")

Update = dict[str, Any]
UPDATE_CHANGES = ["insert", "update", "replace", "delete"]
BATCH = 1000
READ_FIELDS = {**WIRE_FIELDS, "_id": 1, "rejected": 1, "trace": 1}  # what the watcher needs of a stored document


def text_changed(change: Change, update: Update) -> bool:
    """Whether an update or replace event changed a stored update's text. MongoDB's update events say so in
    updateDescription (their fullDocument is looked up later, and may already hold the next write). A replace, and
    every update event of the embedded server, carry none; their fullDocument is the document as that change left
    it, so its text is compared with `announced`, the digest of the text its feeds were last told."""
    described = change.get("updateDescription")
    if described:
        return "text" in described.get("updatedFields", {})
    return bool(update.get("announced") != digest(update["text"]))


def timed_by_writer(change: Change, update: Update) -> bool:
    """Whether the edit's writer set edited_at with the text, as the API's edit does: then that time is the edit's.
    Without updateDescription, the API's edit is known by the `announced` it drops; any other writer's edit is
    timed by its change event."""
    described = change.get("updateDescription")
    if described:
        return "edited_at" in described.get("updatedFields", {})
    return "announced" not in update and "edited_at" in update


class Watcher:
    """Watches `updates` (every write: inserts, edits, deletions) and hands the hub what its feeds must hear, in seq
    order; beside it, the audience watches `users` and `sessions`. After any failure a stream reopens and `updates`
    is read above the last delivered seq, so open feeds miss nothing. With a `tracer`, an update stored with a trace
    context gets spans for its insert's change event and its fan-out, in that trace (shared/tracing.py)."""

    def __init__(
        self,
        db: Database,
        hub: Hub,
        catalogue: Catalogue,
        history_days: float = 0,
        gap_wait: float = 1.0,
        sweep: float = 2.0,
        session_lifetime: float = SESSION_ABSOLUTE_AGE,
        tracer: Tracer | None = None,
    ) -> None:
        self.db, self.hub, self.catalogue, self.sweep, self.tracer = db, hub, catalogue, sweep, tracer
        self.reorder: Reorder[Update | None] = Reorder(0, gap_wait)  # None: a rejected seq, passed over in order
        self.adoption, self.deletions = Adoption(db, catalogue), Deletions(db, history_days)
        self.audience = Audience(db, hub, catalogue, lambda: self.delivered, session_lifetime)
        self._streams = ChangeStreams()
        self._next_sweep = 0.0

    @property
    def delivered(self) -> int:
        """Every update up to here has been handed to the hub (or was a hole); feeds replay up to it."""
        return self.reorder.delivered

    async def start(self) -> None:
        self.reorder.delivered = await newest(self.db)
        updates = ChangeStream(
            self.db.updates, [{"$match": {"operationType": {"$in": UPDATE_CHANGES}}}], self.catch_up, self._on_update,
            self._on_idle, pause=0.005, idle_pause=0.02, server_wait=0.1, options=LOOKUP,  # on_idle settles gaps
        )  # fmt: skip
        await self._streams.start([updates, *self.audience.streams()])

    async def stop(self) -> None:
        await self._streams.stop()
        await self.adoption.stop()
        await self.deletions.stop()

    async def _deliver(self, updates: list[Update | None]) -> None:
        """Each update's frame is encoded once and the same bytes go to every feed; then the seq of a document
        whose _id does not hold it is noted, so that its deletion can be retracted."""
        for update in updates:
            if update is not None:
                self._fan_out(update)
                self.deletions.remember(update)

    def _fan_out(self, update: Update) -> None:
        """The latency from publish is observed once the hub has handed the frame to every feed that carries the
        update (written to each idle one's socket, queued for the rest): once per update, never once per feed."""
        frame = update_frame(update)
        if self.tracer is None or (parent := stored_context(update)) is None:
            count = self._hand_over(update, frame, update["seq"])
        else:
            attributes = {"gossip.seq": update["seq"], "gossip.show": update["show"]}
            with within(self.tracer, parent, "fan-out", attributes=attributes) as span:
                count = self._hand_over(update, frame, update["seq"])
                span.set_attribute("gossip.feeds", count)
        DELIVERED.inc(count)
        if count:
            DELIVERY_LATENCY.observe(max(0.0, time.time() - as_datetime(update["created_at"]).timestamp()))

    def _hand_over(self, update: Update, frame: bytes, seq: int | None = None) -> int:
        """To the feeds that carry the update's show, or a personal update's to its recipient's feeds alone."""
        recipient = update.get("recipient")
        if recipient is None:
            return self.hub.publish(update["show"], frame, seq)
        return self.hub.publish_to(recipient, update["show"], frame, seq)

    async def _read(self, after: int, upto: int | None = None) -> list[Update]:
        """Stored documents in (after, upto] in seq order, whatever they hold: each is checked as a change is."""
        seq = {"$gt": after} if upto is None else {"$gt": after, "$lte": upto}
        return await self.db.updates.find({"seq": numbers(seq)}, READ_FIELDS).sort("seq", 1).limit(BATCH).to_list()

    async def _vetted(self, document: Update) -> Update | None:
        """The document, titled from the catalogue, if it is an update to deliver; None if it is not, rejected (logged
        and counted once)."""
        if "rejected" in document:
            return None
        seq, titles = document.get("seq"), await self.catalogue.titles()
        why = why_undeliverable(document, titles) if is_seq(seq) else f"seq: {seq!r} is not a seq"
        if why is None:
            return titled(document, titles)
        await self.adoption.reject(document["_id"], why)
        return None

    async def catch_up(self) -> None:
        """Whatever committed while no stream was open goes through the same ordering as live changes.

        It reads on only while batches come back full: what commits meanwhile is the open stream's to deliver.
        Reading until a read comes back empty would not end while publishers keep up a steady pace, and would hold
        up the change stream it stands in for."""
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

    async def _on_update(self, change: Change) -> None:
        if self.tracer is None or (parent := self._traced(change)) is None:
            await self._on_change(change)
        else:
            attributes = {"db.collection.name": "updates", "db.operation.name": change["operationType"]}
            with self.tracer.start_as_current_span("change updates", parent, SpanKind.CONSUMER, attributes):
                await self._on_change(change)
        await self._on_idle()

    def _traced(self, change: Change) -> Context | None:
        """The trace an inserted update was published in, if it was stored with one; a later change to the
        document (an edit, a retraction) is no part of its publish."""
        return stored_context(change.get("fullDocument")) if change.get("operationType") == "insert" else None

    async def _on_change(self, change: Change) -> None:
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

    async def _on_document(self, change: Change, document: Update) -> None:
        """A new update goes out in seq order; a delivered one whose text changed goes out as an edit, and one that
        can no longer be shown as a retraction. A document without a seq is another program's, to be numbered."""
        if "rejected" in document:
            return
        seq = document.get("seq")
        if seq is None:
            if "claim" not in document:  # a claimed one is its claimer's, or the sweep's once the claim is stale
                inserted_at = change.get("wallTime") if change["operationType"] == "insert" else None
                self.adoption.offer(document["_id"], inserted_at)
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

    async def _edited(self, change: Change, update: Update) -> None:
        """Tells the feeds, then stores `announced` so that later writes to the document are not taken for edits,
        and the edit's time if its writer gave none. Every process that saw the change tells its own feeds; the
        first to store it wins, the rest change nothing."""
        by_api = timed_by_writer(change, update)
        edited_at = update["edited_at"] if by_api else change.get("wallTime") or utcnow()
        EDITS.inc(self._hand_over(update, edit_frame(update["seq"], update["text"], edited_at)))
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
