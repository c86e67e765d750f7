"""The database access and embedded-server workarounds of shared/db.py, each against the real server (and right on
MongoDB too)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from bson import ObjectId
from pymongo._asyncio_lock import Condition, Lock
from pymongo.errors import DuplicateKeyError
from pymongo.lock import _async_cond_wait

from shared.db import (
    Database,
    all_of,
    as_datetime,
    connect,
    count,
    ensure_indexes,
    iso_utc,
    new_id,
    next_seq,
    numbers,
    put,
    username_key,
    utcnow,
    with_now,
)
from shared.settings import Settings
from tests.support.updates import stored_update


async def test_usernames_are_unique_case_insensitively_by_their_key(db: Database) -> None:
    await ensure_indexes(db)
    await db.users.insert_one({"_id": new_id(), "username": "Akul", "username_key": username_key("Akul")})
    with pytest.raises(DuplicateKeyError):
        await db.users.insert_one({"_id": new_id(), "username": "aKUL", "username_key": username_key("aKUL")})


async def test_a_date_written_at_insert_reads_back_as_a_date(db: Database) -> None:
    await db.sessions.insert_one({"_id": "s", "expires_at": utcnow()})
    assert isinstance((await db.sessions.find_one({"_id": "s"}))["expires_at"], datetime)


def test_as_datetime_reads_both_encodings() -> None:
    expected = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    assert as_datetime(expected) == expected
    assert as_datetime({"$date": "2026-11-24T10:00:00"}) == expected
    assert as_datetime({"$date": "2026-11-24T10:00:00Z"}) == expected
    assert as_datetime("2026-11-24 10:00:00") == expected
    with pytest.raises(TypeError):
        as_datetime("soon")


async def test_a_date_written_by_set_reads_back_as_a_date(db: Database) -> None:
    await db.sessions.insert_one({"_id": "s", "expires_at": utcnow()})
    moment = datetime(2026, 11, 24, 10, 0, 0, 123000, tzinfo=UTC)
    await db.sessions.update_one({"_id": "s"}, {"$set": {"expires_at": moment}})
    assert as_datetime((await db.sessions.find_one({"_id": "s"}))["expires_at"]) == moment


async def test_count_agrees_with_count_documents_up_to_its_cap(db: Database) -> None:
    await db.updates.insert_many([stored_update(seq, show) for seq, show in enumerate(["flash", "suits"] * 5, 1)])
    for query in ({}, {"show": {"$in": ["flash"]}, "seq": {"$gt": 2, "$lte": 8}}, {"show": "sherlock"}):
        assert await count(db.updates, query, 100) == await db.updates.count_documents(query)
        assert await count(db.updates, query, 2) == min(2, await db.updates.count_documents(query))


def test_iso_utc_is_one_format_for_both_encodings() -> None:
    moment = datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=UTC)
    assert iso_utc(moment) == iso_utc({"$date": "2026-11-24T10:00:00.123Z"}) == "2026-11-24T10:00:00.123Z"


async def test_seq_is_strictly_increasing_under_concurrency(db: Database) -> None:
    seqs = await asyncio.gather(*(next_seq(db) for _ in range(50)))
    assert sorted(seqs) == list(range(1, 51))


async def test_seq_blocks_are_consecutive_and_never_shared(db: Database) -> None:
    lasts = await asyncio.gather(*(next_seq(db, count=5) for _ in range(10)))
    assert sorted(seq for last in lasts for seq in range(last - 4, last + 1)) == list(range(1, 51))


async def test_a_date_set_as_the_server_time_reads_back_as_a_date(db: Database) -> None:
    await db.updates.insert_one({"_id": "u"})
    await db.updates.update_one({"_id": "u"}, with_now({"$set": {"text": "t"}}, "edited_at"))
    stored = await db.updates.find_one({"_id": "u"})
    assert stored is not None and stored["text"] == "t"
    assert isinstance(stored["edited_at"], datetime)
    assert abs((stored["edited_at"] - utcnow()).total_seconds()) < 5


async def test_a_range_on_a_number_matches_numbers_only(db: Database) -> None:
    await db.updates.insert_many([{"seq": value} for value in (1, 2.5, 3, "x", [7], {"n": 1}, False, None)])
    above = await db.updates.find({"seq": numbers({"$gt": 0})}).sort("seq", 1).to_list()
    below = await db.updates.find({"seq": numbers({"$lt": 10})}).sort("seq", 1).to_list()
    assert [found["seq"] for found in above] == [found["seq"] for found in below] == [1, 2.5, 3]


async def test_any_number_of_updates_may_lack_a_seq_but_no_two_share_one(db: Database) -> None:
    await ensure_indexes(db)
    await ensure_indexes(db)  # every service runs it at every start
    await db.updates.insert_many([{"show": "flash"}, {"show": "flash"}, {"seq": None}, {"seq": 1}])
    with pytest.raises(DuplicateKeyError):
        await db.updates.insert_one({"seq": 1})


async def test_a_write_by_id_and_an_or_changes_that_document_alone(db: Database) -> None:
    """Both documents meet the $or; the first is stored first, where the embedded server's write went instead."""
    await db.leases_check.insert_many([{"_id": "episodes", "until": 0}, {"_id": "orders", "until": 0}])
    free = {"$or": [{"holder": "me"}, {"until": {"$lt": 1}}]}
    updated = await db.leases_check.update_one(all_of({"_id": "orders"}, free), {"$set": {"holder": "me"}})
    found = await db.leases_check.find_one_and_update(all_of({"_id": "nothing"}, free), {"$set": {"holder": "you"}})
    assert (updated.matched_count, found) == (1, None)
    held = {document["_id"]: document.get("holder") async for document in db.leases_check.find()}
    assert held == {"episodes": None, "orders": "me"}


async def test_put_stores_a_document_under_its_own_id_and_replaces_it(db: Database) -> None:
    for document_id in ("key", 17, ObjectId()):
        await put(db.update_ids, {"_id": document_id, "seq": 1, "at": utcnow()})
        await put(db.update_ids, {"_id": document_id, "seq": 2, "at": utcnow()})
        stored = await db.update_ids.find({"_id": document_id}).to_list()
        assert [(found["seq"], isinstance(found["at"], datetime)) for found in stored] == [(2, True)]
    assert await db.update_ids.count_documents({}) == 3


async def _settle() -> None:
    """Lets every ready task run until each waits on something only the test will do: scheduling steps, not time."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_wait_inside_pymongo_cancelled_twice_gives_its_lock_back(settings: Settings) -> None:
    """PyMongo's server selection waits on its topology's condition; a stop cancels the tasks in it, maybe twice,
    while the database is away. The lock must be free after, or every later call of the client hangs, and the stop
    with it (Python 3.11's wait_for left it taken: shared/db.py `_waits_stay_in_their_task`)."""
    await connect(settings.mongo_url).close()  # every client of the services is made by connect
    lock = Lock()
    condition = Condition(lock)

    async def selecting() -> None:
        async with condition:
            await _async_cond_wait(condition, 60)

    selection = asyncio.create_task(selecting())
    await _settle()
    await lock.acquire()  # another task holds the lock as the wait is cancelled, so it has to queue to take it back
    selection.cancel()
    await _settle()
    selection.cancel()
    lock.release()
    await asyncio.wait([selection])
    await _settle()
    assert selection.cancelled() and not lock.locked()
