"""AsyncMongoClient, the collections and their indexes, the show catalogue, and the embedded-server workarounds
that more than one service needs.

Each workaround for the embedded MongoDB-protocol server is also correct on real MongoDB, says so in one line, and
is tested. One that a single place needs lives beside that place: next_change, change_id and token_epoch with the
change streams (services/stream/changes.py), check_query with the watch rules
(services/stream/rulebook.py). The chore that deletes expired documents where no TTL index does (EXPIRING) is
shared/expiry.py.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pymongo.lock
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

Database = AsyncDatabase[dict[str, Any]]
Client = AsyncMongoClient[dict[str, Any]]
T = TypeVar("T")
log = logging.getLogger("gossip.db")
# Seconds each goodbye at shutdown is given (a presence report withdrawn, a lease released, the client's own ending of
# its sessions): what it tidies lapses on its own, and a stop ends within a few seconds whatever the database does.
FAREWELL_WAIT = 0.5
MAX_INT = 2**63 - 1  # MongoDB's integers are 8 bytes: a larger Python int cannot be stored or queried

SHOWS = {
    "suits": "Suits",
    "flash": "The Flash",
    "game_of_thrones": "Game of Thrones",
    "impractical_jokers": "Impractical Jokers",
    "gossip_girl": "Gossip Girl",
    "sherlock": "Sherlock",
}


def connect(url: str) -> Client:
    _waits_stay_in_their_task()
    return AsyncMongoClient(url, tz_aware=True, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000)


async def _wait_for(awaitable: Awaitable[T], timeout: float | None) -> T:
    """asyncio.wait_for as Python 3.12 has it: a deadline around a plain await, in the caller's own task."""
    async with asyncio.timeout(timeout):
        return await awaitable


def _waits_stay_in_their_task() -> None:
    """PyMongo waits on its topology's and pools' conditions through asyncio.wait_for, which on Python 3.11 runs the
    wait in a task of its own and, when its caller is cancelled again while that task ends, returns without it
    (CPython gh-86296, fixed in 3.12 only). The caller then releases a lock it no longer holds, and the abandoned wait
    takes the lock back for good: every later operation of the client hangs, and so does the stop of the process
    (whose background tasks are cancelled while the database may be away). 3.12's wait_for cannot do that."""
    if sys.version_info < (3, 12):
        pymongo.lock.wait_for = _wait_for  # type: ignore[attr-defined,assignment]  # the name it calls


def reachable(client: Client) -> bool:
    """Whether the client knows a server it can write to now, from what it last saw, without asking: false once a
    call has found the server gone, until its monitor finds it back."""
    return client.topology_description.has_writable_server()


async def farewell(db: Database, what: str, write: Callable[[], Awaitable[object]]) -> None:
    """A goodbye write at shutdown (a presence report withdrawn, a lease released): best effort and bounded. Skipped
    when the database is known gone, given FAREWELL_WAIT seconds otherwise: what it tidies lapses on its own, and a
    stop must end within a few seconds whatever the database does."""
    if not reachable(db.client):
        log.info("%s: skipped, the database is not reachable (it lapses on its own)", what)
        return
    try:
        with pymongo.timeout(FAREWELL_WAIT):
            await write()
    except PyMongoError as error:
        log.warning("%s failed (%s); it lapses on its own", what, error)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """String ids: change events may carry ObjectIds in a private encoding, plain strings survive."""
    return uuid.uuid4().hex


def username_key(username: str) -> str:
    """Case-insensitive uniqueness by a normalised, indexed field: the embedded server ignores collations."""
    return username.casefold()


def as_datetime(value: Any) -> datetime:
    """Change events from the embedded server carry dates as {"$date": "..."}, and a date it stored by `$set` reads
    back as a string; real MongoDB gives datetimes."""
    if isinstance(value, dict) and "$date" in value:
        value = value["$date"]
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise TypeError(f"not a date: {value!r}") from None
    if not isinstance(value, datetime):
        raise TypeError(f"not a date: {value!r}")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iso_utc(value: Any) -> str:
    """The one timestamp format on the wire: UTC to the millisecond, with a Z, whichever encoding it came in."""
    moment = as_datetime(value).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def numbers(condition: dict[str, Any]) -> dict[str, Any]:
    """A range condition on a seq that only numbers meet. MongoDB compares within a type; the embedded server matched
    a string, an array or a subdocument to {"$gt": 0}, and false or null to {"$lt": 10}, but none of them to a range
    bounded on both sides within 1..MAX_INT (true it takes for 1 everywhere, its unique index included: readers check
    is_seq). Not `$type`: with it the embedded server scans the whole collection instead of using its index."""
    lower = {} if "$gt" in condition or "$gte" in condition else {"$gt": 0}
    upper = {} if "$lt" in condition or "$lte" in condition else {"$lte": MAX_INT}
    return {**lower, **condition, **upper}


def all_of(*conditions: dict[str, Any]) -> dict[str, Any]:
    """A filter every condition of which must hold, as an explicit $and: the embedded server's writes (update,
    findAndModify) dropped a condition that sat in one document beside a top-level $or, and changed another document."""
    return {"$and": list(conditions)}


async def put(collection: AsyncCollection[dict[str, Any]], document: dict[str, Any]) -> None:
    """Stores `document` under its _id, replacing what is there. The _id goes in the replacement as well as the
    filter: the embedded server's upsert gave a new document an ObjectId of its own instead of the filter's _id."""
    await collection.replace_one({"_id": document["_id"]}, document, upsert=True)


def with_now(update: dict[str, Any], *fields: str) -> dict[str, Any]:
    """`update`, also setting each of `fields` to the server's time: $currentDate, because the embedded server stores
    a datetime given to $set as a string."""
    return {**update, "$currentDate": dict.fromkeys(fields, True)}


async def count(collection: AsyncCollection[dict[str, Any]], query: dict[str, Any], cap: int) -> int:
    """How many documents match, counted up to `cap` (the caller says "`cap` or more"): a bounded read on either
    server, whatever the collection holds. A find of at most `cap` _ids: count_documents, and an aggregate's $count
    even after a $limit, read every match on the embedded server; its find with a limit stops at the limit."""
    return len(await collection.find(query, {"_id": 1}).limit(cap).to_list())


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


async def purges_ttl_on_read(db: Database) -> bool:
    """Whether this is the embedded server, which honours a TTL index by purging the collection on every read of
    it, with a full scan whose cost grows with the collection: there chores delete expired documents instead."""
    return (await db.command("buildInfo")).get("process") == "nx_27017"


async def _unique_where_present(collection: AsyncCollection[dict[str, Any]], field: str) -> None:
    """Unique among the documents that have the field, so that any number may lack it: MongoDB indexes a missing
    field as null, and a plain unique index lets one document lack it."""
    await collection.create_index(field, unique=True, partialFilterExpression={field: {"$exists": True}})


# The collections whose documents end at their `expires_at`, each read as absent from then on by its readers.
EXPIRING = ("sessions", "update_ids", "spent_keys", "presence", "refusals", "sends")


# Embedded-server workaround: its TTL index purges on every read, with a full scan, so there a chore deletes instead.
async def _index_expiry(collection: AsyncCollection[dict[str, Any]], embedded: bool) -> None:
    """`expires_at` indexed: a TTL index on MongoDB, whose monitor deletes what has expired about once a minute; a
    plain one on the embedded server, where shared/expiry.py's chore deletes it. An index of the other kind (left by
    an earlier start, or by a start on the other server) is replaced."""
    ttl = None if embedded else 0
    async for index in await collection.list_indexes():
        if index["key"] == {"expires_at": 1} and index.get("expireAfterSeconds") != ttl:
            await collection.drop_index(index["name"])
    if embedded:
        await collection.create_index("expires_at")
    else:
        await collection.create_index("expires_at", expireAfterSeconds=0)


async def ensure_indexes(db: Database) -> None:
    await db.users.create_index("username_key", unique=True)
    embedded = await purges_ttl_on_read(db)
    for name in EXPIRING:
        await _index_expiry(db[name], embedded)
    await db.sessions.create_index("user_id")
    await _unique_where_present(db.updates, "seq")  # other writers insert updates without one, for the stream to number
    await db.updates.create_index([("seq", ASCENDING), ("show", ASCENDING)])  # finds those, which the unique one omits
    await db.updates.create_index([("show", ASCENDING), ("seq", ASCENDING)])
    await db.updates.create_index([("author_id", ASCENDING), ("seq", ASCENDING)])
    await _unique_where_present(db.updates, "source_key")  # a watch rule's change is written once (stream/derive.py)
    await db.updates.create_index("source_doc", partialFilterExpression={"source_doc": {"$exists": True}})
    await db.updates.create_index(
        [("recipient", ASCENDING), ("seq", ASCENDING)], partialFilterExpression={"recipient": {"$exists": True}}
    )
    await db.updates.create_index(
        [("author", ASCENDING), ("idempotency_key", ASCENDING)],
        unique=True,
        partialFilterExpression={"idempotency_key": {"$exists": True}},
    )
    await db.tokens.create_index([("user_id", ASCENDING), ("name", ASCENDING)], unique=True)
    await db.tokens.create_index(
        [("user_id", ASCENDING), ("slot", ASCENDING)], unique=True, partialFilterExpression={"slot": {"$exists": True}}
    )
    await db.buckets.create_index("full_at")
    await db.devices.create_index("endpoint", unique=True)  # a browser's subscription belongs to one user
    await db.devices.create_index([("user_id", ASCENDING), ("slot", ASCENDING)], unique=True)
    await db.sends.create_index("user_id")
    await db.users.create_index("email.verified_at", sparse=True)  # the digest's recipients, a few of all users


async def seed_shows(db: Database) -> None:
    for slug, title in SHOWS.items():
        await db.shows.replace_one({"_id": slug}, {"_id": slug, "title": title}, upsert=True)


async def prepare(db: Database) -> None:
    """Indexes and the catalogue; safe to run on every start of every service."""
    await ensure_indexes(db)
    await seed_shows(db)
