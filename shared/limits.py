"""Rate limits kept in MongoDB, so that every process of a service enforces the same one: token buckets.

A bucket holds `count` tokens and refills evenly over `seconds`. It is stored as one number, the moment it will be
full again (`full_at`, epoch seconds; the generic cell rate algorithm): taking n tokens is allowed while
`max(full_at, now) + n * interval - now <= seconds`, and moves `full_at` on by `n * interval`. That check and move
are one conditional `$inc`, so concurrent takes from any number of processes never grant more than the bucket
holds. A bucket whose `full_at` has passed is full, the same as no bucket at all, and is swept away.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pymongo import UpdateOne

from shared.batching import Batcher
from shared.db import Database
from shared.errors import ApiError

SWEEP_EVERY = 60.0  # seconds between deletions of full buckets


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `count` at once, refilled evenly over `seconds`."""

    count: int
    seconds: float

    @property
    def interval(self) -> float:
        return self.seconds / self.count


def refusal(status: int, detail: str, wait: float) -> ApiError:
    """The one shape of a limit's answer: the JSON error, and Retry-After in whole seconds (at least one)."""
    return ApiError(status, detail=detail, headers={"retry-after": str(max(1, math.ceil(wait)))})


class Buckets:
    """The `buckets` collection: one document per key (`publish:<user id>`, `login:addr:<address>`, ...)."""

    def __init__(self, db: Database) -> None:
        self.collection = db.buckets

    async def take(self, key: str, rate: Rate, count: int = 1) -> float:
        """Takes `count` tokens: 0.0 when they were taken, else the seconds until they could be (nothing is taken).

        One round trip of two ordered updates: the first creates the bucket or brings a past `full_at` up to now,
        the second moves it on only if the tokens are there. On MongoDB another take may run between the two; its
        own first update can only raise `full_at` to its own now, which makes this one stricter, never looser."""
        now = time.time()
        latest = now + rate.seconds - count * rate.interval  # the last `full_at` that still holds `count` tokens
        result = await self.collection.bulk_write(
            [
                UpdateOne({"_id": key}, {"$max": {"full_at": now}}, upsert=True),
                UpdateOne({"_id": key, "full_at": {"$lte": latest}}, {"$inc": {"full_at": count * rate.interval}}),
            ]
        )
        if result.matched_count + result.upserted_count == 2:
            return 0.0
        bucket = await self.collection.find_one({"_id": key})
        return max(0.0, (bucket["full_at"] if bucket else now) - latest)

    async def give_back(self, key: str, rate: Rate, count: int = 1) -> None:
        """Returns tokens taken for something that did not happen (a login the server was too busy to check)."""
        await self.collection.update_one({"_id": key}, {"$inc": {"full_at": -count * rate.interval}})

    async def fill(self, key: str) -> None:
        """A full bucket is no bucket: after a good login, earlier failures are forgotten."""
        await self.collection.delete_one({"_id": key})

    async def sweep(self) -> None:
        await self.collection.delete_many({"full_at": {"$lt": time.time()}})


@asynccontextmanager
async def swept(buckets: Buckets, every: float = SWEEP_EVERY) -> AsyncIterator[None]:
    """Full buckets are deleted once a minute by every process: a bucket per client address would otherwise
    accumulate for ever (a TTL index needs a date, which the embedded server cannot keep current)."""

    async def sweep() -> None:
        while True:
            await asyncio.sleep(every)
            await buckets.sweep()

    task = asyncio.create_task(sweep())
    try:
        yield
    finally:
        task.cancel()


class Limit:
    """One rate per key, such as publishes per author: `await limit(key)` passes or raises the 429.

    Concurrent calls share one bucket update per key (shared/batching.py): eight publishes of one author at once
    take eight tokens in one round trip. When the bucket holds fewer, they are taken one at a time until it is
    empty, and the rest are refused with the wait until their turn."""

    def __init__(self, buckets: Buckets, name: str, rate: Rate, detail: str) -> None:
        self.buckets, self.name, self.rate, self.detail = buckets, name, rate, detail
        self._batch: Batcher[str, None] = Batcher(self._take_all)

    async def __call__(self, key: str) -> None:
        await self._batch(key)

    async def _take_all(self, keys: list[str]) -> list[Exception | None]:
        counts = Counter(keys)
        grants = dict(zip(counts, await asyncio.gather(*(self._take(k, n) for k, n in counts.items())), strict=True))
        answers: list[Exception | None] = []
        for key in keys:  # the first callers of a key get its tokens
            granted, wait = grants[key]
            answers.append(None if granted > 0 else refusal(429, self.detail, wait))
            grants[key] = (granted - 1, wait)
        return answers

    async def _take(self, key: str, count: int) -> tuple[int, float]:
        """How many of `count` were granted, and the wait for the next."""
        bucket = f"{self.name}:{key}"
        if (wait := await self.buckets.take(bucket, self.rate, count)) == 0.0:
            return count, 0.0
        granted = 0
        while granted < count and (wait := await self.buckets.take(bucket, self.rate)) == 0.0:
            granted += 1
        return granted, wait
