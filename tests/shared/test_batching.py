"""Natural batching: the pure logic, and `by_id` against the real server."""

from __future__ import annotations

import asyncio

import pytest

from shared.batching import Batcher, by_id
from shared.db import Database
from tests.support.waiting import wait_until


class Recorder:
    """A `run` that answers each item doubled, and notes the batches it was given."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()

    async def __call__(self, items: list[int]) -> list[int | Exception]:
        self.batches.append(items)
        await self.release.wait()
        return [ValueError(f"odd {item}") if item % 2 else item * 2 for item in items]


async def test_calls_made_while_a_round_trip_is_in_flight_share_the_next() -> None:
    run = Recorder()
    batched = Batcher(run)
    first = asyncio.create_task(batched(2))
    await wait_until(lambda: run.batches)  # the first round trip is under way, with the one call there was
    rest = [asyncio.create_task(batched(n)) for n in (4, 6, 8)]
    run.release.set()
    assert await asyncio.gather(first, *rest) == [4, 8, 12, 16]
    assert run.batches == [[2], [4, 6, 8]]


async def test_an_error_in_one_answer_goes_to_its_caller_alone() -> None:
    run = Recorder()
    run.release.set()
    batched = Batcher(run)
    results = await asyncio.gather(batched(2), batched(3), batched(4), return_exceptions=True)
    assert results[0] == 4 and results[2] == 8
    assert isinstance(results[1], ValueError)


async def test_a_failed_round_trip_fails_every_caller_in_it_and_the_next_batch_still_runs() -> None:
    calls = 0

    async def flaky(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("the database went away")
        return items

    batched = Batcher(flaky)
    failed = await asyncio.gather(batched(1), batched(2), return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in failed)
    assert await batched(3) == 3


async def test_a_caller_that_hung_up_does_not_disturb_the_others() -> None:
    run = Recorder()
    batched = Batcher(run)
    gone, staying = asyncio.create_task(batched(2)), asyncio.create_task(batched(4))
    await wait_until(lambda: run.batches)
    gone.cancel()
    run.release.set()
    assert await staying == 8
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_batches_are_bounded() -> None:
    run = Recorder()
    run.release.set()
    batched = Batcher(run, max_size=2)
    assert await asyncio.gather(*(batched(n) for n in (2, 4, 6, 8, 10))) == [4, 8, 12, 16, 20]
    assert [len(batch) for batch in run.batches] == [2, 2, 1]


async def test_by_id_answers_each_lookup_as_find_one_would(db: Database) -> None:
    await db.sessions.insert_many([{"_id": "a", "user_id": "u1"}, {"_id": "b", "user_id": "u2"}])
    find = by_id(db.sessions, {"user_id": 1})
    assert await asyncio.gather(find("a"), find("missing"), find("b"), find("a")) == [
        {"_id": "a", "user_id": "u1"}, None, {"_id": "b", "user_id": "u2"}, {"_id": "a", "user_id": "u1"},
    ]  # fmt: skip
