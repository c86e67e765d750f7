"""Publishing show updates and reading them back: the logic behind the ingest API and the publish page, no HTTP.

Everything is validated before a `seq` is taken, so a refused update writes nothing and leaves no hole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo.errors import DuplicateKeyError

from shared.auth import Caller
from shared.db import Database, next_seq, utcnow
from shared.errors import ApiError
from shared.updates import MAX_TEXT, history, wire

KEY_HEADER = "Idempotency-Key"
MAX_KEY = 200
PAGE_DEFAULT, PAGE_MAX = 100, 1000


def _invalid(fields: Mapping[str, str]) -> ApiError:
    return ApiError(422, detail="Please correct the highlighted fields.", fields=fields)


async def catalogue(db: Database) -> list[dict[str, str]]:
    """The shows one can publish about, for the form's select."""
    return [{"slug": show["_id"], "title": show["title"]} async for show in db.shows.find().sort("title", 1)]


async def _title(db: Database, slug: str) -> str | None:
    show = await db.shows.find_one({"_id": slug}) if slug else None
    return show["title"] if show else None


def _text_problem(text: str) -> str | None:
    if not text.strip():
        return "required"
    if len(text) > MAX_TEXT:
        return f"at most {MAX_TEXT} characters (this is {len(text)})"
    return None


async def _validated(db: Database, show: str, text: str, key: str | None) -> str:
    """All problems at once, named by field; returns the show's title."""
    problems: dict[str, str] = {}
    if (title := await _title(db, show)) is None:
        problems["show"] = "choose one of the shows"
    if problem := _text_problem(text):
        problems["text"] = problem
    if key is not None and not 1 <= len(key) <= MAX_KEY:
        problems[KEY_HEADER] = f"1 to {MAX_KEY} characters"
    if problems or title is None:
        raise _invalid(problems)
    return title


def _replayed(earlier: dict[str, Any], show: str, text: str) -> dict[str, Any]:
    """A retry gets the first result; a different update under a used key is a client bug worth reporting."""
    if (earlier["show"], earlier["text"]) != (show, text):
        raise _invalid({KEY_HEADER: "already used for a different update"})
    return wire(earlier)


async def publish(db: Database, author: Caller, fields: Mapping[str, str], idempotency_key: str | None) -> dict[str, Any]:
    """Stores one update and returns it as clients see it; with a key, at most one update per key and author.

    The key is looked up before a seq is taken, so an ordinary retry leaves no hole; two requests racing with one
    key are settled by the unique index, and the loser's seq becomes a hole the stream service skips.
    """
    show, text = fields["show"], fields["text"]
    title = await _validated(db, show, text, idempotency_key)
    mine = {"author": author.username, "idempotency_key": idempotency_key}
    if idempotency_key is not None and (earlier := await db.updates.find_one(mine)) is not None:
        return _replayed(earlier, show, text)
    update = {"seq": await next_seq(db), "show": show, "title": title, "text": text, "author": author.username,
              "author_id": author.user_id, "created_at": utcnow()}  # fmt: skip
    if idempotency_key is not None:
        update["idempotency_key"] = idempotency_key
    try:
        await db.updates.insert_one(update)  # insert, not $set: the embedded server keeps dates as dates only here
    except DuplicateKeyError:
        if idempotency_key is None or (earlier := await db.updates.find_one(mine)) is None:
            raise
        return _replayed(earlier, show, text)
    return wire(update)


def _count(name: str, raw: str, default: int, low: int, high: int) -> int:
    if raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and low <= int(raw) <= high):  # 19: never a huge int
        raise _invalid({name: f"a whole number from {low} to {high}"})
    return int(raw)


async def page(db: Database, show: str, after: str, limit: str) -> dict[str, Any]:
    """One page of history in seq order; `next_after` is where the next page starts, or `after` again if none."""
    start = _count("after", after, 0, 0, 2**62)  # within MongoDB's 64-bit integers
    size = _count("limit", limit, PAGE_DEFAULT, 1, PAGE_MAX)
    if show and await _title(db, show) is None:
        raise _invalid({"show": "no such show"})
    items = [wire(update) for update in await history(db, [show] if show else None, start, size)]
    return {"items": items, "next_after": items[-1]["seq"] if items else start}
