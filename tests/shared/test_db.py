"""The embedded-server workarounds in shared/db.py, each against the real server (and right on MongoDB too)."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.errors import DuplicateKeyError

from shared.db import (
    HISTORY_INDEX,
    Database,
    as_datetime,
    count,
    delete_older,
    ensure_indexes,
    iso_utc,
    keep_history,
    new_id,
    next_change,
    next_seq,
    purges_ttl_on_read,
    username_key,
    utcnow,
)
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


async def test_count_agrees_with_count_documents(db: Database) -> None:
    await db.updates.insert_many([stored_update(seq, show) for seq, show in enumerate(["flash", "suits"] * 5, 1)])
    for query in ({}, {"show": {"$in": ["flash"]}, "seq": {"$gt": 2, "$lte": 8}}, {"show": "sherlock"}):
        assert await count(db.updates, query) == await db.updates.count_documents(query)


async def test_old_updates_go_in_batches_and_recent_ones_stay(db: Database) -> None:
    old = utcnow() - timedelta(days=3)
    await db.updates.insert_many([{**stored_update(seq), "created_at": old} for seq in range(1, 6)])
    await db.updates.insert_one(stored_update(6))
    assert await delete_older(db, utcnow() - timedelta(days=1), batch=2) == 5
    assert [update["seq"] async for update in db.updates.find({})] == [6]


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
