"""AsyncMongoClient, the collections and their indexes, the show catalogue, and the embedded-server workarounds.

Every workaround for the embedded MongoDB-protocol server lives here, is also correct on real MongoDB,
and is covered by tests/shared/test_db.py.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.asynchronous.database import AsyncDatabase

Database = AsyncDatabase[dict[str, Any]]
MAX_INT = 2**63 - 1  # MongoDB's integers are 8 bytes: a larger Python int cannot be stored or queried

SHOWS = {
    "suits": "Suits",
    "flash": "The Flash",
    "game_of_thrones": "Game of Thrones",
    "impractical_jokers": "Impractical Jokers",
    "gossip_girl": "Gossip Girl",
    "sherlock": "Sherlock",
}


def connect(url: str) -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(url, tz_aware=True, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """String ids: change events may carry ObjectIds in a private encoding, plain strings survive."""
    return uuid.uuid4().hex


def username_key(username: str) -> str:
    """Case-insensitive uniqueness by a normalised, indexed field: the embedded server ignores collations."""
    return username.casefold()


def as_datetime(value: Any) -> datetime:
    """Change events from the embedded server carry dates as {"$date": "..."}; real MongoDB gives datetimes."""
    if isinstance(value, dict) and "$date" in value:
        value = datetime.fromisoformat(str(value["$date"]).replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        raise TypeError(f"not a date: {value!r}")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iso_utc(value: Any) -> str:
    """The one timestamp format on the wire: UTC to the millisecond, with a Z, whichever encoding it came in."""
    moment = as_datetime(value).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


async def next_change(stream: AsyncChangeStream[dict[str, Any]], pause: float) -> dict[str, Any] | None:
    """The next change event, or None after an empty batch (the caller uses that moment for timers).

    The embedded server answers an empty getMore at once instead of waiting maxAwaitTimeMS, so after an empty batch
    this waits out the rest of `pause`, and the loop does not spin. MongoDB's getMore has already waited that long
    on the server, so there it asks again at once: a change never waits for a sleep on top of the server's wait.
    """
    asked = time.monotonic()
    change = await stream.try_next()
    if change is None:
        await asyncio.sleep(pause - (time.monotonic() - asked))
    return change


async def next_seq(db: Database, name: str = "updates", count: int = 1) -> int:
    """Strictly increasing across processes: one atomic $inc on the counter document. With `count`, the last of
    that many consecutive numbers, all the caller's."""
    counter = await db.counters.find_one_and_update(
        {"_id": name}, {"$inc": {"seq": count}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    assert counter is not None  # an upsert that returns the document after the change always has one
    return int(counter["seq"])


async def last_seq(db: Database, name: str = "updates") -> int:
    """The last number next_seq handed out; 0 before the first."""
    counter = await db.counters.find_one({"_id": name})
    return int(counter["seq"]) if counter else 0


async def ensure_indexes(db: Database) -> None:
    await db.users.create_index("username_key", unique=True)
    await db.sessions.create_index("expires_at", expireAfterSeconds=0)
    await db.sessions.create_index("user_id")
    await db.updates.create_index("seq", unique=True)
    await db.updates.create_index([("show", ASCENDING), ("seq", ASCENDING)])
    await db.updates.create_index(
        [("author", ASCENDING), ("idempotency_key", ASCENDING)],
        unique=True,
        partialFilterExpression={"idempotency_key": {"$exists": True}},
    )
    await db.tokens.create_index([("user_id", ASCENDING), ("name", ASCENDING)], unique=True)
    await db.login_failures.create_index("expires_at", expireAfterSeconds=0)
    await db.login_failures.create_index([("key", ASCENDING), ("at", ASCENDING)])


async def seed_shows(db: Database) -> None:
    for slug, title in SHOWS.items():
        await db.shows.replace_one({"_id": slug}, {"_id": slug, "title": title}, upsert=True)


async def prepare(db: Database) -> None:
    """Indexes and the catalogue; safe to run on every start of every service."""
    await ensure_indexes(db)
    await seed_shows(db)
