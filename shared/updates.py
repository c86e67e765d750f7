"""The show update as stored and as sent: one wire shape for the history API, the SSE frames and the pages."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypedDict

from shared.db import Database, iso_utc

MAX_TEXT = 1000  # characters; long enough for an episode note, short enough for a notification


def wire(update: dict[str, Any]) -> dict[str, Any]:
    """What clients see of a stored update (also from a change event's fullDocument): never the _id."""
    return {
        "seq": update["seq"],
        "show": update["show"],
        "title": update["title"],
        "text": update["text"],
        "author": update["author"],
        "created_at": iso_utc(update["created_at"]),
    }


def _query(shows: Collection[str] | None, seq: dict[str, int]) -> dict[str, Any]:
    """`shows=None` means every show."""
    return {"seq": seq} if shows is None else {"seq": seq, "show": {"$in": list(shows)}}


async def history(
    db: Database, shows: Collection[str] | None, after: int = 0, limit: int = 100, upto: int | None = None
) -> list[dict[str, Any]]:
    """Updates in (after, upto] in seq order. The database is the history."""
    seq = {"$gt": after} if upto is None else {"$gt": after, "$lte": upto}
    return await db.updates.find(_query(shows, seq), {"_id": 0}).sort("seq", 1).limit(limit).to_list()


async def _newest(db: Database, query: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    return await db.updates.find(query, {"_id": 0}).sort("seq", -1).limit(limit).to_list()


async def recent(
    db: Database, shows: Collection[str] | None, limit: int, before: int | None = None
) -> list[dict[str, Any]]:
    """The newest updates first, or the newest below `before` for a page of older ones."""
    return await _newest(db, _query(shows, {"$gt": 0} if before is None else {"$lt": before}), limit)


async def since_read(
    db: Database, shows: Collection[str] | None, last_read_seq: int, least: int, most: int
) -> list[dict[str, Any]]:
    """Newest first, every update after the read mark (up to `most`), or the `least` newest if that is more.

    A page that shows these then marks them read, so none after the mark may be left off it, within reason;
    past `most`, the oldest of them are on the older pages.
    """
    fresh = await _newest(db, _query(shows, {"$gt": last_read_seq}), most)
    return fresh if len(fresh) >= least else await recent(db, shows, least)


async def any_before(db: Database, shows: Collection[str] | None, seq: int) -> bool:
    """Whether a page ending at `seq` has an older page after it."""
    return await db.updates.find_one(_query(shows, {"$lt": seq}), {"_id": 1}) is not None


async def unread(db: Database, follows: Collection[str], last_read_seq: int, username: str) -> int:
    """Updates of followed shows after the read mark, except one's own: those were never news to their author."""
    query = {**_query(follows, {"$gt": last_read_seq}), "author": {"$ne": username}}
    return await db.updates.count_documents(query)


class Reading(TypedDict):
    """What a user reads: their name, the shows they follow, their read mark, and how many updates are unread."""

    username: str
    follows: list[str]
    last_read_seq: int
    unread: int


async def reading(db: Database, user: dict[str, Any] | None) -> Reading | None:
    """A user document as the core's `users` lookup reads it, and its unread count; None if the account is gone.
    Read once per page (the unread badge, the notifications listing) and by /api/me."""
    if user is None:
        return None
    last_read = user.get("last_read_seq", 0)
    count = await unread(db, user["follows"], last_read, user["username"])
    return Reading(username=user["username"], follows=user["follows"], last_read_seq=last_read, unread=count)
