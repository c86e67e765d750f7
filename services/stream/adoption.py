"""Documents other programs put in `updates` without a seq (a script, a migration, a person in mongosh): numbered
once across every stream process, completed, or rejected for good.

Every stream process sees the insert. Each tries to claim the document with a conditional update that only one can
win, and only the winner takes a number from `counters`: numbers taken by losers would be holes, and every update
after a hole waits out the watcher's gap wait before it goes out. The winner then replaces the claimed document
with the finished update in one write, guarded by its claim, so a process that stalled past `CLAIM_STALE` (and lost
its claim to the sweep) writes nothing. Dates go in by replace: `$set` would store them as strings on the
embedded server. The finishing write is a change of its own, which the watcher delivers like any new update.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import ConnectionFailure, PyMongoError

from services.stream.metrics import REJECTED
from shared.catalogue import Catalogue
from shared.db import Database, as_datetime, new_id, next_seq, utcnow
from shared.updates import digest, problem

log = logging.getLogger("gossip.stream.adoption")

CLAIM_STALE = 10.0  # seconds: a claim this old belongs to a process that died between claiming and finishing
BATCH = 100


def _inserted_at(document_id: object, inserted_at: Any) -> datetime:
    """When the document was inserted: its insert event's time, else an ObjectId's own, else now."""
    if inserted_at is not None:
        return as_datetime(inserted_at)
    return document_id.generation_time if isinstance(document_id, ObjectId) else utcnow()


class Adoption:
    def __init__(self, db: Database, catalogue: Catalogue) -> None:
        self.db, self.catalogue = db, catalogue
        self.me = new_id()  # this process's claims

    @staticmethod
    def _unclaimed(now: float) -> dict[str, Any]:
        """Without a seq, not rejected, and claimed by nobody or by a process that has gone quiet."""
        return {
            "seq": None,
            "rejected": {"$exists": False},
            "$or": [{"claim": {"$exists": False}}, {"claim.at": {"$lt": now - CLAIM_STALE}}],
        }

    async def adopt(self, document_id: object, inserted_at: Any = None) -> None:
        """Numbers the document if this process wins its claim; nothing if another one did."""
        now = time.time()
        claimed = await self.db.updates.find_one_and_update(
            {"_id": document_id, **self._unclaimed(now)},
            {"$set": {"claim": {"by": self.me, "at": now}}},
            return_document=ReturnDocument.AFTER,
        )
        if claimed is None:
            return
        try:
            await self._finish(claimed, _inserted_at(document_id, inserted_at))
        except ConnectionFailure:
            raise  # the claim goes stale and the sweep finishes it
        except PyMongoError as error:  # a document the database will not take back as it is: looked at once only
            await self.reject(document_id, f"could not be stored with a seq: {error}", {"claim.by": self.me})

    async def _finish(self, claimed: dict[str, Any], inserted_at: datetime) -> None:
        """Title from the catalogue, created_at from the insert, checked as a publish is, then numbered."""
        update = {key: value for key, value in claimed.items() if key != "claim"}
        titles = await self.catalogue.titles()
        if update.get("show") in titles:
            update["title"] = titles[update["show"]]
        if update.get("created_at") is None:
            update["created_at"] = inserted_at
        if why := problem(update, titles):
            await self.reject(claimed["_id"], why, {"claim.by": self.me})
            return
        update["created_at"] = as_datetime(update["created_at"])  # a date, also if written as text: retention reads it
        update["seq"], update["announced"] = await next_seq(self.db), digest(update["text"])
        finished = await self.db.updates.replace_one({"_id": claimed["_id"], "claim.by": self.me}, update)
        if not finished.matched_count:
            log.info("update %r changed while it was numbered; seq %d stays unused", claimed["_id"], update["seq"])

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
        waiting = await self.db.updates.find(self._unclaimed(time.time()), {"_id": 1}).limit(BATCH).to_list()
        for document in waiting:
            await self.adopt(document["_id"])
