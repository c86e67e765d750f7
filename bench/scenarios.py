"""What `make bench` measures: the machine's floor, then six scenarios, each against a fresh deployment. Each
returns one Result."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from bench.cluster import Deployment, Publisher, deployment
from bench.figures import Tally, all_arrived, tally
from bench.floor import floor
from bench.report import Result
from bench.sse import Feed, feed_request, open_feeds
from shared.db import SHOWS, utcnow
from shared.updates import digest, update_id

Scenario = Callable[[str], Awaitable[Result]]
ARRIVAL_TIMEOUT = 60.0
SHOW_SLUGS = sorted(SHOWS)
RAW_SEQS = 10**9  # the raw inserts' seqs, far above the published ones


async def paced(count: int, rate: float, publish: Callable[[int], Awaitable[int]]) -> list[int]:
    """`count` publishes started at `rate` per second, each on its own schedule: a slow answer delays no other."""
    start = time.perf_counter()

    async def one(number: int) -> int:
        await asyncio.sleep(max(0.0, start + number / rate - time.perf_counter()))
        return await publish(number)

    return await asyncio.gather(*(one(number) for number in range(count)))


async def flat_out(count: int, clients: int, publish: Callable[[int], Awaitable[int]]) -> list[int]:
    """`count` publishes from `clients` concurrent clients, each sending its next as soon as the last is answered."""
    numbers = iter(range(count))
    seqs: list[int] = []

    async def client() -> None:
        for number in numbers:
            seqs.append(await publish(number))

    await asyncio.gather(*(client() for _ in range(clients)))
    return sorted(seqs)


async def followers(deployed: Deployment, follows: Sequence[Sequence[str]], path: str = "/events") -> list[Feed]:
    cookies = await deployed.sign_in(follows)
    return await open_feeds(deployed.stream_port, [feed_request(path, cookie) for cookie in cookies])


async def received(feeds: Sequence[Feed], expected: Sequence[Sequence[int]], publisher: Publisher) -> Tally:
    """Waits (within a deadline) for every feed to hold what it should, then counts what each really got."""
    await all_arrived(feeds, [len(seqs) for seqs in expected], ARRIVAL_TIMEOUT)
    return tally(feeds, expected, publisher.sent)


def closed(feeds: Sequence[Feed]) -> None:
    for feed in feeds:
        feed.close()


async def paced_to_all(deployed: Deployment, feeds: Sequence[Feed], updates: int, rate: float) -> Tally:
    """Flash updates published at `rate`, all of which every feed (following flash) should get."""
    publisher = await deployed.publisher(connections=4)
    seqs = await paced(updates, rate, lambda n: publisher.publish("flash", f"update {n}"))
    got = await received(feeds, [seqs] * len(feeds), publisher)
    closed(feeds)
    return got


async def fanout(mongo_url: str, feeds: int = 1000, updates: int = 200, rate: float = 50.0) -> Result:
    """Also notes the stream process's CPU per write it made (all of it, the change streams' polls and the hub's
    work included), to read against the machine's floor, and how many frames a write carried."""
    async with deployment(mongo_url, "fanout") as deployed:
        opened = await followers(deployed, [["flash"]] * feeds)
        cpu, writes = deployed.stream_usage()
        got = await paced_to_all(deployed, opened, updates, rate)
        cpu_after, writes_after = deployed.stream_usage()
    p99, wrote = got.percentile(0.99), max(1, writes_after - writes)
    return Result(
        "fanout",
        {
            "feeds": feeds,
            "updates": updates,
            "rate/s": rate,
            "p50 ms": got.percentile(0.5),
            "p99 ms": p99,
            **got.misses(),
            "stream µs/write": (cpu_after - cpu) / wrote * 1e6,
            "frames/write": got.deliveries / wrote,
        },
        {"p99 ≤ 50 ms": p99 <= 50, "0 lost, 0 dup": got.exact},
    )


async def burst(mongo_url: str, feeds: int = 1000, updates: int = 1000, clients: int = 8) -> Result:
    async with deployment(mongo_url, "burst") as deployed:
        opened = await followers(deployed, [["flash"]] * feeds)
        publisher = await deployed.publisher(connections=clients)
        start = time.perf_counter()
        seqs = await flat_out(updates, clients, lambda n: publisher.publish("flash", f"burst {n}"))
        got = await received(opened, [seqs] * feeds, publisher)
        closed(opened)
    rate = got.deliveries / (got.last_arrival - start)
    return Result(
        "burst",
        {
            "feeds": feeds,
            "updates": updates,
            "deliveries/s": round(rate),
            "p99 ms": got.percentile(0.99),
            **got.misses(),
        },
        {"≥ 60,000 deliveries/s": rate >= 60_000, "0 lost, 0 dup": got.exact},
    )


async def scale(mongo_url: str, feeds: int = 10_000, updates: int = 20, rate: float = 1.0) -> Result:
    async with deployment(mongo_url, "scale") as deployed:
        before = deployed.stream_rss()
        opened = await followers(deployed, [["flash"]] * feeds)
        per_feed_kb = (deployed.stream_rss() - before) / feeds / 1024
        got = await paced_to_all(deployed, opened, updates, rate)
    p99 = got.percentile(0.99)
    return Result(
        "scale",
        {
            "connected": len(opened),
            "KB/feed": per_feed_kb,
            "updates": updates,
            "rate/s": rate,
            "p50 ms": got.percentile(0.5),
            "p99 ms": p99,
            **got.misses(),
        },
        {"10,000 connected": len(opened) == 10_000, "≤ 40 KB/feed": per_feed_kb <= 40, "p99 ≤ 500 ms": p99 <= 500},
    )


async def catch_up(mongo_url: str, feeds: int = 5000, updates: int = 50) -> Result:
    async with deployment(mongo_url, "catchup") as deployed:
        cookies = await deployed.sign_in([["flash"]] * feeds)
        opened = await open_feeds(deployed.stream_port, [feed_request("/events", cookie) for cookie in cookies])
        publisher = await deployed.publisher(connections=4)
        seen = await publisher.publish("flash", "everyone saw this one")
        await received(opened, [[seen]] * feeds, publisher)
        closed(opened)
        await asyncio.gather(*(feed.closed for feed in opened))
        missed = [await publisher.publish("flash", f"missed {n}") for n in range(updates)]
        start = time.perf_counter()
        back = await open_feeds(deployed.stream_port, [feed_request("/events", c, seen) for c in cookies], 1000)
        reconnected = time.perf_counter() - start
        got = await received(back, [missed] * feeds, publisher)
        took = got.last_arrival - start
        closed(back)
    return Result(
        "catch-up",
        {"feeds": feeds, "missed": updates, "all reconnected s": reconnected, "all caught up s": took, **got.misses()},
        {"≤ 10 s": took <= 10, "0 lost, 0 dup": got.exact},
    )


async def ingest(mongo_url: str, publishes: int = 2000, clients: int = 8, rounds: int = 4) -> Result:
    """The API and raw inserts take turns, a quarter of the publishes at a time, so that the machine's drift
    (a checkpoint of the database's file, a neighbour's load) weighs on both alike."""
    async with deployment(mongo_url, "ingest", streams=0) as deployed:
        publisher = await deployed.publisher(connections=clients)
        raw_seqs, share = iter(range(RAW_SEQS, RAW_SEQS + publishes)), publishes // rounds
        api = raw = 0.0
        for _ in range(rounds):
            api += await timed(flat_out(share, clients, lambda n: publisher.publish(SHOW_SLUGS[n % 6], "x")))
            raw += await timed(flat_out(share, clients, lambda _: _insert(deployed.db.updates, next(raw_seqs))))
    api_rate, raw_rate = publishes / api, publishes / raw
    percent = api_rate / raw_rate * 100
    return Result(
        "ingest",
        {
            "publishes": publishes,
            "clients": clients,
            "publishes/s": round(api_rate),
            "raw insert_one/s": round(raw_rate),
            "% of raw": percent,
        },
        {"≥ 60 % of raw": percent >= 60},
    )


async def timed(work: Awaitable[object]) -> float:
    start = time.perf_counter()
    await work
    return time.perf_counter() - start


async def _insert(collection: AsyncCollection[dict[str, Any]], number: int) -> int:
    """What a publish stores, written straight to the same collection with its indexes: the ceiling ingest is
    measured against."""
    show, created_at = SHOW_SLUGS[number % 6], utcnow()
    await collection.insert_one({"_id": update_id(number, created_at), "seq": number, "show": show,
                                 "title": SHOWS[show], "text": "x", "announced": digest("x"), "author": "raw",
                                 "author_id": "raw", "created_at": created_at})  # fmt: skip
    return number


async def mixed(mongo_url: str, feeds: int = 1000, everything: int = 200, updates: int = 500) -> Result:
    async with deployment(mongo_url, "mixed") as deployed:
        follows = [[SHOW_SLUGS[number % 6]] for number in range(feeds)]
        opened = await followers(deployed, follows)
        watching_all = await followers(deployed, [[]] * everything, "/events/all")
        publisher = await deployed.publisher(connections=4)
        chosen = random.Random(6).choices(SHOW_SLUGS, k=updates)
        show_of: dict[int, str] = {}

        async def publish(number: int) -> int:
            seq = await publisher.publish(chosen[number], f"mixed {number}")
            show_of[seq] = chosen[number]
            return seq

        seqs = await flat_out(updates, 4, publish)
        by_show = {slug: [seq for seq in seqs if show_of[seq] == slug] for slug in SHOW_SLUGS}
        expected = [by_show[shows[0]] for shows in follows] + [seqs] * everything
        got = await received([*opened, *watching_all], expected, publisher)
        closed([*opened, *watching_all])
    return Result(
        "mixed",
        {
            "feeds": feeds,
            "all feeds": everything,
            "updates": updates,
            "deliveries": got.deliveries,
            "wrong": got.wrong,
            **got.misses(),
        },
        {"0 wrong, 0 lost, 0 dup": got.wrong == 0 and got.exact},
    )


SCENARIOS: dict[str, Scenario] = {
    "floor": floor,
    "fanout": fanout,
    "burst": burst,
    "scale": scale,
    "catch-up": catch_up,
    "ingest": ingest,
    "mixed": mixed,
}
