"""Which update a delete event removed. On MongoDB a delete event carries only the document's _id.

An update published through ingest has an _id made by `update_id`: it holds the update's seq and its time, so its
retraction needs no lookup and no memory, across restarts. A document another program wrote has its own _id: when
a stream process delivers it, it notes the seq in `update_ids`, which expires with the update's history. Those
notes are written in batches, by a task of their own, so that an import of thousands costs a write per batch and
not one per document on the change stream's path; until written, a note is answered from memory.

A deleted update older than the history's retention cutoff was removed by retention, not retracted: nothing is sent
for it, or retention's deletions would flood every feed with retractions of updates no page shows.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.errors import BulkWriteError, PyMongoError

from shared import tasks
from shared.db import Database, as_datetime, utcnow
from shared.updates import history_cutoff, is_seq, seq_in_id

log = logging.getLogger("gossip.stream.deletions")

BATCH = 500  # notes written together
DUPLICATE_KEY = 11000


class Deletions:
    def __init__(self, db: Database, history_days: float) -> None:
        self.db, self.history_days = db, history_days
        self._unwritten: dict[str, dict[str, Any]] = {}  # by repr(_id): an _id may be a subdocument
        self._writing: asyncio.Task[None] | None = None

    def _cutoff(self) -> datetime | None:
        """Updates created before this are retention's to delete; None when history is kept for ever."""
        return history_cutoff(self.history_days, utcnow())

    def remember(self, update: dict[str, Any]) -> None:
        """For an update whose _id does not hold its seq: called as it is delivered, by every stream process alike.
        Returns at once; the note is written with the others that come meanwhile."""
        document_id, seq = update["_id"], update["seq"]
        if seq_in_id(document_id) == seq:
            return
        created_at = as_datetime(update["created_at"])
        entry: dict[str, Any] = {"_id": document_id, "seq": seq, "created_at": created_at}
        if self.history_days:
            entry["expires_at"] = created_at + timedelta(days=self.history_days)
        self._unwritten[repr(document_id)] = entry
        if self._writing is None:
            self._writing = asyncio.create_task(self._write())

    async def _write(self) -> None:
        """Inserted, so that dates stay dates; a note another process (or this one, before) wrote is the same note,
        and its duplicate key is no failure. Not upserts: the embedded server's cost for a batch of them grew with the
        collection. A batch that fails otherwise stays in memory, and is tried again with the next note."""
        try:
            while self._unwritten:
                batch = list(self._unwritten.items())[:BATCH]
                try:
                    await self.db.update_ids.insert_many([dict(entry) for _, entry in batch], ordered=False)
                except BulkWriteError as error:
                    failures = error.details.get("writeErrors", [])
                    if error.details.get("writeConcernErrors") or any(f.get("code") != DUPLICATE_KEY for f in failures):
                        raise
                for key, entry in batch:
                    if self._unwritten.get(key) is entry:
                        del self._unwritten[key]
        except PyMongoError as error:
            log.warning("could not note %d retractable updates yet: %s", len(self._unwritten), error)
        finally:
            self._writing = None

    async def stop(self) -> None:
        await tasks.stop(self._writing)

    async def seq(self, document_id: object, delivered: int) -> int | None:
        """The seq the deleted document had, or None: retention's work, or no update of ours. A seq above
        `delivered` may still be held for its turn (the caller drops it) or be a foreign ObjectId's noise."""
        cutoff = self._cutoff()
        if isinstance(document_id, ObjectId) and cutoff is not None and document_id.generation_time < cutoff:
            return None
        held = seq_in_id(document_id)
        if held is not None and is_seq(held) and held <= delivered:
            return held
        entry = self._unwritten.get(repr(document_id)) or await self.db.update_ids.find_one({"_id": document_id})
        if entry is not None:
            old = cutoff is not None and as_datetime(entry["created_at"]) < cutoff
            return None if old else int(entry["seq"])
        return held if held is not None and is_seq(held) else None
