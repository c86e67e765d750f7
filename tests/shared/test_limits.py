"""Token buckets in MongoDB (shared/limits.py) against the embedded server: exact under concurrency, shared by
every client of the database, and answered with the wait until the next token."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.db import Database, ensure_indexes
from shared.errors import ApiError
from shared.limits import Buckets, Limit, Rate

SLOW = Rate(5, 3600.0)  # five at once, then one every 12 minutes: nothing refills while a test runs


async def test_a_bucket_grants_its_count_then_says_how_long_to_wait(db: Database) -> None:
    buckets = Buckets(db)
    assert [await buckets.take("k", SLOW) for _ in range(5)] == [0.0] * 5
    wait = await buckets.take("k", SLOW)
    assert 700 < wait <= 720  # one token comes back every 3600 s / 5
    assert await buckets.take("other", SLOW) == 0.0  # each key its own


async def test_concurrent_takes_never_grant_more_than_the_bucket_holds(db: Database) -> None:
    """The check and the take are one conditional update: forty at once, from two clients, get exactly five."""
    one, two = Buckets(db), Buckets(db)
    waits = await asyncio.gather(*((one if n % 2 else two).take("k", SLOW) for n in range(40)))
    assert sum(wait == 0.0 for wait in waits) == 5


async def test_a_bucket_refills_evenly_over_its_window(db: Database) -> None:
    buckets, fast = Buckets(db), Rate(2, 0.4)  # a token every 0.2 s
    assert [await buckets.take("k", fast) for _ in range(2)] == [0.0, 0.0]
    assert 0 < await buckets.take("k", fast) <= 0.2
    await asyncio.sleep(0.25)
    assert await buckets.take("k", fast) == 0.0


async def test_several_tokens_are_taken_all_or_none(db: Database) -> None:
    buckets = Buckets(db)
    assert await buckets.take("k", SLOW, 3) == 0.0
    assert await buckets.take("k", SLOW, 3) > 0  # two left: none taken
    assert await buckets.take("k", SLOW, 2) == 0.0


async def test_tokens_given_back_or_filled_can_be_taken_again(db: Database) -> None:
    buckets = Buckets(db)
    for _ in range(5):
        await buckets.take("k", SLOW)
    await buckets.give_back("k", SLOW)
    assert await buckets.take("k", SLOW) == 0.0
    await buckets.fill("k")
    assert [await buckets.take("k", SLOW) for _ in range(5)] == [0.0] * 5


async def test_the_sweep_deletes_only_full_buckets(db: Database) -> None:
    await ensure_indexes(db)
    buckets = Buckets(db)
    await buckets.take("drained", SLOW)
    await db.buckets.insert_one({"_id": "full", "full_at": time.time() - 1})
    await buckets.sweep()
    assert [bucket["_id"] async for bucket in db.buckets.find()] == ["drained"]


async def test_a_limit_answers_each_caller_and_refuses_with_retry_after(db: Database) -> None:
    """Eight calls of one key at once share one update; the bucket's five go to five of them."""
    limit = Limit(Buckets(db), "publish", SLOW, "Too fast.")
    results = await asyncio.gather(*(limit("author") for _ in range(8)), return_exceptions=True)
    refused = [result for result in results if isinstance(result, ApiError)]
    assert results.count(None) == 5 and len(refused) == 3
    assert {(error.status, error.detail) for error in refused} == {(429, "Too fast.")}
    assert all(int(error.headers["retry-after"]) >= 1 for error in refused)
    await limit("another author")
    with pytest.raises(ApiError):
        await limit("author")


async def test_callers_refused_when_a_batch_outgrows_the_bucket_hear_the_real_wait(db: Database) -> None:
    """Two at once with one token left: one passes, the other is told the wait for the next token, not a second."""
    limit, buckets = Limit(Buckets(db), "publish", SLOW, "Too fast."), Buckets(db)
    for _ in range(4):
        await buckets.take("publish:author", SLOW)
    results = await asyncio.gather(limit("author"), limit("author"), return_exceptions=True)
    (refused,) = [result for result in results if isinstance(result, ApiError)]
    assert int(refused.headers["retry-after"]) > 600
