"""The embedded-server workarounds in shared/db.py, each against the real server (and right on MongoDB too)."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId
from pymongo._asyncio_lock import Condition, Lock
from pymongo.errors import DuplicateKeyError, OperationFailure
from pymongo.lock import _async_cond_wait

from shared.db import (
    HISTORY_INDEX,
    Database,
    as_datetime,
    change_id,
    check_query,
    connect,
    count,
    delete_older,
    ensure_indexes,
    iso_utc,
    keep_history,
    matching,
    new_id,
    next_change,
    next_seq,
    numbers,
    purges_ttl_on_read,
    put,
    token_epoch,
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


async def test_change_event_dates_and_string_ids_survive(db: Database) -> None:
    created = datetime(2026, 11, 24, 10, 0, 0, 123000, tzinfo=UTC)
    async with await db.updates.watch([{"$match": {"operationType": "insert"}}]) as stream:
        await db.updates.insert_one({"_id": "plain-string-id", "seq": 1, "created_at": created})
        change = None
        for _ in range(200):
            if (change := await next_change(stream, 0.01)) is not None:
                break
    assert change is not None
    assert change["documentKey"]["_id"] == "plain-string-id"
    assert as_datetime(change["fullDocument"]["created_at"]) == created


class _Answers:
    """A change stream's try_next as a server answers it: an empty batch after `wait` seconds."""

    def __init__(self, wait: float) -> None:
        self.wait = wait

    async def try_next(self) -> None:
        await asyncio.sleep(self.wait)


@pytest.mark.parametrize(("server_wait", "took"), [(0.0, 0.3), (0.3, 0.3), (0.5, 0.5)])
async def test_an_empty_batch_is_followed_by_the_rest_of_the_pause_only(server_wait: float, took: float) -> None:
    """The embedded server answers an empty getMore at once: the loop must not spin. MongoDB waits for
    maxAwaitTimeMS itself, which may be longer than the pause: a second wait on top would delay the next change."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await next_change(_Answers(server_wait), 0.3) is None  # type: ignore[arg-type]
    assert took <= loop.time() - started < took + 0.25


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


async def test_old_updates_go_in_batches_and_recent_ones_stay(db: Database) -> None:
    old = utcnow() - timedelta(days=3)
    await db.updates.insert_many([{**stored_update(seq), "created_at": old} for seq in range(1, 6)])
    await db.updates.insert_one(stored_update(6))
    assert await delete_older(db, utcnow() - timedelta(days=1), batch=2) == 5
    assert [update["seq"] async for update in db.updates.find({})] == [6]


async def test_an_old_document_without_a_seq_takes_no_other_with_it(db: Database) -> None:
    await db.updates.insert_many([{"text": "old", "created_at": utcnow() - timedelta(days=2)}, {"text": "new"}])
    assert await delete_older(db, utcnow() - timedelta(days=1)) == 1
    assert [update["text"] async for update in db.updates.find({})] == ["new"]


async def test_history_is_kept_by_a_ttl_index_on_mongodb_and_by_a_chore_on_the_embedded_server(db: Database) -> None:
    await ensure_indexes(db)
    embedded = await purges_ttl_on_read(db)
    assert embedded == ("MONGO_URL" not in os.environ)
    for days in (90, 1, 0):
        assert await keep_history(db, days) == (embedded and days > 0)
        ttl = {index["name"]: index.get("expireAfterSeconds") async for index in await db.updates.list_indexes()}
        assert ttl.get(HISTORY_INDEX) == (None if embedded or not days else days * 86400)


def test_iso_utc_is_one_format_for_both_encodings() -> None:
    moment = datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=UTC)
    assert iso_utc(moment) == iso_utc({"$date": "2026-11-24T10:00:00.123Z"}) == "2026-11-24T10:00:00.123Z"


async def test_seq_is_strictly_increasing_under_concurrency(db: Database) -> None:
    seqs = await asyncio.gather(*(next_seq(db) for _ in range(50)))
    assert sorted(seqs) == list(range(1, 51))


async def test_seq_blocks_are_consecutive_and_never_shared(db: Database) -> None:
    lasts = await asyncio.gather(*(next_seq(db, count=5) for _ in range(10)))
    assert sorted(seq for last in lasts for seq in range(last - 4, last + 1)) == list(range(1, 51))


async def test_change_ids_are_the_documents_own_for_every_kind_of_id(db: Database) -> None:
    """The embedded server gives an integer _id in documentKey as a string: change_id gives back the integer, and
    a write by that _id finds the document. ObjectIds and strings come back as they are."""
    ids = [7, "7", ObjectId()]
    async with await db.updates.watch(full_document="updateLookup") as stream:
        for document_id in ids:
            await db.updates.insert_one({"_id": document_id, "n": 0})
            await db.updates.update_one({"_id": document_id}, {"$set": {"n": 1}})
            await db.updates.delete_one({"_id": document_id})
        seen = []
        while len(seen) < 3 * len(ids):
            if (change := await next_change(stream, 0.01)) is not None:
                seen.append(change_id(change))
    assert seen == [document_id for document_id in ids for _ in range(3)]
    assert [type(document_id) for document_id in seen[::3]] == [int, str, ObjectId]


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


async def test_a_unique_seq_index_made_before_is_replaced(db: Database) -> None:
    """On MongoDB the old index (unique over every document) lets one document lack a seq; it is rebuilt."""
    await db.updates.create_index("seq", unique=True)
    await ensure_indexes(db)
    await db.updates.insert_many([{"show": "flash"}, {"show": "flash"}])


async def test_put_stores_a_document_under_its_own_id_and_replaces_it(db: Database) -> None:
    for document_id in ("key", 17, ObjectId()):
        await put(db.update_ids, {"_id": document_id, "seq": 1, "at": utcnow()})
        await put(db.update_ids, {"_id": document_id, "seq": 2, "at": utcnow()})
        stored = await db.update_ids.find({"_id": document_id}).to_list()
        assert [(found["seq"], isinstance(found["at"], datetime)) for found in stored] == [(2, True)]
    assert await db.update_ids.count_documents({}) == 3


async def test_a_query_mongodb_refuses_is_refused_even_on_an_empty_collection(db: Database) -> None:
    with pytest.raises(OperationFailure):
        await check_query(db, "no_documents_yet", {"status": {"$bogus": 1}})
    await check_query(db, "no_documents_yet", {"status": {"$in": ["placed", "shipped"]}})


async def test_a_resume_token_is_kept_with_the_server_that_gave_it_on_the_embedded_server_only(db: Database) -> None:
    epoch = await token_epoch(db)
    embedded = await purges_ttl_on_read(db)
    assert (epoch is not None) == embedded
    assert await token_epoch(db) == epoch  # the same server process: the same epoch


@pytest.mark.parametrize("embedded", [True, False])
async def test_the_documents_of_given_ids_that_match_a_query_are_found_either_way(db: Database, embedded: bool) -> None:
    ids = (await db.things.insert_many([{"n": n, "kind": "odd" if n % 2 else "even"} for n in range(10)])).inserted_ids
    found = await matching(db, "things", ids[:6], {"kind": "odd", "n": {"$gte": 2}}, embedded)
    assert sorted(found) == [ids[3], ids[5]]
    assert await matching(db, "things", [], {"kind": "odd"}, embedded) == []
    assert await db.query_checks.count_documents({"_check": {"$ne": "one"}}) == 0  # nothing left behind


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
