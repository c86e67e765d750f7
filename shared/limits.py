"""Rate limits kept in MongoDB, so that every process of a service enforces the same one: token buckets.

A bucket holds `count` tokens and refills evenly over `seconds`. It is stored as one number, the moment it will be
full again (`full_at`, epoch seconds; the generic cell rate algorithm): taking n tokens is allowed while
`max(full_at, now) + n * interval - now <= seconds`, and moves `full_at` on by `n * interval`. That check and move
are one conditional `$inc`, so concurrent takes from any number of processes never grant more than the bucket
holds. A bucket whose `full_at` has passed is full, the same as no bucket at all, and is swept away.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter as Metric
from pymongo import UpdateOne
from pymongo.errors import PyMongoError

from shared.batching import Batcher
from shared.db import Database
from shared.errors import ApiError

log = logging.getLogger("gossip.limits")

REFUSED_AT_LEAST = 0.001  # seconds: the least wait a refusal gives
# Every limit's name, as refusals are counted: failed logins (per address or account), registrations per address,
# address-check mails, publishes per author, hashing turns, feeds per stream process and per user, and feeds a user
# opens per window.
LIMITS = ("login", "registration", "verification", "publish", "hashing", "feeds", "feeds_per_user", "feed")
REFUSALS = Metric("gossip_refusals", "Requests refused by a limit, answered 429 or 503 with Retry-After", ["limit"])
for name in LIMITS:  # every series from the start, at 0
    REFUSALS.labels(limit=name)


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `count` at once, refilled evenly over `seconds`."""

    count: int
    seconds: float

    @property
    def interval(self) -> float:
        return self.seconds / self.count


def refusal(limit: str, status: int, detail: str, wait: float) -> ApiError:
    """The one shape of a limit's answer: the JSON error, and Retry-After in whole seconds (at least one); counted
    by the limit's name (one of LIMITS)."""
    REFUSALS.labels(limit=limit).inc()
    return ApiError(status, detail=detail, headers={"retry-after": str(max(1, math.ceil(wait)))})


Clock = Callable[[], float]


class Buckets:
    """The `buckets` collection: one document per key (`publish:<user id>`, `login:addr:<address>`, ...). `clock`:
    epoch seconds, injected so that tests move time on instead of waiting for a refill; every process of a service
    must read the same time, so it is the wall clock in production."""

    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self.collection, self.clock = db.buckets, clock

    async def take(self, key: str, rate: Rate, count: int = 1) -> float:
        """Takes `count` tokens: 0.0 when they were taken, else the seconds until they could be (nothing is taken).

        One round trip of two ordered updates: the first creates the bucket or brings a past `full_at` up to now,
        the second moves it on only if the tokens are there. On MongoDB another take may run between the two; its
        own first update can only raise `full_at` to its own now, which makes this one stricter, never looser."""
        now = self.clock()
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
        # Never 0.0, which means taken: the bucket may have been swept or given tokens back since the update.
        return max(REFUSED_AT_LEAST, (bucket["full_at"] if bucket else now) - latest)

    async def give_back(self, key: str, rate: Rate, count: int = 1) -> None:
        """Returns tokens taken for something that did not happen (a login refused by another limit, a good
        password, tokens leased and not spent)."""
        await self.collection.update_one({"_id": key}, {"$inc": {"full_at": -count * rate.interval}})

    async def fill(self, key: str) -> None:
        """A full bucket is no bucket: after a good login, earlier failures are forgotten."""
        await self.collection.delete_one({"_id": key})

    async def sweep(self) -> None:
        """Deletes the full buckets: one per client address would otherwise accumulate for ever. Not a TTL index:
        that needs a date, which the embedded server cannot keep current."""
        await self.collection.delete_many({"full_at": {"$lt": self.clock()}})


LEASE = 1.0  # seconds a process may spend the tokens it took ahead of need; then the rest go back to the bucket
LEASE_SHARE = 8  # tokens taken ahead are at most this fraction of the bucket: a small one is never leased from
MAX_AHEAD = 64


@dataclass(slots=True)
class Lease:
    """Tokens of one key's bucket that this process took ahead of need, spent by its next calls until `until`
    (the Limit's clock). `ahead`: how many the last round trip took beyond its callers' need."""

    tokens: int
    until: float  # on the Limit's clock
    ahead: int  # -1: the bucket could not grant them, so the next round trip takes none ahead


class Limit:
    """One rate per key, such as publishes per author: `await limit(key)` passes or raises the 429.

    Concurrent calls share one bucket update per key (shared/batching.py): eight publishes of one author at once
    take eight tokens in one round trip. When the bucket holds fewer, they are taken one at a time until it is
    empty, and the rest are refused with the wait until their turn.

    A key called again within a second of its last round trip takes tokens ahead of need (a lease): 1, 2, 4, ... up
    to an eighth of the bucket, spent by this process's next calls without a round trip, so that a script publishing
    in a loop pays one per block, not one per publish. They are taken from the shared bucket like any other, so the
    limit across processes is never exceeded; what is not spent within the lease is given back, so that neither
    another process nor this key later is refused for tokens that no one spends. An occasional caller never
    leases. `clock`: monotonic seconds, injected so that tests decide whether a call came within the lease; the
    unspent tokens go back by a timer of the event loop's own.

    A key refused is refused again by this process, with the wait that is left and no round trip, until the bucket
    said its next token comes: a script calling in a loop past the limit costs one round trip per token, not per
    call. Never looser than the bucket: at most it misses tokens another process gives back before then."""

    def __init__(
        self, buckets: Buckets, name: str, rate: Rate, detail: str, lease: float = LEASE, clock: Clock = time.monotonic
    ) -> None:
        self.buckets, self.name, self.rate, self.detail, self.lease = buckets, name, rate, detail, lease
        self.clock = clock
        self.most_ahead = min(MAX_AHEAD, rate.count // LEASE_SHARE)
        self._leases: dict[str, Lease] = {}
        self._refused: dict[str, float] = {}  # key: until when (the clock's) the bucket has no token for it
        self._returning: set[asyncio.Task[None]] = set()  # give-backs under way: the loop keeps weak references
        self._batch: Batcher[str, None] = Batcher(self._take_all)

    async def __call__(self, key: str) -> None:
        lease = self._leases.get(key)
        if lease is not None and lease.tokens and self.clock() < lease.until:
            lease.tokens -= 1
            return
        if (until := self._refused.get(key)) is not None and (left := until - self.clock()) > 0:
            raise refusal(self.name, 429, self.detail, left)
        await self._batch(key)

    async def _take_all(self, keys: list[str]) -> list[Exception | None]:
        counts, now = Counter(keys), self.clock()
        wanted = {key: (count, self._ahead(key, now)) for key, count in counts.items()}
        taken = await asyncio.gather(*(self._take(key, count, ahead) for key, (count, ahead) in wanted.items()))
        grants = dict(zip(wanted, taken, strict=True))
        for key, (count, ahead) in wanted.items():  # what was taken beyond need is leased
            got = ahead if grants[key][0] == count + ahead else -1  # -1: the bucket is running low
            self._lease(key, Lease(max(0, got) + self._left(key), self.clock() + self.lease, got))
            if grants[key][0] < count:
                self._refuse(key, now + grants[key][1])
        answers: list[Exception | None] = []
        for key in keys:  # the first callers of a key get its tokens
            granted, wait = grants[key]
            answers.append(None if granted > 0 else refusal(self.name, 429, self.detail, wait))
            grants[key] = (granted - 1, wait)
        return answers

    def _ahead(self, key: str, now: float) -> int:
        """Twice what was taken ahead last time, if the key has been called again before its lease ran out."""
        lease = self._leases.get(key)
        if lease is None or lease.until <= now or lease.ahead < 0:
            return 0
        return min(self.most_ahead, max(1, 2 * lease.ahead))

    def _left(self, key: str) -> int:
        """What the key's lease still holds, carried on by the new one (the old one then has nothing to give back)."""
        lease = self._leases.get(key)
        if lease is None or self.clock() >= lease.until:
            return 0
        carried, lease.tokens = lease.tokens, 0
        return carried

    def _refuse(self, key: str, until: float) -> None:
        """Remembered until then, and forgotten by a timer, so that keys refused once are not kept for ever."""
        self._refused[key] = until
        asyncio.get_running_loop().call_later(max(0.0, until - self.clock()), self._forgive, key, until)

    def _forgive(self, key: str, until: float) -> None:
        if self._refused.get(key) == until:
            del self._refused[key]

    def _lease(self, key: str, lease: Lease) -> None:
        self._leases[key] = lease
        asyncio.get_running_loop().call_later(self.lease, self._lapse, key, lease)

    def _lapse(self, key: str, lease: Lease) -> None:
        """At the end of its lease, what was not spent goes back to the bucket."""
        if self._leases.get(key) is lease:
            del self._leases[key]
        unspent, lease.tokens = lease.tokens, 0
        if unspent:
            returning = asyncio.create_task(self._give_back(key, unspent))
            self._returning.add(returning)
            returning.add_done_callback(self._returning.discard)

    async def _give_back(self, key: str, tokens: int) -> None:
        try:
            await self.buckets.give_back(f"{self.name}:{key}", self.rate, tokens)
        except PyMongoError as error:  # the tokens refill with time anyway
            log.warning("could not give back %d tokens of %s:%s: %s", tokens, self.name, key, error)

    async def _take(self, key: str, count: int, ahead: int) -> tuple[int, float]:
        """How many were granted (`count` and those `ahead`, or at most `count`), and the wait for the next."""
        bucket = f"{self.name}:{key}"
        for size in (count + ahead, count) if ahead else (count,):
            if (wait := await self.buckets.take(bucket, self.rate, size)) == 0.0:
                return size, 0.0
        if count == 1:
            return 0, wait  # asking for one again would only be refused again
        granted = 0
        while granted < count and (wait := await self.buckets.take(bucket, self.rate)) == 0.0:
            granted += 1
        return granted, wait
