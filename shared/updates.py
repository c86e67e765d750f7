"""The show update as stored and as sent: one wire shape for the history API, the SSE frames and the pages."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypedDict

from shared.db import Database, count, iso_utc

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


async def oldest(db: Database) -> int | None:
    """The oldest stored update's seq, None if none."""
    first = await db.updates.find_one({}, {"seq": 1}, sort=[("seq", 1)])
    return int(first["seq"]) if first else None


async def cut(db: Database, shows: Collection[str] | None, after: int, upto: int, keep: int) -> int:
    """The seq above which (after, upto] holds exactly `keep` updates of the shows; `after` if it holds no more."""
    query = _query(shows, {"$gt": after, "$lte": upto})
    found = await db.updates.find(query, {"seq": 1}).sort("seq", -1).skip(keep).limit(1).to_list()
    return int(found[0]["seq"]) if found else after


async def between(db: Database, shows: Collection[str] | None, after: int, upto: int) -> int:
    """How many updates of the shows are in (after, upto]."""
    return await count(db.updates, _query(shows, {"$gt": after, "$lte": upto}))


async def any_before(db: Database, shows: Collection[str] | None, seq: int) -> bool:
    """Whether a page ending at `seq` has an older page after it."""
    return await db.updates.find_one(_query(shows, {"$lt": seq}), {"_id": 1}) is not None


async def unread(
    db: Database, follows: Collection[str], last_read_seq: int, username: str, upto: int | None = None
) -> int:
    """Updates of followed shows after the read mark (up to `upto`), except one's own: those were never news to their
    author. A live page counts on from `upto` as updates arrive, so the two add up to the same number."""
    seq = {"$gt": last_read_seq} if upto is None else {"$gt": last_read_seq, "$lte": upto}
    return await count(db.updates, {**_query(follows, seq), "author": {"$ne": username}})


async def newest(db: Database) -> int:
    """The newest stored update's seq, 0 if none."""
    latest = await db.updates.find_one({}, {"seq": 1}, sort=[("seq", -1)])
    return int(latest["seq"]) if latest else 0


class Reading(TypedDict):
    """What a user reads: their name, the shows they follow, their read mark, how many updates are unread, and the
    newest update then (`upto`): a live page carries on from there."""

    username: str
    follows: list[str]
    last_read_seq: int
    unread: int
    upto: int


async def reading(db: Database, user: dict[str, Any] | None) -> Reading | None:
    """A user document as the core's `users` lookup reads it, and its unread count; None if the account is gone.
    Read once per page (the unread badge, the notifications listing) and by /api/me."""
    if user is None:
        return None
    last_read, upto = user.get("last_read_seq", 0), await newest(db)
    count = await unread(db, user["follows"], last_read, user["username"], upto)
    return Reading(username=user["username"], follows=user["follows"], last_read_seq=last_read, unread=count, upto=upto)
