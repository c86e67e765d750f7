"""Publishing show updates and reading them back: the logic behind the ingest API and the publish page, no HTTP.

Everything is validated before a `seq` is taken, so a refused update writes nothing and leaves no hole.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from opentelemetry.trace import SpanKind, Tracer
from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from shared.auth import Caller
from shared.batching import Batcher
from shared.body import whole_number
from shared.catalogue import Catalogue
from shared.db import MAX_INT, Database, as_datetime, next_seq, numbers, put, utcnow, with_now
from shared.errors import ApiError, invalid
from shared.limits import Limit
from shared.tracing import span, traceparent
from shared.updates import (
    WIRE_FIELDS,
    digest,
    history,
    numbered,
    personal_topics,
    shown,
    titled,
    update_document,
    why_text_refused,
    why_undeliverable,
    wire,
)

KEY_HEADER = "Idempotency-Key"
MAX_KEY = 200
KEY_KEPT = timedelta(hours=24)  # how long a retracted update's key is still answered for
PAGE_DEFAULT, PAGE_MAX = 100, 1000
DUPLICATE_KEY = 11000
INSERT = {"db.system.name": "mongodb", "db.collection.name": "updates", "db.operation.name": "insert"}


def _requested(show: str, text: str) -> str:
    """What a publish asked for, kept with its key: a retry is the same request even after the update is edited."""
    return digest(f"{show}\n{text}")


def _requested_by(stored: Mapping[str, Any]) -> str:
    """What the keyed update asked for: `requested`, which every publish keeps; a document another program wrote with
    a key and without it asked for what it holds."""
    return str(stored["requested"]) if "requested" in stored else _requested(stored["show"], stored["text"])


def _same_request(earlier: Mapping[str, Any], show: str, text: str) -> None:
    """A different update under a used key is a client bug worth reporting."""
    if _requested_by(earlier) != _requested(show, text):
        raise invalid({KEY_HEADER: "already used for a different update"})


def _replayed(earlier: dict[str, Any], show: str, title: str, text: str) -> dict[str, Any]:
    """A retry gets the update its key published, as it is now, titled as its show is in the catalogue."""
    _same_request(earlier, show, text)
    return wire({**earlier, "title": title})


def _spent(author: Caller, key: str) -> str:
    """A retracted update's key, by author: the key is the client's own text, up to MAX_KEY characters."""
    return digest(f"{author.user_id}\n{key}")


class Updates:
    """One ingest process's updates: validated against the catalogue, limited per author (`publishing`, one token
    bucket per author shared by every ingest process, for publishes and edits), stored in batches, read back in
    pages. With a `tracer`, each publish's insert is a span, and its context is stored with the update."""

    def __init__(self, db: Database, catalogue: Catalogue, publishing: Limit, tracer: Tracer | None = None) -> None:
        self.db, self.catalogue, self.publishing, self.tracer = db, catalogue, publishing, tracer
        self._store: Batcher[dict[str, Any], dict[str, Any]] = Batcher(self._store_batch)

    async def publish(self, author: Caller, fields: Mapping[str, str], idempotency_key: str | None) -> dict[str, Any]:
        """Stores one update and returns it as clients see it; with a key, at most one update per key and author.

        The key is looked up before a seq is taken, so an ordinary retry leaves no hole; two requests racing with
        one key are settled by the unique index, and the loser's seq becomes a hole the stream service skips. A
        retry of a stored key is answered before the rate limit: it publishes nothing, so it is never refused.
        """
        show, text = fields["show"], fields["text"]
        title = await self._validated(show, text, idempotency_key)
        mine = {"author": author.username, "idempotency_key": idempotency_key}
        if replayed := await self._used_before(author, idempotency_key, show, title, text):
            return replayed
        await self.publishing(author.user_id)
        keyed = {} if idempotency_key is None else {"idempotency_key": idempotency_key,
                                                     "requested": _requested(show, text)}  # fmt: skip
        update = update_document(show=show, title=title, text=text, author=author.username, created_at=utcnow(),
                               author_id=author.user_id, **keyed)  # fmt: skip
        try:
            return wire(await self._stored(update))
        except DuplicateKeyError:
            if idempotency_key is None or (earlier := await self.db.updates.find_one(mine)) is None:
                raise
            return _replayed(earlier, show, title, text)

    async def _stored(self, update: dict[str, Any]) -> dict[str, Any]:
        """Stored with its batch. Traced, the update carries the insert span's context as `trace`: the stream
        service's spans for its change and fan-out join the publish's trace through it."""
        with span(self.tracer, "insert updates", kind=SpanKind.CLIENT, attributes=INSERT):
            if (context := traceparent()) is not None:
                update["trace"] = context
            return await self._store(update)

    async def _used_before(
        self, author: Caller, key: str | None, show: str, title: str, text: str
    ) -> dict[str, Any] | None:
        """A retry of a used key gets the update the key published; None for a new key, or none. 409 if that update
        was retracted, 422 if the key was used for another update. Both lookups are sent at once: one wait, not two. A
        retracted update's key is free again once its record's date has passed, whenever the record goes: checked here,
        not in the query, since a condition beside `_id` makes the embedded server scan the collection."""
        if key is None:
            return None
        earlier, retracted = await asyncio.gather(
            self.db.updates.find_one({"author": author.username, "idempotency_key": key}),
            self.db.spent_keys.find_one({"_id": _spent(author, key)}),
        )
        if earlier is not None:
            return _replayed(earlier, show, title, text)
        if retracted is not None and as_datetime(retracted["expires_at"]) > utcnow():
            _same_request(retracted, show, text)
            detail = f"The update this key published (#{retracted['seq']}) was retracted: publish with a new key."
            raise ApiError(409, "retracted", detail, {KEY_HEADER: "its update was retracted"})
        return None

    async def _validated(self, show: str, text: str, key: str | None) -> str:
        """All problems at once, named by field; returns the show's title."""
        problems: dict[str, str] = {}
        if (title := await self.catalogue.title(show)) is None:
            problems["show"] = await self.catalogue.rule()
        if why := why_text_refused(text):
            problems["text"] = why
        if key is not None and not 1 <= len(key) <= MAX_KEY:
            problems[KEY_HEADER] = f"1 to {MAX_KEY} characters"
        if problems or title is None:
            raise invalid(problems)
        return title

    async def _store_batch(self, updates: list[dict[str, Any]]) -> list[dict[str, Any] | Exception]:
        """Every publish waiting gets its seq from one counter increment and is stored by one insert: a group
        commit, so that concurrent publishers share two round trips instead of queueing for two each.

        Inserted unordered, so one duplicate idempotency key fails that publish alone."""
        numbered(updates, await next_seq(self.db, count=len(updates)))
        try:
            await self.db.updates.insert_many(updates, ordered=False)  # insert: dates stay dates on the embedded server
        except BulkWriteError as error:
            if error.details.get("writeConcernErrors"):
                raise
            failed = {failure["index"]: failure for failure in error.details["writeErrors"]}
            return [_write_error(failed[i]) if i in failed else update for i, update in enumerate(updates)]
        return list(updates)

    async def page(self, viewer: str, show: str, after: str | None, limit: str | None) -> dict[str, Any]:
        """One page of history in seq order, of what the viewer (a user's _id) may see; `next_after` is where the
        next page starts, or `after` again if none. `show`: a show of the catalogue, or a topic of the viewer's
        personal notifications; that one's updates alone."""
        start = whole_number("after", after) or 0
        size = whole_number("limit", limit, 1, PAGE_MAX) or PAGE_DEFAULT
        if show and await self.catalogue.title(show) is None and show not in await personal_topics(self.db, viewer):
            raise invalid({"show": f"{await self.catalogue.rule()}, or a topic of your personal notifications"})
        shows = [show] if show else None
        read = await history(self.db, shows, viewer, start, size, topics=shows)
        items = [wire(update) for update in shown(read, await self.catalogue.titles())]
        return {"items": items, "next_after": read[-1]["seq"] if read else start}

    async def edit(self, author: Caller, seq: int, text: str) -> dict[str, Any]:
        """The author's own update with a new text, checked as a publish is. Its feeds hear of it from the stream
        service, which sees `announced` gone and tells them; an unchanged text changes nothing."""
        stored = await self._own(author, seq)
        if why := why_text_refused(text):
            raise invalid({"text": why})
        if text == stored["text"]:
            return wire(stored)
        await self.publishing(author.user_id)  # an edit goes out to every feed too: it counts as a publish
        change = with_now({"$set": {"text": text}, "$unset": {"announced": ""}}, "edited_at")
        edited = await self.db.updates.find_one_and_update(
            {"seq": seq, "author_id": author.user_id, "rejected": {"$exists": False}},
            change,
            WIRE_FIELDS,
            return_document=ReturnDocument.AFTER,
        )
        if edited is None:
            raise _not_found(seq)  # retracted meanwhile
        return wire({**edited, "title": stored["title"]})

    async def retract(self, author: Caller, seq: int) -> None:
        """Deleted, so history and unread counts lose it; the stream service tells open feeds. Its Idempotency-Key
        is kept a day longer, so that a late retry does not publish it again."""
        stored = await self._own(author, seq)
        if (key := stored.get("idempotency_key")) is not None:
            spent = {"_id": _spent(author, key), "seq": seq, "requested": _requested_by(stored),
                     "expires_at": utcnow() + KEY_KEPT}  # fmt: skip
            await put(self.db.spent_keys, spent)
        await self.db.updates.delete_one({"seq": seq, "author_id": author.user_id})

    async def mine(self, author: Caller, limit: int) -> list[dict[str, Any]]:
        """The author's newest updates, for the publish page."""
        query = {"author_id": author.user_id, "seq": numbers({"$gt": 0}), "rejected": {"$exists": False}}
        mine = await self.db.updates.find(query, WIRE_FIELDS).sort("seq", -1).limit(limit).to_list()
        return shown(mine, await self.catalogue.titles())

    async def _own(self, author: Caller, seq: int) -> dict[str, Any]:
        """Another author's update is refused, not hidden: its seq is on every feed anyway. Titled from the catalogue;
        one that is shown nowhere (of a wrong shape, or of a show gone from the catalogue) is not found."""
        query = {"seq": seq, "rejected": {"$exists": False}}
        stored = await self.db.updates.find_one(query) if seq <= MAX_INT else None
        titles = await self.catalogue.titles()
        if stored is None or why_undeliverable(stored, titles) is not None:
            raise _not_found(seq)
        if stored.get("author_id") != author.user_id:
            raise ApiError(403, detail=f"Update {seq} is not yours: only its author can change it.")
        return titled(stored, titles)


def _not_found(seq: int) -> ApiError:
    return ApiError(404, detail=f"There is no update {seq}.")


def _write_error(problem: dict[str, Any]) -> Exception:
    if problem.get("code") == DUPLICATE_KEY:
        return DuplicateKeyError(problem.get("errmsg", "duplicate key"), DUPLICATE_KEY, problem)
    return OperationFailure(problem.get("errmsg", "write failed"), problem.get("code"), problem)
