"""Publishing show updates and reading them back: the logic behind the ingest API and the publish page, no HTTP.

Everything is validated before a `seq` is taken, so a refused update writes nothing and leaves no hole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from shared.auth import Caller
from shared.batching import Batcher
from shared.body import whole_number
from shared.catalogue import Catalogue
from shared.db import Database, next_seq, utcnow
from shared.errors import ApiError
from shared.updates import MAX_TEXT, history, wire

KEY_HEADER = "Idempotency-Key"
MAX_KEY = 200
PAGE_DEFAULT, PAGE_MAX = 100, 1000
DUPLICATE_KEY = 11000


def _invalid(fields: Mapping[str, str]) -> ApiError:
    return ApiError(422, detail="Please correct the highlighted fields.", fields=fields)


def _text_problem(text: str) -> str | None:
    if not text.strip():
        return "required"
    if len(text) > MAX_TEXT:
        return f"at most {MAX_TEXT} characters (this is {len(text)})"
    return None


def _replayed(earlier: dict[str, Any], show: str, text: str) -> dict[str, Any]:
    """A retry gets the first result; a different update under a used key is a client bug worth reporting."""
    if (earlier["show"], earlier["text"]) != (show, text):
        raise _invalid({KEY_HEADER: "already used for a different update"})
    return wire(earlier)


class Updates:
    """One ingest process's updates: validated against the catalogue, stored in batches, read back in pages."""

    def __init__(self, db: Database, catalogue: Catalogue) -> None:
        self.db, self.catalogue = db, catalogue
        self._store: Batcher[dict[str, Any], dict[str, Any]] = Batcher(self._store_batch)

    async def publish(self, author: Caller, fields: Mapping[str, str], idempotency_key: str | None) -> dict[str, Any]:
        """Stores one update and returns it as clients see it; with a key, at most one update per key and author.

        The key is looked up before a seq is taken, so an ordinary retry leaves no hole; two requests racing with
        one key are settled by the unique index, and the loser's seq becomes a hole the stream service skips.
        """
        show, text = fields["show"], fields["text"]
        title = await self._validated(show, text, idempotency_key)
        mine = {"author": author.username, "idempotency_key": idempotency_key}
        if idempotency_key is not None and (earlier := await self.db.updates.find_one(mine)) is not None:
            return _replayed(earlier, show, text)
        update = {"show": show, "title": title, "text": text, "author": author.username, "author_id": author.user_id,
                  "created_at": utcnow()}  # fmt: skip
        if idempotency_key is not None:
            update["idempotency_key"] = idempotency_key
        try:
            return wire(await self._store(update))
        except DuplicateKeyError:
            if idempotency_key is None or (earlier := await self.db.updates.find_one(mine)) is None:
                raise
            return _replayed(earlier, show, text)

    async def _validated(self, show: str, text: str, key: str | None) -> str:
        """All problems at once, named by field; returns the show's title."""
        problems: dict[str, str] = {}
        if (title := await self.catalogue.title(show)) is None:
            problems["show"] = "choose one of the shows"
        if problem := _text_problem(text):
            problems["text"] = problem
        if key is not None and not 1 <= len(key) <= MAX_KEY:
            problems[KEY_HEADER] = f"1 to {MAX_KEY} characters"
        if problems or title is None:
            raise _invalid(problems)
        return title

    async def _store_batch(self, updates: list[dict[str, Any]]) -> list[dict[str, Any] | Exception]:
        """Every publish waiting gets its seq from one counter increment and is stored by one insert: a group
        commit, so that concurrent publishers share two round trips instead of queueing for two each.

        Inserted unordered, so one duplicate idempotency key fails that publish alone."""
        last = await next_seq(self.db, count=len(updates))
        for seq, update in enumerate(updates, start=last - len(updates) + 1):
            update["seq"] = seq
        try:
            await self.db.updates.insert_many(updates, ordered=False)  # insert: dates stay dates on the embedded server
        except BulkWriteError as error:
            if error.details.get("writeConcernErrors"):
                raise
            failed = {problem["index"]: problem for problem in error.details["writeErrors"]}
            return [_write_error(failed[i]) if i in failed else update for i, update in enumerate(updates)]
        return list(updates)

    async def page(self, show: str, after: str, limit: str) -> dict[str, Any]:
        """One page of history in seq order; `next_after` is where the next page starts, or `after` again if none."""
        start = whole_number("after", after) or 0
        size = whole_number("limit", limit, 1, PAGE_MAX) or PAGE_DEFAULT
        if show and await self.catalogue.title(show) is None:
            raise _invalid({"show": "no such show"})
        items = [wire(update) for update in await history(self.db, [show] if show else None, start, size)]
        return {"items": items, "next_after": items[-1]["seq"] if items else start}


def _write_error(problem: dict[str, Any]) -> Exception:
    if problem.get("code") == DUPLICATE_KEY:
        return DuplicateKeyError(problem.get("errmsg", "duplicate key"), DUPLICATE_KEY, problem)
    return OperationFailure(problem.get("errmsg", "write failed"), problem.get("code"), problem)
