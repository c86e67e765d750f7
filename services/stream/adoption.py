"""Documents other programs put in `updates` without a seq (a script, a migration, a person in mongosh): numbered
once across every stream process, completed, or rejected for good.

Every stream process sees the inserts. Each claims them in batches, with one conditional update of many documents
that only one process can win for each, marked with a claim id of the batch's own; only what it won takes numbers
from `counters`, one block for the batch: numbers taken by losers would be holes, and every update after a hole
waits out the watcher's gap wait before it goes out. The winner then replaces each claimed document with the
finished update, all in one bulk write, each guarded by its claim, so a process that stalled past `CLAIM_STALE`
(and lost its claim to the sweep) writes nothing. Dates go in by replace: `$set` would store them as strings on the
embedded server. The finishing writes are changes of their own, which the watcher delivers like any new update.

A batch costs the same few round trips whatever its size, and runs in a task of its own: the change stream reads on
meanwhile, so an import of thousands is numbered at about the pace it is written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReplaceOne
from pymongo.errors import BulkWriteError, PyMongoError

from services.stream.metrics import REJECTED
from shared import tasks
from shared.catalogue import Catalogue
from shared.db import Database, as_datetime, new_id, next_seq, utcnow
from shared.updates import numbered, update_document, why_undeliverable

log = logging.getLogger("gossip.stream.adoption")

CLAIM_STALE = 10.0  # seconds: a claim this old belongs to a process that died between claiming and finishing
BATCH = 500  # documents claimed and numbered together


def _inserted_at(document_id: object, inserted_at: Any) -> datetime:
    """When the document was inserted: its insert event's time, else an ObjectId's own, else now."""
    if inserted_at is not None:
        return as_datetime(inserted_at)
    return document_id.generation_time if isinstance(document_id, ObjectId) else utcnow()


Waiting = tuple[object, Any]  # a document's _id, and its insert event's time if known


class Adoption:
    def __init__(self, db: Database, catalogue: Catalogue) -> None:
        self.db, self.catalogue = db, catalogue
        self._waiting: list[Waiting] = []
        self._adopting: asyncio.Task[None] | None = None

    @staticmethod
    def _unclaimed(now: float, stale: bool) -> list[dict[str, Any]]:
        """Without a seq, not rejected, and claimed by nobody (or, with `stale`, by a process that has gone quiet):
        two queries, not one with $or, for which the embedded server scans the whole collection."""
        waiting = {"seq": None, "rejected": {"$exists": False}}
        return [{**waiting, "claim": None}, *([{**waiting, "claim.at": {"$lt": now - CLAIM_STALE}}] if stale else [])]

    def offer(self, document_id: object, inserted_at: Any = None) -> None:
        """Queues a new document without a seq for the next batch, and returns at once: the change stream reads on
        while a batch is numbered, and what it queues meanwhile goes in the next one."""
        self._waiting.append((document_id, inserted_at))
        if self._adopting is None:
            self._adopting = asyncio.create_task(self._adopt_waiting())

    async def _adopt_waiting(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:BATCH], self._waiting[BATCH:]
                try:
                    await self.adopt(batch)
                except PyMongoError as error:  # what was claimed is finished by a sweep once the claim is stale
                    log.warning("could not number %d documents in updates, left to the sweep: %s", len(batch), error)
        finally:
            self._adopting = None

    async def stop(self) -> None:
        await tasks.stop(self._adopting)

    async def adopt(self, documents: Sequence[Waiting], stale: bool = False) -> None:
        """Numbers, in the order given, those of the documents this process wins the claim of; nothing for the
        others, which another process claimed first. `stale`: also those whose claim has gone stale (the sweep)."""
        given: dict[str, Waiting] = {}  # keyed by repr: an _id may be a subdocument, which cannot key a dict
        for document_id, inserted_at in documents:
            given.setdefault(repr(document_id), (document_id, inserted_at))  # once, however often it was offered
        now, claim = time.time(), new_id()
        ids = [document_id for document_id, _ in given.values()]
        for unclaimed in self._unclaimed(now, stale):
            await self.db.updates.update_many(
                {"_id": {"$in": ids}, **unclaimed}, {"$set": {"claim": {"by": claim, "at": now}}}
            )
        found = self.db.updates.find({"_id": {"$in": ids}, "claim.by": claim})
        claimed = {repr(document["_id"]): document async for document in found}
        titles, finished = await self.catalogue.titles(), []
        for key, (document_id, inserted_at) in given.items():
            if (document := claimed.get(key)) is None:
                continue
            update = _finished(document, _inserted_at(document_id, inserted_at), titles)
            if isinstance(update, str):
                await self.reject(document_id, update, {"claim.by": claim})
            else:
                finished.append(update)
        if finished:
            await self._store(finished, claim)

    async def _store(self, finished: list[dict[str, Any]], claim: str) -> None:
        """One block of seqs and one bulk write for the batch. A document changed meanwhile (its claim gone) keeps
        its number unused; one the database will not take back as it is is rejected, and looked at once only."""
        numbered(finished, await next_seq(self.db, count=len(finished)))
        writes = [ReplaceOne({"_id": update["_id"], "claim.by": claim}, update) for update in finished]
        try:
            stored = await self.db.updates.bulk_write(writes, ordered=False)
        except BulkWriteError as error:
            if error.details.get("writeConcernErrors"):
                raise
            for failure in error.details["writeErrors"]:
                why = f"could not be stored with a seq: {failure.get('errmsg', 'write failed')}"
                await self.reject(finished[failure["index"]]["_id"], why, {"claim.by": claim})
            return
        if stored.matched_count < len(finished):
            log.info(
                "%d updates changed while they were numbered; their seqs stay unused",
                len(finished) - stored.matched_count,
            )

    async def reject(self, document_id: object, why: str, guard: dict[str, Any] | None = None) -> bool:
        """Marks the document so that no process looks at it again; only the process whose mark lands logs it and
        counts it, so it is logged once however many stream processes saw it. True for that process."""
        marked = await self.db.updates.update_one(
            {"_id": document_id, "rejected": {"$exists": False}, **(guard or {})},
            {"$set": {"rejected": why}, "$unset": {"claim": ""}},
        )
        if not marked.modified_count:
            return False
        REJECTED.inc()
        log.warning(
            "a document in updates is not an update; it is skipped until its `rejected` mark is removed (_id %r): %s",
            document_id, why,
        )  # fmt: skip
        return True

    async def sweep(self) -> None:
        """Documents inserted while no stream process was watching, and claims whose process died before finishing
        them. The index on (seq, show) finds the documents without a seq."""
        waiting = []
        for unclaimed in self._unclaimed(time.time(), stale=True):
            waiting += await self.db.updates.find(unclaimed, {"_id": 1}).limit(BATCH).to_list()
        if waiting:
            await self.adopt([(document["_id"], None) for document in waiting], stale=True)


def _finished(claimed: dict[str, Any], inserted_at: datetime, titles: dict[str, str]) -> dict[str, Any] | str:
    """The update a claimed document becomes (title from the catalogue, created_at from the insert, checked as a
    publish is), without its seq yet; or why it cannot be one."""
    update = {key: value for key, value in claimed.items() if key != "claim"}
    if isinstance(update.get("show"), str) and update["show"] in titles:  # a list or a subdocument cannot key it
        update["title"] = titles[update["show"]]
    if update.get("created_at") is None:
        update["created_at"] = inserted_at
    if why := why_undeliverable(update, titles):
        return why
    own = {key: update.pop(key) for key in ("show", "title", "text", "author", "created_at") if key in update}
    return update_document(show=own["show"], title=own.get("title"), text=own["text"], author=own["author"],
                         created_at=as_datetime(own["created_at"]), **update)  # fmt: skip
