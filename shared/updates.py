"""The show update as stored and as sent: one wire shape for the history API, the SSE frames and the pages.

Any program may write to `updates`, so what is read back is checked before it is shown: a document marked
`rejected` by the stream service, or one that is not an update's shape yet, is left out."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, TypedDict

from bson import ObjectId

from shared.db import MAX_INT, Database, as_datetime, count, iso_utc, numbers
from shared.preferences import preferences_of

MAX_TEXT = 1000  # characters; long enough for an episode note, short enough for a notification
# An update's `author` once its author deleted their account: not a valid username, so no one can register it and
# take the updates for theirs.
DELETED_AUTHOR = "deleted user"
SEQ_BYTES = slice(4, 12)  # where an update's _id holds its seq, after the 4 bytes of time every ObjectId starts with
# Text needs one character that is not blank. Blank is what str.isspace() says, spelled out: the API document gives
# this pattern to clients, and its dialect (ECMA-262) and Rust's disagree with Python on what \s matches.
BLANK = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK = re.compile(f"[^{BLANK}]")
# Nor any control character but tabs and line breaks (NEL, \x85, is one): a NUL or an escape sequence (ESC, or the
# one-character CSI, \x9b) is no part of a note on a show.
NO_CONTROL = re.compile(r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f]*$")


def wire(update: dict[str, Any]) -> dict[str, Any]:
    """What clients see of a stored update (also from a change event's fullDocument): never the _id. `edited_at`
    only once its text has been changed."""
    shown = {
        "seq": update["seq"],
        "show": update["show"],
        "title": update["title"],
        "text": update["text"],
        "author": update["author"],
        "created_at": iso_utc(update["created_at"]),
    }
    if "edited_at" in update:
        shown["edited_at"] = iso_utc(update["edited_at"])
    return shown


def update_id(seq: int, created_at: datetime) -> ObjectId:
    """An ObjectId that holds the update's time, as every ObjectId does, then its seq. A delete event on MongoDB
    carries nothing but the _id: from this one the stream service knows which update to retract, and whether it
    was old enough to be history's retention at work, with no lookup and nothing kept in memory."""
    return ObjectId(int(created_at.timestamp()).to_bytes(4, "big") + seq.to_bytes(8, "big"))


def seq_in_id(document_id: object) -> int | None:
    """The seq an _id made by update_id holds; another ObjectId gives a number too, which only a lookup can rule out."""
    return int.from_bytes(document_id.binary[SEQ_BYTES], "big") if isinstance(document_id, ObjectId) else None


def digest(text: str) -> str:
    """Stored with an update as `announced`: the text its feeds were last told, so that a change event without
    updateDescription (a replace, or any update on the embedded server) can be told to be an edit or not."""
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def text_problem(text: object) -> str | None:
    """The one rule for an update's text, wherever it comes from: published, edited, or written by another program."""
    if not isinstance(text, str) or not NOT_BLANK.search(text):
        return "required"
    if len(text) > MAX_TEXT:
        return f"at most {MAX_TEXT:,} characters (this is {len(text):,})"
    if not NO_CONTROL.match(text):
        return "no control characters but tabs and line breaks"
    return None


def _date_problem(value: object) -> bool:
    try:
        as_datetime(value)
    except (TypeError, ValueError):
        return True
    return False


def shape_problem(update: Mapping[str, Any]) -> str | None:
    """Why a stored document cannot be shown as an update (a field missing or of a wrong type), or None."""
    for field in ("show", "title", "author"):
        if not isinstance(update.get(field), str) or not update[field]:
            return f"{field}: required, as text"
    if problem := text_problem(update.get("text")):
        return f"text: {problem}"
    if _date_problem(update.get("created_at")):
        return "created_at: required, as a date"
    if "edited_at" in update and _date_problem(update["edited_at"]):
        return "edited_at: not a date"
    return None


def problem(update: Mapping[str, Any], titles: Mapping[str, str]) -> str | None:
    """Why a document cannot be delivered as an update, or None. Its seq is the caller's to check."""
    if isinstance(update.get("show"), str) and update["show"] not in titles:
        return f"show: {update['show']!r} is not in the catalogue"
    return shape_problem(update)


def is_seq(value: object) -> bool:
    return type(value) is int and 0 < value <= MAX_INT


def _query(shows: Collection[str] | None, seq: dict[str, int]) -> dict[str, Any]:
    """`shows=None` means every show. Never a document the stream service has rejected."""
    query: dict[str, Any] = {"seq": numbers(seq), "rejected": {"$exists": False}}
    if shows is not None:
        query["show"] = {"$in": list(shows)}
    return query


def shown(updates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What can be shown of what was read: a document another program wrote with a seq and a wrong shape is left
    out (the stream service rejects it for good). Readers that page on count what they read, not this."""
    return [update for update in updates if is_seq(update.get("seq")) and shape_problem(update) is None]


async def history(
    db: Database, shows: Collection[str] | None, after: int = 0, limit: int = 100, upto: int | None = None
) -> list[dict[str, Any]]:
    """Updates in (after, upto] in seq order, as read: pass them through `shown`. The database is the history."""
    seq = {"$gt": after} if upto is None else {"$gt": after, "$lte": upto}
    return await db.updates.find(_query(shows, seq), {"_id": 0}).sort("seq", 1).limit(limit).to_list()


async def _newest(db: Database, query: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    return shown(await db.updates.find(query, {"_id": 0}).sort("seq", -1).limit(limit).to_list())


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
    first = await db.updates.find_one(_query(None, {"$gt": 0}), {"seq": 1}, sort=[("seq", 1)])
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


def _unread_query(heard: Collection[str], last_read_seq: int, username: str, upto: int | None) -> dict[str, Any]:
    """Updates of the shows heard (followed, not muted) after the read mark (up to `upto`), except one's own: those
    were never news to their author."""
    seq = {"$gt": last_read_seq} if upto is None else {"$gt": last_read_seq, "$lte": upto}
    return {**_query(heard, seq), "author": {"$ne": username}}


async def unread(
    db: Database, heard: Collection[str], last_read_seq: int, username: str, upto: int | None = None
) -> int:
    """How many are unread. A live page counts on from `upto` as updates arrive, so the two add up to the same
    number."""
    return await count(db.updates, _unread_query(heard, last_read_seq, username, upto))


async def unread_newest(
    db: Database, shows: Collection[str], last_read_seq: int, username: str, limit: int
) -> list[dict[str, Any]]:
    """The `limit` newest of the unread updates of `shows`, newest first, as `unread` counts them (for the digest)."""
    return await _newest(db, _unread_query(shows, last_read_seq, username, None), limit)


async def newest(db: Database) -> int:
    """The newest stored update's seq, 0 if none."""
    latest = await db.updates.find_one(_query(None, {"$gt": 0}), {"seq": 1}, sort=[("seq", -1)])
    return int(latest["seq"]) if latest else 0


class Reading(TypedDict):
    """What a user reads: their name, the shows they follow and those of them they hear (all but the muted: what
    counts as unread and fills Notifications), their read mark, how many updates are unread, and the newest update
    then (`upto`): a live page carries on from there."""

    username: str
    follows: list[str]
    heard: list[str]
    last_read_seq: int
    unread: int
    upto: int


async def reading(db: Database, user: dict[str, Any] | None) -> Reading | None:
    """A user document as the core's `users` lookup reads it, and its unread count; None if the account is gone.
    Read once per page (the unread badge, the notifications listing) and by /api/me."""
    if user is None:
        return None
    last_read, upto = user.get("last_read_seq", 0), await newest(db)
    heard = preferences_of(user).heard(user["follows"])
    count = await unread(db, heard, last_read, user["username"], upto)
    return Reading(username=user["username"], follows=user["follows"], heard=heard, last_read_seq=last_read,
                   unread=count, upto=upto)  # fmt: skip
