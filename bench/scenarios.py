"""What `make bench` measures: the machine's floor, then the scenarios, each against fresh processes. fanout,
sequential and scale run against nchan and then against Gossip with the same client and load, and report both with the
ratios; the others measure Gossip alone. Each returns one Result."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from bench import crowd as crowd_clients
from bench import nchan
from bench.cluster import Deployment, Setup, Side, deployment, stored_update
from bench.figures import Tally, all_arrived, tally
from bench.floor import floor
from bench.http import Publisher
from bench.progress import step
from bench.report import Figure, Result, ratio
from bench.served import Histogram
from bench.sse import Feed, feed_request, open_feeds
from bench.trips import round_trips
from shared.db import SHOWS, prepare
from shared.settings import RULES

Scenario = Callable[[Setup], Awaitable[Result]]
ARRIVAL_TIMEOUT = 60.0
SHOW_SLUGS = sorted(SHOWS)
RAW_SEQS = 10**9  # the raw inserts' seqs, far above the published ones
AIRS = datetime(2026, 12, 8, 20, 0, tzinfo=UTC)


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


async def received(feeds: Sequence[Feed], expected: Sequence[Sequence[int]], publisher: Publisher) -> Tally:
    """Waits (within a deadline) for every feed to hold what it should, then counts what each really got."""
    await all_arrived(feeds, [len(seqs) for seqs in expected], ARRIVAL_TIMEOUT)
    return tally(feeds, expected, publisher.sent)


def closed(feeds: Sequence[Feed]) -> None:
    for feed in feeds:
        feed.close()


@dataclass(frozen=True, slots=True)
class Run:
    """One system's run of a comparing scenario."""

    figures: dict[str, Figure]
    latencies: list[float]


SUMMED = {"lost", "dup"}  # over several rounds, every miss counts; every other figure is the rounds' median


def combined(runs: Sequence[Run]) -> Run:
    figures: dict[str, Figure] = {}
    for key in runs[0].figures:
        values = [run.figures[key] for run in runs]
        if key in SUMMED:
            figures[key] = sum(int(value) for value in values)
        elif all(isinstance(value, int) for value in values):
            figures[key] = round(statistics.median(int(value) for value in values))
        else:
            figures[key] = statistics.median(float(value) for value in values)
    return Run(figures, [latency for run in runs for latency in run.latencies])


async def side_by_side(
    setup: Setup, name: str, measure: Callable[[Side], Awaitable[Run]], at_most: dict[str, float],
    at_least: dict[str, float] | None = None, rounds: int = 1, servers: int = 1,
) -> Result:  # fmt: skip
    """nchan first (where the machine has it), then Gossip, each started fresh, with the same client and load, in
    `rounds` pairs: a figure is the median of its rounds, a ratio the median of the pairs' (so that one slow minute
    weighs on one pair only), and a target is met only if every pair meets it. The targets are ratios of Gossip's
    figure to nchan's: `at_most` and `at_least` name the figure and the limit. `servers`: nginx's workers and
    Gossip's stream processes."""
    peers: list[Run] = []
    ours: list[Run] = []
    for round_ in range(rounds):
        if rounds > 1:
            step(name, f"round {round_ + 1} of {rounds}")
        if setup.nginx is not None:
            async with nchan.running(setup.nginx, servers) as side:
                peers.append(await measure(side))
        async with deployment(setup.mongo_url, name, streams=servers) as deployed:
            ours.append(await measure(deployed))
    gossip = combined(ours)
    targets = {"0 lost, 0 dup": gossip.figures["lost"] == gossip.figures["dup"] == 0}
    ratios, latencies = {}, {"gossip": gossip.latencies}
    peer = combined(peers) if peers else None
    if peer is not None:
        latencies["nchan"] = peer.latencies
        limits = [(key, "≤", limit) for key, limit in at_most.items()]
        limits += [(key, "≥", limit) for key, limit in (at_least or {}).items()]
        each = " in each round" if rounds > 1 else ""
        for key, sign, limit in limits:
            paired = [ratio(o.figures[key], p.figures[key]) for o, p in zip(ours, peers, strict=True)]
            ratios[key] = statistics.median(paired)
            met = all(r <= limit if sign == "≤" else r >= limit for r in paired)
            targets[f"{key} {sign} {limit:g}× nchan's{each}"] = met
    return Result(name, gossip.figures, targets, peer.figures if peer else None, ratios, latencies)


async def opened(name: str, side: Side, feeds: int) -> list[Feed]:
    step(name, side.name, f"opening {feeds:,} feeds")
    return await side.followers(feeds)


def _timing(got: Tally, served: Histogram | None = None) -> dict[str, Figure]:
    """The client's latencies; beside them, where the side keeps one, the stream's own histogram over the same
    updates, as the dashboard reads it (bench/served.py)."""
    figures: dict[str, Figure] = {"p50 ms": got.percentile(0.5), "p99 ms": got.percentile(0.99)}
    if served is not None:
        figures |= {"/metrics p50 ms": served.quantile(0.5), "/metrics p99 ms": served.quantile(0.99)}
    return {**figures, **got.misses()}


async def served_since(side: Side, before: Histogram | None) -> Histogram | None:
    """What the side's stream observed since `before` was read."""
    after = await side.served()
    return None if after is None or before is None else after.since(before)


async def fanout(setup: Setup, feeds: int = 1000, updates: int = 200, rate: float = 50.0, rounds: int = 3) -> Result:
    """Also notes the CPU the process holding the feeds spends per delivery (all of it: for Gossip's stream, the
    change streams' polls and the hub's work too), and how many frames a socket write carried."""

    async def measure(side: Side) -> Run:
        listening = await opened("fanout", side, feeds)
        publisher = await side.publisher(connections=4)
        step("fanout", side.name, f"{updates} updates at {rate:g}/s")
        before, histogram = side.usage(), await side.served()
        seqs = await paced(updates, rate, lambda n: publisher.publish("flash", f"update {n}"))
        got = await received(listening, [seqs] * feeds, publisher)
        after = side.usage()
        closed(listening)
        deliveries = max(1, got.deliveries)
        figures = {
            **_timing(got, await served_since(side, histogram)),
            "CPU µs/delivery": (after.cpu - before.cpu) / deliveries * 1e6,
            "frames/write": deliveries / max(1, after.writes - before.writes),
        }
        return Run(figures, got.latencies)

    return await side_by_side(setup, "fanout", measure, {"p99 ms": 1.5, "CPU µs/delivery": 1.2}, rounds=rounds)


async def sequential(setup: Setup, feeds: int = 1000, updates: int = 1000, counted: int = 200) -> Result:
    """One publisher that sends its next update once the last is answered, as a script with curl does: bound by
    how fast a publish is answered. Beside it, Gossip's round trips to the database per publish (bench/trips.py),
    counted over `counted` publishes of their own."""

    async def measure(side: Side) -> Run:
        listening = await opened("sequential", side, feeds)
        publisher = await side.publisher()
        step("sequential", side.name, f"{updates} updates from one sequential publisher")
        histogram, start = await side.served(), time.perf_counter()
        seqs = await flat_out(updates, 1, lambda n: publisher.publish("flash", f"sequential {n}"))
        published = time.perf_counter() - start
        got = await received(listening, [seqs] * feeds, publisher)
        closed(listening)
        figures = {
            "deliveries/s": round(got.deliveries / (got.last_arrival - start)),
            "publishes/s": round(updates / published),
            "publish p50 ms": statistics.median(publisher.took) * 1000,
            **_timing(got, await served_since(side, histogram)),
        }
        return Run(figures, got.latencies)

    result = await side_by_side(setup, "sequential", measure, {}, {"deliveries/s": 0.8})
    step("sequential", "gossip", f"the database commands of {counted} publishes, counted")
    trips = await asyncio.to_thread(round_trips, setup.mongo_url, counted)
    by_name = ", ".join(f"{name} {times:.2f}" for name, times in trips.items())
    result.figures.update({"round trips/publish": sum(trips.values()), "by command": by_name})
    return result


async def scale(setup: Setup, feeds: int = 10_000, updates: int = 20, rate: float = 1.0) -> Result:
    async def measure(side: Side) -> Run:
        before = side.usage().rss
        listening = await opened("scale", side, feeds)
        per_feed_kb = (side.usage().rss - before) / feeds / 1024
        publisher = await side.publisher(connections=4)
        step("scale", side.name, f"{updates} updates at {rate:g}/s")
        histogram = await side.served()
        seqs = await paced(updates, rate, lambda n: publisher.publish("flash", f"update {n}"))
        got = await received(listening, [seqs] * feeds, publisher)
        closed(listening)
        figures = {
            "connected": len(listening),
            "KB/feed": per_feed_kb,
            **_timing(got, await served_since(side, histogram)),
        }
        return Run(figures, got.latencies)

    return await side_by_side(setup, "scale", measure, {"KB/feed": 1.0, "p99 ms": 2.0})


CROWD_SHOWS = {**SHOWS, **{f"show_{number}": f"Show {number}" for number in range(len(SHOWS) + 1, 21)}}


async def crowd(
    setup: Setup, feeds: int = 50_000, rate: float = 20.0, seconds: float = 10.0, per_user: int = 10
) -> Result:
    """50,000 feeds over three stream processes (and nchan's three workers), each following one of twenty shows,
    and updates published at `rate` a second over the twenty in turn: each feed gets one a second, as at scale.
    The load clients run in processes of their own (bench/crowd.py). A user has `per_user` feeds open (tabs and
    devices): the embedded server purges expired sessions on every read of `sessions`, by a scan of them all, so a
    feed per user would make opening them the database's scan of 50,000 sessions per batch of lookups."""
    slugs = list(CROWD_SHOWS)
    shows = [slugs[number // per_user % len(slugs)] for number in range(feeds)]
    updates = round(rate * seconds)

    async def measure(side: Side) -> Run:
        if isinstance(side, Deployment):
            await side.db.shows.insert_many([{"_id": slug, "title": title} for slug, title in CROWD_SHOWS.items()
                                             if slug not in SHOWS])  # fmt: skip
        step("crowd", side.name, f"opening {feeds:,} feeds over {crowd_clients.SERVERS} processes")
        before = side.usage().pss
        listening = await crowd_clients.crowd(await side.shares(shows, per_user))
        try:
            per_feed_kb = (side.usage().pss - before) / feeds / 1024
            publisher = await side.publisher(connections=4)
            step("crowd", side.name, f"{updates} updates at {rate:g}/s")
            used = side.usage()
            show_of: dict[int, str] = {}

            async def publish(number: int) -> int:
                show = slugs[number % len(slugs)]
                seq = await publisher.publish(show, f"update {number}")
                show_of[seq] = show
                return seq

            await paced(updates, rate, publish)
            step("crowd", side.name, "counting what the feeds got")
            got = await listening.count(publisher.sent, show_of)
            cpu = (side.usage().cpu - used.cpu) / max(1, got.deliveries) * 1e6
        finally:
            await crowd_clients.close(listening)
        figures = {"connected": feeds, "KB/feed": per_feed_kb, **_timing(got), "wrong": got.wrong,
                   "CPU µs/delivery": cpu}  # fmt: skip
        return Run(figures, got.latencies)

    return await side_by_side(setup, "crowd", measure, {"KB/feed": 1.0}, servers=crowd_clients.SERVERS)


async def catch_up(setup: Setup, feeds: int = 5000, updates: int = 50) -> Result:
    async with deployment(setup.mongo_url, "catchup") as deployed:
        step("catch-up", "gossip", f"opening {feeds:,} feeds")
        cookies = await deployed.sign_in([["flash"]] * feeds)
        listening = await open_feeds(deployed.stream_port, [feed_request("/events", cookie) for cookie in cookies])
        publisher = await deployed.publisher(connections=4)
        seen = await publisher.publish("flash", "everyone saw this one")
        await received(listening, [[seen]] * feeds, publisher)
        closed(listening)
        await asyncio.gather(*(feed.closed for feed in listening))
        missed = [await publisher.publish("flash", f"missed {n}") for n in range(updates)]
        step("catch-up", "gossip", f"{feeds:,} feeds come back for {updates} missed updates")
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


async def ingest(setup: Setup, publishes: int = 2000, clients: int = 8, rounds: int = 10) -> Result:
    """The API and raw inserts take turns, a tenth of the publishes at a time, so that the machine's drift
    (a checkpoint of the database's file, a neighbour's load) weighs on both alike."""
    async with deployment(setup.mongo_url, "ingest", streams=0) as deployed:
        step("ingest", "gossip", f"{publishes:,} publishes and as many raw inserts from {clients} clients, in turns")
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
        {"≥ 70 % of raw": percent >= 70},
    )


async def timed(work: Awaitable[object]) -> float:
    start = time.perf_counter()
    await work
    return time.perf_counter() - start


async def _insert(collection: AsyncCollection[dict[str, Any]], number: int) -> int:
    """What a publish stores, written straight to the same collection with its indexes: the ceiling ingest is
    measured against."""
    await collection.insert_one(stored_update(number, SHOW_SLUGS[number % 6], "x", "raw"))
    return number


async def mixed(setup: Setup, feeds: int = 1000, everything: int = 200, updates: int = 500) -> Result:
    async with deployment(setup.mongo_url, "mixed") as deployed:
        step("mixed", "gossip", f"{feeds:,} feeds over the six shows, {everything} on everything; {updates} updates")
        follows = [[SHOW_SLUGS[number % 6]] for number in range(feeds)]
        listening = await deployed.feeds(follows)
        watching_all = await deployed.feeds([[]] * everything, "/events/all")
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
        got = await received([*listening, *watching_all], expected, publisher)
        closed([*listening, *watching_all])
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


async def adoption(setup: Setup, documents: int = 5000) -> Result:
    """Another program's inserts into `updates` (no seq, as a script or a migration writes them), from a raw
    insert_one loop: how fast a feed hears of them, against how fast the same loop writes to `updates` documents the
    stream service passes over (marked rejected), in the same run. The rate into a copy of `updates` that nobody
    watches is shown beside: what watching a collection costs its writers, adoption or not."""
    async with deployment(setup.mongo_url, "adoption") as deployed:
        (listening,) = await deployed.feeds([[]], "/events/all")
        unwatched = deployed.db.client[f"{deployed.settings.mongo_db}_raw"]
        try:
            await prepare(unwatched)  # the same indexes as `updates`
            step("adoption", "gossip", f"{documents:,} raw inserts into a copy of updates that nobody watches")
            unwatched_time = await timed(_foreign_inserts(unwatched.updates, documents))
        finally:
            await deployed.db.client.drop_database(unwatched.name)
        step("adoption", "gossip", f"{documents:,} raw inserts into updates that the stream service passes over")
        raw = await timed(_foreign_inserts(deployed.db.updates, documents, {"rejected": "bench: passed over"}))
        step("adoption", "gossip", f"{documents:,} foreign inserts into updates, until the feed has them all")
        start = time.perf_counter()
        inserting = await timed(_foreign_inserts(deployed.db.updates, documents))
        await all_arrived([listening], [documents], ARRIVAL_TIMEOUT)
        got = tally([listening], [range(1, documents + 1)], {})
        closed([listening])
    raw_rate, notified_rate = documents / raw, documents / (got.last_arrival - start)
    return Result(
        "adoption",
        {
            "documents": documents,
            "unwatched insert_one/s": round(documents / unwatched_time),
            "raw insert_one/s": round(raw_rate),
            "foreign insert_one/s": round(documents / inserting),
            "notified/s": round(notified_rate),
            "% of raw": notified_rate / raw_rate * 100,
            **got.misses(),
        },
        {"≥ 50 % of raw": notified_rate >= raw_rate / 2, "0 lost, 0 dup": got.exact},
    )


async def _foreign_inserts(
    collection: AsyncCollection[dict[str, Any]], count: int, extra: dict[str, Any] | None = None
) -> None:
    """What another program writes: a show, a text and an author, one insert_one at a time."""
    for number in range(count):
        document = {"show": SHOW_SLUGS[number % 6], "text": f"imported {number}", "author": "import"}
        await collection.insert_one({**document, **(extra or {})})


def episode(number: int) -> dict[str, Any]:
    return {"show": "flash", "title": f"Episode {number}", "airs_at": AIRS}


async def watched(setup: Setup, documents: int = 5000, clients: int = 8) -> Result:
    """Another program imports episodes with insert_one from `clients` connections: first into a collection no rule
    watches (the raw rate), then into `episodes`, which gossip.toml's rule watches; notified is the import's start
    to the last of its updates on a follower's feed. The watched import's own rate says how much of the difference
    is the import slowed by the work it causes, and how much the notifications trailing it."""
    async with deployment(setup.mongo_url, "watched", rules=RULES) as deployed:
        step("watched", "gossip", f"{documents:,} raw inserts, then as many into a watched collection")
        (feed,) = await deployed.feeds([["flash"]])
        raw = await timed(flat_out(documents, clients, lambda n: _import(deployed.db.imported, n)))
        start = time.perf_counter()
        imported = await timed(flat_out(documents, clients, lambda n: _import(deployed.db.episodes, n)))
        await all_arrived([feed], [documents], ARRIVAL_TIMEOUT)
        got = tally([feed], [feed.seqs.tolist()], {})
        notified = (got.last_arrival - start) if got.deliveries else float("inf")
        closed([feed])
    raw_rate, notified_rate = documents / raw, got.deliveries / notified
    percent = notified_rate / raw_rate * 100
    return Result(
        "watched",
        {"documents": documents, "clients": clients, "raw insert_one/s": round(raw_rate),
         "watched import/s": round(documents / imported), "notified/s": round(notified_rate), "% of raw": percent,
         "notified": got.deliveries, "dup": got.duplicates},
        {"≥ 50 % of raw": percent >= 50, "all notified once": got.deliveries == documents and got.exact},
    )  # fmt: skip


async def _import(collection: AsyncCollection[dict[str, Any]], number: int) -> int:
    await collection.insert_one(episode(number))
    return number


SCENARIOS: dict[str, Scenario] = {
    "floor": floor,
    "fanout": fanout,
    "sequential": sequential,
    "scale": scale,
    "crowd": crowd,
    "catch-up": catch_up,
    "ingest": ingest,
    "mixed": mixed,
    "adoption": adoption,
    "watched": watched,
}
