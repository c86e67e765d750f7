"""The show update as stored and as sent: one wire shape for the history API, the SSE frames and the pages.

Any program may write to `updates`, so what is read back is checked before it is shown: a document marked
`rejected` by the stream service, or one that is not an update's shape yet, is left out. Reads take only the wire
fields (a document may carry anything else, of any size), and the title always comes from the catalogue."""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import re
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, TypedDict

from bson import ObjectId

from shared.db import MAX_INT, Database, as_datetime, count, iso_utc, last_seq, numbers
from shared.preferences import followed, preferences_of
from shared.rulesfile import NAME_RULE, is_topic
from shared.usernames import USERNAME_RULE, is_username

MAX_TEXT = 1000  # characters; long enough for an episode note, short enough for a notification
COUNT_CAP = 200  # counts of updates (unread, a resync's missed) stop here, shown as "200+": a bounded read
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
# What a read for clients takes of a document: the wire fields, and whom a personal update is for (never shown).
WIRE_FIELDS = dict.fromkeys(("seq", "show", "title", "text", "author", "created_at", "edited_at", "recipient"), 1) | {
    "_id": 0
}
TRIMMED = "updates_trimmed"  # the `counters` document that holds `trimmed`'s seq
TITLE_MAX = 100  # characters of a personal update's title, which its watch rule gives
MAX_TOPICS = 20  # personal topics found for one user: a few watch rules' each


def wire(update: dict[str, Any]) -> dict[str, Any]:
    """What clients see of a stored update (also from a change event's fullDocument): never the _id. `edited_at`
    only once its text has been changed; `personal` only on an update meant for one user (who is the one seeing
    it: never whom it names)."""
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
    if "recipient" in update:
        shown["personal"] = True
    return shown


def update_document(
    *, show: str, title: str | None, text: str, author: str, created_at: datetime, **more: Any
) -> dict[str, Any]:
    """The one shape of an update as stored, before its number (`numbered`), whoever writes it: a publish, a watch
    rule, or the stream adopting another program's document. `announced` is the digest of the text its feeds are
    told first, so that its first change event is not taken for an edit. `more`: what only some writers keep (the
    author's _id, an idempotency key, a recipient, a rule's source fields, another program's _id and fields). A
    personal update's title may be None: its topic is no show of the catalogue (`titled`)."""
    update = {**more, "show": show, "text": text, "announced": digest(text), "author": author, "created_at": created_at}
    if title is not None:
        update["title"] = title
    return update


def numbered(updates: list[dict[str, Any]], last: int) -> None:
    """Gives the updates, in order, the block of seqs that ends at `last` (next_seq's answer for as many), and each
    one without an _id the one update_id makes of its seq and time; another program's document keeps its own."""
    for seq, update in enumerate(updates, start=last - len(updates) + 1):
        update["seq"] = seq
        update.setdefault("_id", update_id(seq, update["created_at"]))


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


def why_text_refused(text: object) -> str | None:
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


def _why_malformed(update: Mapping[str, Any]) -> str | None:
    """Why a stored document cannot be shown as an update (a field missing, of a wrong type or out of bounds), or
    None. Its title is not the document's to say: readers take it from the catalogue (`titled`)."""
    if not isinstance(update.get("show"), str) or not update["show"]:
        return "show: required, as text"
    if not is_username(update.get("author")) and update.get("author") != DELETED_AUTHOR:
        return f"author: a username, {USERNAME_RULE}"
    if why := why_text_refused(update.get("text")):
        return f"text: {why}"
    if _date_problem(update.get("created_at")):
        return "created_at: required, as a date"
    if "edited_at" in update and _date_problem(update["edited_at"]):
        return "edited_at: not a date"
    if "recipient" in update and (not isinstance(update["recipient"], str) or not update["recipient"]):
        return "recipient: a user's _id, as text"
    return None


def why_undeliverable(update: Mapping[str, Any], titles: Mapping[str, str]) -> str | None:
    """Why a document cannot be delivered as an update, or None. Its seq is the caller's to check. A personal
    update's topic is its rule's, not a show of the catalogue, and named as a rule's is (`is_topic`): it keys the
    user's preferences, so one another program wrote with any other text is no update (the stream rejects it)."""
    show = update.get("show")
    if isinstance(show, str) and "recipient" not in update and show not in titles:
        return f"show: {show!r} is not in the catalogue"
    if isinstance(show, str) and "recipient" in update and not is_topic(show):
        return f"show: a personal update's topic is {NAME_RULE}, not {show[:TITLE_MAX]!r}"
    return _why_malformed(update)


def history_cutoff(history_days: float, now: datetime) -> datetime | None:
    """Updates created before this are history's retention to remove; None when HISTORY_DAYS is 0 and keeps them
    all. Ingest removes by it; the stream tells retention's deletions from retractions by it."""
    return now - timedelta(days=history_days) if history_days else None


def is_seq(value: object) -> bool:
    return type(value) is int and 0 < value <= MAX_INT


def visible_to(viewer: str | None) -> dict[str, Any]:
    """Who may see an update, as a query: one with a `recipient` (a user's _id) is that user's alone, every other one
    is everybody's. The one predicate of every reader: feeds, /events/all, history, pages, unread counts, digests,
    pushes. `viewer=None` (nobody signed in, or a reader for all) sees only the updates meant for everybody."""
    return {"recipient": {"$in": [None, viewer]}} if viewer else {"recipient": None}


def sees(viewer: str | None, recipient: object) -> bool:
    """`visible_to` for an update in hand, by its `recipient` (None when it has none): for a reader that read the
    updates of every viewer at once (a replay shared by many feeds), and for the senders."""
    return recipient is None or recipient == viewer


def _stored(seq: dict[str, int]) -> dict[str, Any]:
    """Every stored update in the seq range, whoever may see it: where seqs stand, not what anyone is shown."""
    return {"seq": numbers(seq), "rejected": {"$exists": False}}


def _parts(
    shows: Collection[str] | None,
    seq: dict[str, int],
    viewer: str | None,
    topics: Collection[str] | None = None,
    muted: Collection[str] = (),
) -> list[dict[str, Any]]:
    """What a viewer may see of the shows (`shows=None`: every show) in the seq range, as disjoint queries: the
    updates for everybody of the shows, and the viewer's own personal ones whatever they follow but those of the
    `muted` topics (or only those of `topics`: a digest's, a history of one topic). Every show is All Notifs: nothing
    muted is left out. Never a document the stream service has rejected, nor another user's personal update. Two
    queries and not one `$or`: the embedded server reads the whole collection for an `$or` (docs/mongodb.md), and
    this is every feed's and page's read."""
    if shows is None:
        return [{**_stored(seq), **visible_to(viewer)}]
    followed = {**_stored(seq), **visible_to(None), "show": {"$in": list(shows)}}
    if not viewer:
        return [followed]
    personal = {**_stored(seq), "recipient": viewer}
    if topics is not None:
        personal["show"] = {"$in": list(topics)}
    elif muted:
        personal["show"] = {"$nin": list(muted)}
    return [followed, personal]


async def _read(
    db: Database, parts: list[dict[str, Any]], order: int, limit: int, fields: Mapping[str, int] = WIRE_FIELDS
) -> list[dict[str, Any]]:
    """The first `limit` of the parts' updates together, in seq `order` (1 or -1): each part's first `limit`,
    merged."""
    found = await asyncio.gather(*(db.updates.find(p, fields).sort("seq", order).limit(limit).to_list() for p in parts))
    return list(islice(heapq.merge(*found, key=_seq, reverse=order < 0), limit))


def _seq(update: Mapping[str, Any]) -> int:
    return int(update["seq"])


def titled(update: dict[str, Any], titles: Mapping[str, str]) -> dict[str, Any]:
    """The update with its show's title from the catalogue, whatever title the document holds. A personal update's
    topic is its watch rule's, not a show: its own title stands, cut to TITLE_MAX, or its topic's slug."""
    title = titles.get(update["show"])
    if title is None:
        stored = update.get("title")
        title = stored[:TITLE_MAX] if isinstance(stored, str) and NO_CONTROL.match(stored) else update["show"]
    return {**update, "title": title}


def shown(updates: list[dict[str, Any]], titles: Mapping[str, str]) -> list[dict[str, Any]]:
    """What can be shown of what was read, titled from the catalogue: a document another program wrote with a seq
    and a wrong shape, or of a show not in the catalogue, is left out (the stream service rejects it for good).
    Readers that page on count what they read, not this."""
    return [
        titled(update, titles)
        for update in updates
        if is_seq(update.get("seq")) and not why_undeliverable(update, titles)
    ]


async def history(
    db: Database,
    shows: Collection[str] | None,
    viewer: str | None,
    after: int = 0,
    limit: int = 100,
    upto: int | None = None,
    topics: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """Updates in (after, upto] in seq order, as read: pass them through `shown`. The database is the history.
    `topics`: the viewer's personal updates of these topics alone (None: all of them, as feeds carry them)."""
    seq = {"$gt": after} if upto is None else {"$gt": after, "$lte": upto}
    return await _read(db, _parts(shows, seq, viewer, topics), 1, limit)


async def every_viewers(
    db: Database, shows: Collection[str] | None, after: int, limit: int, upto: int
) -> list[dict[str, Any]]:
    """`history` for every viewer at once: the updates of the shows, and every personal one, in (after, upto]. For
    a replay that many feeds share; each feed keeps what `sees` lets its user see."""
    stored = _stored({"$gt": after, "$lte": upto})
    if shows is None:
        return await _read(db, [stored], 1, limit)
    personal = {**stored, "recipient": {"$exists": True}}
    followed = {**stored, "recipient": {"$exists": False}, "show": {"$in": list(shows)}}
    return await _read(db, [followed, personal], 1, limit)


async def recent(
    db: Database,
    shows: Collection[str] | None,
    viewer: str | None,
    limit: int,
    before: int | None = None,
    muted: Collection[str] = (),
) -> list[dict[str, Any]]:
    """The newest updates first, or the newest below `before` for a page of older ones, as read: pass them through
    `shown`. `muted`: the viewer's muted topics, whose personal updates are left out (`_parts`)."""
    seq = {"$gt": 0} if before is None else {"$lt": before}
    return await _read(db, _parts(shows, seq, viewer, muted=muted), -1, limit)


async def since_read(
    db: Database,
    shows: Collection[str] | None,
    viewer: str | None,
    last_read_seq: int,
    least: int,
    most: int,
    muted: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Newest first, every update after the read mark (up to `most`), or the `least` newest if that is more.

    A page that shows these then marks them read, so none after the mark may be left off it, within reason;
    past `most`, the oldest of them are on the older pages.
    """
    fresh = await _read(db, _parts(shows, {"$gt": last_read_seq}, viewer, muted=muted), -1, most)
    return fresh if len(fresh) >= least else await recent(db, shows, viewer, least, muted=muted)


async def trimmed(db: Database) -> int:
    """The highest seq history's retention has removed, 0 before it removed any: a resume point below it may have
    missed updates nobody keeps. Only retention raises it (services/ingest/retention.py), after its deletions, so a
    deleted or retracted update is never taken for lost history."""
    return await last_seq(db, TRIMMED)


async def cut(db: Database, shows: Collection[str] | None, viewer: str | None, after: int, upto: int, keep: int) -> int:
    """The seq above which (after, upto] holds exactly `keep` updates of the shows; `after` if it holds no more."""
    found = await _read(db, _parts(shows, {"$gt": after, "$lte": upto}, viewer), -1, keep + 1, {"seq": 1})
    return _seq(found[keep]) if len(found) > keep else after


async def between(db: Database, shows: Collection[str] | None, viewer: str | None, after: int, upto: int) -> int:
    """How many updates of the shows are in (after, upto], up to COUNT_CAP."""
    return await _count(db, _parts(shows, {"$gt": after, "$lte": upto}, viewer))


async def any_before(
    db: Database, shows: Collection[str] | None, viewer: str | None, seq: int, muted: Collection[str] = ()
) -> bool:
    """Whether a page ending at `seq` has an older page after it."""
    for part in _parts(shows, {"$lt": seq}, viewer, muted=muted):
        if await db.updates.find_one(part, {"_id": 1}) is not None:
            return True
    return False


async def _count(db: Database, parts: list[dict[str, Any]]) -> int:
    """How many the disjoint parts hold together, up to COUNT_CAP."""
    return min(COUNT_CAP, sum([await count(db.updates, part, COUNT_CAP) for part in parts]))


def _unread_parts(
    heard: Collection[str],
    user: Mapping[str, Any],
    last_read_seq: int,
    upto: int | None,
    topics: Collection[str] | None = None,
    muted: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Updates of the shows heard (followed, not muted) and the user's personal ones (of `topics`, None: all but
    those of the `muted` topics) after the read mark (up to `upto`), except one's own: those were never news to their
    author. `user`: the user's document (its _id and username)."""
    seq = {"$gt": last_read_seq} if upto is None else {"$gt": last_read_seq, "$lte": upto}
    parts = _parts(heard, seq, user["_id"], topics, muted)
    return [{**part, "author": {"$ne": user["username"]}} for part in parts]


async def unread(
    db: Database,
    heard: Collection[str],
    user: Mapping[str, Any],
    last_read_seq: int,
    upto: int | None = None,
    topics: Collection[str] | None = None,
    muted: Collection[str] = (),
) -> int:
    """How many are unread, up to COUNT_CAP: a user who never reads costs no more than one who does. A live page
    counts on from `upto` as updates arrive, so the two add up to the same number."""
    return await _count(db, _unread_parts(heard, user, last_read_seq, upto, topics, muted))


async def unread_newest(
    db: Database,
    shows: Collection[str],
    user: Mapping[str, Any],
    last_read_seq: int,
    limit: int,
    titles: Mapping[str, str],
    topics: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """The `limit` newest of the unread updates of `shows` and of personal `topics`, newest first, as `unread` counts
    them, titled from the catalogue (for the digest)."""
    return shown(await _read(db, _unread_parts(shows, user, last_read_seq, None, topics), -1, limit), titles)


async def personal_topics(db: Database, user_id: str) -> dict[str, str]:
    """The topics of the personal updates addressed to the user, slug to title (its newest update's), newest first:
    what they may set a level for beside the shows they follow. One query a topic, each for the newest update of a
    topic not found yet, by the recipient's index: the user's updates alone, never everyone's of a topic. A document
    whose show is no text ends the search, and one whose show is text but no topic (`is_topic`) is passed over,
    MAX_TOPICS of them at most, until the stream service marks them rejected."""
    found: dict[str, str] = {}
    passed: list[str] = []
    while len(found) < MAX_TOPICS and len(passed) < MAX_TOPICS:
        query = {"recipient": user_id, "show": {"$nin": [*found, *passed]}, "rejected": {"$exists": False}}
        update = await db.updates.find_one(query, {"show": 1, "title": 1}, sort=[("seq", -1)])
        if update is None or not isinstance(update.get("show"), str):
            return found
        if is_topic(update["show"]):
            found[update["show"]] = titled(update, {})["title"]
        else:
            passed.append(update["show"])
    return found


async def newest(db: Database) -> int:
    """The newest stored update's seq, 0 if none."""
    latest = await db.updates.find_one(_stored({"$gt": 0}), {"seq": 1}, sort=[("seq", -1)])
    return int(latest["seq"]) if latest else 0


class Reading(TypedDict):
    """What a user reads: their name, the shows of the catalogue they follow and those of them they hear (all but
    the muted: what counts as unread and fills Notifications), every slug they muted (a personal topic's too, whose
    updates are left out as a muted show's are), their read mark, how many updates are unread, and the newest update
    then (`upto`): a live page carries on from there."""

    username: str
    follows: list[str]
    heard: list[str]
    muted: list[str]
    last_read_seq: int
    unread: int
    upto: int


async def reading(db: Database, user: dict[str, Any] | None, titles: Collection[str]) -> Reading | None:
    """A user document as the core's `users` lookup reads it, and its unread count; None if the account is gone.
    Read once per page (the unread badge, the notifications listing) and by /api/me. Its follows are those of the
    catalogue (`titles`, `followed`)."""
    if user is None:
        return None
    last_read, upto = user.get("last_read_seq", 0), await newest(db)
    preferences, follows = preferences_of(user), followed(user["follows"], titles)
    heard, muted = preferences.heard(follows), preferences.muted()
    count = await unread(db, heard, user, last_read, upto, muted=muted)
    return Reading(username=user["username"], follows=follows, heard=heard, muted=muted,
                   last_read_seq=last_read, unread=count, upto=upto)  # fmt: skip
