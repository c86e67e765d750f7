"""The show update as stored and as sent: one wire shape for the history API, the SSE frames and the pages."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from shared.db import Database, as_datetime

MAX_TEXT = 1000  # characters; long enough for an episode note, short enough for a notification


def wire(update: dict[str, Any]) -> dict[str, Any]:
    """What clients see of a stored update (also from a change event's fullDocument): never the _id."""
    created = as_datetime(update["created_at"])
    return {
        "seq": update["seq"],
        "show": update["show"],
        "title": update["title"],
        "text": update["text"],
        "author": update["author"],
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.") + f"{created.microsecond // 1000:03d}Z",
    }


async def history(
    db: Database, shows: Collection[str] | None, after: int = 0, limit: int = 100
) -> list[dict[str, Any]]:
    """Updates above `after` in seq order; `shows=None` means every show. The database is the history."""
    query: dict[str, Any] = {"seq": {"$gt": after}}
    if shows is not None:
        query["show"] = {"$in": list(shows)}
    return await db.updates.find(query, {"_id": 0}).sort("seq", 1).limit(limit).to_list()
