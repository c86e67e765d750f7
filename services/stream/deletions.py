"""Which update a delete event removed. On MongoDB a delete event carries only the document's _id.

An update published through ingest has an _id made by `update_id`: it holds the update's seq and its time, so its
retraction needs no lookup and no memory, across restarts. A document another program wrote has its own _id: when
a stream process delivers it, it notes the seq in `update_ids`, which expires with the update's history.

A deleted update older than the history's retention cutoff was removed by retention, not retracted: nothing is sent
for it, or retention's deletions would flood every feed with retractions of updates no page shows.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from shared.db import Database, as_datetime, put, utcnow
from shared.updates import is_seq, seq_in_id


class Deletions:
    def __init__(self, db: Database, history_days: float) -> None:
        self.db, self.history_days = db, history_days

    def _cutoff(self) -> datetime | None:
        """Updates created before this are retention's to delete; None when history is kept for ever."""
        return utcnow() - timedelta(days=self.history_days) if self.history_days else None

    async def remember(self, update: dict[str, Any]) -> None:
        """For an update whose _id does not hold its seq: called as it is delivered, by every stream process alike."""
        document_id, seq = update["_id"], update["seq"]
        if seq_in_id(document_id) == seq:
            return
        created_at = as_datetime(update["created_at"])
        entry: dict[str, Any] = {"_id": document_id, "seq": seq, "created_at": created_at}
        if self.history_days:
            entry["expires_at"] = created_at + timedelta(days=self.history_days)
        await put(self.db.update_ids, entry)  # a replace: dates stay dates

    async def seq(self, document_id: object, delivered: int) -> int | None:
        """The seq the deleted document had, or None: retention's work, or no update of ours. A seq above
        `delivered` may still be held for its turn (the caller drops it) or be a foreign ObjectId's noise."""
        cutoff = self._cutoff()
        if isinstance(document_id, ObjectId) and cutoff is not None and document_id.generation_time < cutoff:
            return None
        held = seq_in_id(document_id)
        if held is not None and is_seq(held) and held <= delivered:
            return held
        entry = await self.db.update_ids.find_one({"_id": document_id})
        if entry is not None:
            old = cutoff is not None and as_datetime(entry["created_at"]) < cutoff
            return None if old else int(entry["seq"])
        return held if held is not None and is_seq(held) else None
