"""Token buckets in MongoDB (shared/limits.py) against the embedded server: exact under concurrency, shared by
every client of the database, and answered with the wait until the next token. Time is an injected clock's wherever
a result depends on it, so a busy machine cannot change one."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient

from shared.db import Database, ensure_indexes
from shared.errors import ApiError
from shared.limits import LIMITS, Buckets, Limit, Rate, refusal
from tests.support.clock import Seconds
from tests.support.waiting import wait_until

SLOW = Rate(5, 3600.0)  # five at once, then one every 12 minutes: nothing refills while a test runs


async def test_a_bucket_grants_its_count_then_says_how_long_to_wait(db: Database) -> None:
    clock = Seconds()
    buckets = Buckets(db, clock)
    assert await buckets.take("another", SLOW) == 0.0  # each key its own
    assert [await buckets.take("k", SLOW) for _ in range(5)] == [0.0] * 5
    assert await buckets.take("k", SLOW) == 720  # one token comes back every 3600 s / 5
    clock.advance(20)
    assert await buckets.take("k", SLOW) == 700
    assert await buckets.take("other", SLOW) == 0.0


async def test_concurrent_takes_never_grant_more_than_the_bucket_holds(db: Database) -> None:
    """The check and the take are one conditional update: forty at once, from two clients, get exactly five."""
    one, two = Buckets(db), Buckets(db)
    waits = await asyncio.gather(*((one if n % 2 else two).take("k", SLOW) for n in range(40)))
    assert sum(wait == 0.0 for wait in waits) == 5


async def test_a_bucket_refills_evenly_over_its_window(db: Database) -> None:
    clock = Seconds()
    buckets, rate = Buckets(db, clock), Rate(2, 40.0)  # a token every 20 s
    assert [await buckets.take("k", rate) for _ in range(2)] == [0.0, 0.0]
    assert await buckets.take("k", rate) == 20
    clock.advance(19)
    assert await buckets.take("k", rate) == 1
    clock.advance(1)
    assert await buckets.take("k", rate) == 0.0  # the one token that came back
    assert await buckets.take("k", rate) == 20
    clock.advance(60)  # a bucket refills to its count, never beyond
    assert [await buckets.take("k", rate) for _ in range(3)] == [0.0, 0.0, 20]


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
    clock = Seconds()
    buckets = Buckets(db, clock)
    await buckets.take("drained", SLOW)
    await buckets.take("refilled", Rate(1, 10.0))
    await db.buckets.insert_one({"_id": "full", "full_at": clock() - 1})
    clock.advance(10)  # "refilled" is full again only now
    await buckets.sweep()
    assert [bucket["_id"] async for bucket in db.buckets.find().sort("_id")] == ["drained", "refilled"]
    clock.advance(0.001)
    await buckets.sweep()
    assert [bucket["_id"] async for bucket in db.buckets.find()] == ["drained"]


def test_retry_after_is_the_wait_in_whole_seconds_and_never_less_than_one() -> None:
    waits = {0.001: "1", 1.0: "1", 1.2: "2", 720.0: "720"}
    assert {wait: refusal("publish", 429, "Too fast.", wait).headers["retry-after"] for wait in waits} == waits


def refusals() -> dict[str, float]:
    """gossip_refusals_total per limit, as /metrics shows it: every limit's series is there from the start."""
    return {name: REGISTRY.get_sample_value("gossip_refusals_total", {"limit": name}) or 0.0 for name in LIMITS}


async def test_a_limit_answers_each_caller_and_refuses_with_retry_after(db: Database) -> None:
    """Eight calls of one key at once share one update; the bucket's five go to five of them."""
    limit = Limit(Buckets(db), "publish", SLOW, "Too fast.")
    before = refusals()
    results = await asyncio.gather(*(limit("author") for _ in range(8)), return_exceptions=True)
    refused = [result for result in results if isinstance(result, ApiError)]
    assert results.count(None) == 5 and len(refused) == 3
    assert refusals() == {**before, "publish": before["publish"] + 3}  # counted, under the limit's name alone
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


class Counted(Buckets):
    """The real buckets, counting the round trips that take tokens."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.takes = 0

    async def take(self, key: str, rate: Rate, count: int = 1) -> float:
        self.takes += 1
        return await super().take(key, rate, count)


async def tokens_left(db: Database, rate: Rate) -> float:
    bucket = await db.buckets.find_one({"_id": "publish:author"})
    return rate.count - (bucket["full_at"] - time.time()) / rate.interval


async def test_a_key_called_in_a_loop_takes_tokens_ahead_and_spends_them_without_a_round_trip(db: Database) -> None:
    """1 ahead, then 2, 4, 8: twenty calls one after another cost five round trips, not twenty. The lease's clock
    stands still, so every call comes within it however slow the machine."""
    clock = Seconds()
    buckets, roomy = Counted(db), Rate(800, 3600.0)
    limit = Limit(buckets, "publish", roomy, "Too fast.", lease=60, clock=clock)
    for _ in range(20):
        await limit("author")
    assert buckets.takes == 5 and round(await tokens_left(db, roomy)) == 780  # the last 8 ahead were all spent


async def test_a_key_refused_is_refused_again_without_a_round_trip_until_its_next_token(db: Database) -> None:
    """Each refusal says the wait that is left; once the bucket's next token is due (on the limit's clock), the
    bucket is asked again, and it alone decides."""
    clock = Seconds()
    buckets = Counted(db)
    limit = Limit(buckets, "publish", SLOW, "Too fast.", clock=clock)
    for _ in range(5):
        await limit("author")
    waits = []
    for _ in range(4):
        with pytest.raises(ApiError) as refused:
            await limit("author")
        assert (refused.value.status, refused.value.detail) == (429, "Too fast.")
        waits.append(int(refused.value.headers["retry-after"]))
        clock.advance(30)
    assert buckets.takes == 6 and all(600 < wait <= 720 for wait in waits) and waits == sorted(waits, reverse=True)
    await limit("another author")  # another key is not refused with it
    clock.advance(600)  # the next token's time, by the limit's clock; not by the bucket's, which refuses again
    with pytest.raises(ApiError):
        await limit("author")
    assert buckets.takes == 8


async def test_an_occasional_caller_takes_nothing_ahead(db: Database) -> None:
    clock = Seconds()
    buckets, roomy = Counted(db), Rate(800, 3600.0)
    limit = Limit(buckets, "publish", roomy, "Too fast.", lease=60, clock=clock)
    for _ in range(3):
        await limit("author")
        clock.advance(60)  # each call after the last one's lease has run out
    assert buckets.takes == 3 and round(await tokens_left(db, roomy)) == 797


async def test_a_call_just_before_the_lease_ends_is_within_it_and_one_at_its_end_is_not(db: Database) -> None:
    clock = Seconds()
    buckets, roomy = Counted(db), Rate(800, 3600.0)
    limit = Limit(buckets, "publish", roomy, "Too fast.", lease=60, clock=clock)
    await limit("author")
    await limit("author")  # takes one ahead, leased for 60 s
    clock.advance(59.9)
    await limit("author")  # spends it
    assert buckets.takes == 2
    await limit("author")  # the lease is empty: takes two ahead
    clock.advance(60)
    await limit("author")  # the lease has ended: its two are not carried on, and nothing is taken ahead
    assert buckets.takes == 4 and round(await tokens_left(db, roomy)) == 793  # those two go back by the lease's timer


async def test_tokens_taken_ahead_and_not_spent_in_time_go_back_to_the_bucket(db: Database) -> None:
    """Else a script publishing in bursts, or one whose publishes go round several processes, would be refused
    before its rate for tokens that no one spends."""
    buckets, roomy = Counted(db), Rate(800, 360_000.0)  # no token refills while it runs
    limit = Limit(buckets, "publish", roomy, "Too fast.", lease=0.05)
    await limit("author")
    await limit("author")  # takes one ahead
    assert round(await tokens_left(db, roomy)) == 797

    async def given_back() -> bool:
        return round(await tokens_left(db, roomy)) == 798

    await wait_until(given_back)
    await limit("author")
    assert buckets.takes == 3


async def test_two_processes_leasing_from_one_bucket_never_exceed_it(db: Database) -> None:
    """Each process leases up to an eighth of the bucket: together they are granted at most what it holds."""
    rate = Rate(40, 3600.0)
    one, two = (Limit(Buckets(db), "publish", rate, "Too fast.") for _ in range(2))
    results = []
    for _ in range(30):
        results += await asyncio.gather(one("author"), two("author"), return_exceptions=True)
    assert 40 - 2 * (40 // 8) <= results.count(None) <= 40
    assert all(isinstance(result, ApiError) and result.status == 429 for result in results if result is not None)


async def test_a_small_bucket_is_never_leased_from(db: Database) -> None:
    """Below eight tokens nothing is taken ahead: every call is one round trip, as before leases."""
    buckets = Counted(db)
    limit = Limit(buckets, "publish", Rate(7, 3600.0), "Too fast.")
    results = [await asyncio.gather(limit("author"), return_exceptions=True) for _ in range(8)]
    assert buckets.takes == 8 and [result == [None] for result in results] == [True] * 7 + [False]


async def test_a_call_exactly_at_the_end_of_its_lease_is_past_it(db: Database) -> None:
    clock = Seconds()
    buckets, roomy = Counted(db), Rate(800, 3600.0)
    limit = Limit(buckets, "publish", roomy, "Too fast.", lease=60, clock=clock)
    await limit("author")
    await limit("author")  # one ahead, unspent, leased until 60 s from now
    clock.advance(60)
    await limit("author")  # a round trip of its own: nothing ahead, and the lapsed lease's token is not carried
    await limit("author")
    assert buckets.takes == 4


class Gated(Counted):
    """The real buckets, whose takes wait at a gate the test opens: a round trip held in flight."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.gate = asyncio.Event()
        self.gate.set()

    async def take(self, key: str, rate: Rate, count: int = 1) -> float:
        self.takes += 1
        await self.gate.wait()
        return await Buckets.take(self, key, rate, count)


async def hold_a_round_trip_and_queue_a_call(limit: Limit, buckets: Gated) -> None:
    """Two calls of one key one after another, the second arriving while the first's round trip is in flight: it
    goes in the next one, which runs as soon as the first has leased what it took ahead."""
    await limit("author")
    buckets.gate.clear()
    first = asyncio.create_task(limit("author"))  # its round trip takes one ahead, and waits at the gate
    await wait_until(lambda: buckets.takes == 2)
    second = asyncio.create_task(limit("author"))  # runs before the gate opens: it waits for the next round trip
    buckets.gate.set()
    await asyncio.gather(first, second)


async def test_a_round_trip_carries_on_what_the_lease_before_it_still_holds(db: Database) -> None:
    """The first round trip leases one token ahead; the second, taking two ahead, carries that one on: three calls
    then spend the three without a round trip."""
    buckets, roomy = Gated(db), Rate(800, 3600.0)
    limit = Limit(buckets, "publish", roomy, "Too fast.", lease=60, clock=Seconds())
    await hold_a_round_trip_and_queue_a_call(limit, buckets)
    for _ in range(3):
        await limit("author")
    assert buckets.takes == 3 and round(await tokens_left(db, roomy)) == 794


async def test_once_every_lease_has_lapsed_the_bucket_has_lost_only_what_was_spent(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever was taken ahead and carried on goes back exactly once, and nothing is kept per key after."""
    buckets, roomy = Gated(db), Rate(800, 360_000.0)  # no token refills while it runs
    limit = Limit(buckets, "publish", roomy, "Too fast.", lease=1.0, clock=Seconds())
    await hold_a_round_trip_and_queue_a_call(limit, buckets)  # three calls; up to three tokens leased, unspent
    await wait_until(lambda: not limit._leases and not limit._returning)
    assert round(await tokens_left(db, roomy)) == 797
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]  # none in the loop's timers


async def test_tokens_that_cannot_go_back_are_logged_and_refill_with_time(
    db: Database, caplog: pytest.LogCaptureFixture, refused_port: int
) -> None:
    limit = Limit(Buckets(db), "publish", Rate(800, 3600.0), "Too fast.", lease=0.05, clock=Seconds())
    await limit("author")
    await limit("author")  # one ahead, unspent
    gone = AsyncMongoClient(f"mongodb://127.0.0.1:{refused_port}/?directConnection=true", serverSelectionTimeoutMS=50)
    limit.buckets = Buckets(gone[db.name])
    try:
        warned = await wait_until(lambda: [r for r in caplog.records if r.name == "gossip.limits"], timeout=10)
    finally:
        await gone.close()
    message = warned[0].getMessage()
    assert (
        message.startswith("could not give back 1 tokens of publish:author: ")
        and f"127.0.0.1:{refused_port}" in message
    )
