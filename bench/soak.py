"""`make soak` (`python -m bench soak`): Gossip as `make run` serves it (one process, all three services), for many
minutes under churn, to show that it can run for weeks: its memory flat and its publishes as quick at the end as
after the warm-up.

- Clients: each a user following one to three shows, with a feed it holds for 3 to 20 s, then drops and opens
  again with Last-Event-ID, as a browser on a flaky network does. Each binds to a loopback address of its own
  (127.50.x.y), as browsers come from many.
- Publishers: paced to the rate asked, each waiting for its last answer before its next (as a script does), so a
  slower server shows as a lower rate. The soak's server allows any number of publishes per author
  (PUBLISHES_PER_AUTHOR); every other limit is the default.
- A login churn: a login every few seconds, a feed opened with that session, then a logout, which must end it.

Every minute a line: the services' and the database's memory and CPU, the publishes' rate and p50 latency, the
deliveries. At the end every client comes back once more and must catch up with the newest update of its shows;
then the gaps, duplicates and 5xx are counted, and the run judged after its warm-up. With `--trace` the service
traces its allocations (shared/memory.py) and the growth after the warm-up is printed, biggest first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import random
import statistics
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.abuse import PASSWORD, Served, address, serving
from bench.cluster import UNLIMITED, Refused, bearer_post, sign_in, token_of
from bench.http import Connection, Publisher, exchange, json_request, request
from bench.memory import grown
from bench.progress import step
from bench.report import Figure, Result
from bench.scenarios import SHOW_SLUGS
from bench.sse import Feed, feed_request, open_feed

MiB = 1 << 20
ANSWER_WAIT = 60.0  # seconds any one answer (a feed's head, a login, a logout) is waited for
CLOSE_WAIT = 10.0  # seconds a feed the client closed, or whose session was revoked, may take to end
CATCH_UP_WAIT = 120.0  # seconds every client has, at the end, to catch up
LOGIN_USERS = 5  # accounts the login churn takes turns with (registrations per address are limited)
CLIENT_BLOCK, LOGIN_BLOCK = 50, 60  # 127.<block>.x.y: the clients' addresses and the login churn's


@dataclass(frozen=True, slots=True)
class Plan:
    clients: int = 1000
    minutes: float = 20.0
    warmup: float = 5.0  # minutes before the judging starts
    publish_rate: float = 10.0  # publishes a second, in all
    publishers: int = 2  # each its own connection, sending its next once the last is answered
    login_every: float = 2.0  # seconds between logins of the churn
    hold: tuple[float, float] = (3.0, 20.0)  # seconds a client holds a feed before it reconnects
    sample_every: float = 60.0
    trace: bool = False
    write: bool = True  # BENCHMARKS.md and the chart

    def shown(self) -> str:
        return (
            f"{self.clients:,} clients reconnecting every {self.hold[0]:g}–{self.hold[1]:g} s, {self.publish_rate:g} "
            f"publishes/s from {self.publishers} publishers, a login and logout every {self.login_every:g} s, "
            f"{self.minutes:g} minutes of which {self.warmup:g} of warm-up"
        )


@dataclass(slots=True)
class Client:
    """A user with one feed at a time; `seqs` is every update its feeds brought, in the order they came."""

    cookie: str
    shows: frozenset[str]
    address: str
    seqs: array[int] = field(default_factory=lambda: array("q"))
    last: int = 0  # the newest seq received: its Last-Event-ID

    def took(self, feed: Feed) -> None:
        got = feed.seqs
        self.seqs.extend(got)
        self.last = max(self.last, max(got, default=0))


@dataclass(slots=True)
class Published:
    seq: int
    show: str
    done: float  # time.perf_counter() when answered
    latency: float  # seconds


@dataclass
class Tally:
    """Everything the load saw, shared by its tasks (one event loop: no locks)."""

    started: float = field(default_factory=time.perf_counter)
    statuses: Counter[int] = field(default_factory=Counter)  # of every answer: feeds, publishes, logins, logouts
    errors: Counter[str] = field(default_factory=Counter)  # no answer at all, by kind
    published: list[Published] = field(default_factory=list)
    live: set[Feed] = field(default_factory=set)
    delivered: int = 0  # updates brought by feeds already closed
    connections: int = 0
    logins: int = 0
    revoked_late: int = 0  # feeds a logout did not end within CLOSE_WAIT
    hashing: asyncio.Lock = field(default_factory=asyncio.Lock)  # held by a login under way

    def deliveries(self) -> int:
        return self.delivered + sum(feed.received for feed in self.live)

    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)


@dataclass(frozen=True, slots=True)
class Sample:
    minute: float
    services_mib: float
    services_cpu: float  # percent of one core, since the last sample
    database_mib: float
    database_cpu: float
    publishes: int  # since the last sample
    rate: float  # publishes a second, since the last sample
    p50_ms: float
    deliveries: int  # since the last sample
    feeds: int  # open now

    def line(self) -> str:
        return (
            f"[soak {self.minute:5.1f} min] services {self.services_mib:6.1f} MiB {self.services_cpu:4.0f} % CPU | "
            f"database {self.database_mib:6.1f} MiB {self.database_cpu:4.0f} % CPU | publishes {self.rate:5.2f}/s "
            f"p50 {self.p50_ms:6.1f} ms | deliveries {self.deliveries:,} | open feeds {self.feeds:,}"
        )


class Watched:
    """A process and its children (the embedded server may fork), for memory and CPU."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self._cpu = self._spent()

    def _all(self) -> list[psutil.Process]:
        return [self.process, *self.process.children(recursive=True)]

    def _spent(self) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in self._all())

    def rss_mib(self) -> float:
        return sum(p.memory_info().rss for p in self._all()) / MiB

    def cpu_percent(self, seconds: float) -> float:
        """Of one core, over the last `seconds` (since the last call)."""
        spent = self._spent()
        used, self._cpu = spent - self._cpu, spent
        return used / seconds * 100 if seconds > 0 else 0.0


async def _until(stop: asyncio.Event, seconds: float) -> None:
    """Sleeps `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))


async def _answered(port: int, request: bytes, address: str, tally: Tally) -> Feed | None:
    """A feed that answered, whatever its status (counted); None when the connection failed before any answer."""
    try:
        feed = await open_feed(port, request, address, ANSWER_WAIT)
    except (OSError, TimeoutError) as error:
        tally.errors[f"feed: {type(error).__name__}"] += 1
        return None
    tally.statuses[feed.status] += 1
    return feed


async def _ended(feed: Feed) -> None:
    """Closes the feed and waits, at most CLOSE_WAIT, for the connection to end."""
    feed.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(feed.closed), CLOSE_WAIT)


async def _session(
    port: int, tally: Tally, client: Client, hold: tuple[float, float], wanted: int | None = None
) -> None:
    """One feed of the client's: held for `hold` seconds (from, to; or, with `wanted`, until it has that many
    updates), then left."""
    request = feed_request("/events", client.cookie, client.last)
    feed = await _answered(port, request, client.address, tally)
    if feed is None or feed.status != 200:
        await asyncio.sleep(1.0)  # refused or failed: come back a moment later, as a browser does
        return
    tally.connections += 1
    tally.live.add(feed)
    arrived: Awaitable[object] = feed.ended if wanted is None else feed.holding(wanted)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(arrived), random.uniform(*hold) if wanted is None else CATCH_UP_WAIT)
    await _ended(feed)
    tally.live.discard(feed)
    tally.delivered += feed.received
    client.took(feed)


async def _churning(port: int, tally: Tally, client: Client, hold: tuple[float, float], stop: asyncio.Event,
                    limit: int) -> None:  # fmt: skip
    """Feeds one after the other until `stop`, at most `limit` of them."""
    await _until(stop, random.uniform(0, hold[0]))  # the clients' first feeds spread over a few seconds
    for _ in range(limit):
        if stop.is_set():
            return
        await _session(port, tally, client, hold)


async def _publishing(publisher: Publisher, tally: Tally, rate: float, stop: asyncio.Event, limit: int) -> None:
    """At `rate` a second while the server keeps up; a late answer is not made up for by a burst after it."""
    due = time.perf_counter()
    for number in range(limit):
        await _until(stop, due - time.perf_counter())
        if stop.is_set():
            return
        show, started = random.choice(SHOW_SLUGS), time.perf_counter()
        try:
            seq = await publisher.publish(show, f"soak {number}")
        except Refused as refused:
            tally.statuses[refused.status] += 1
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
            tally.errors[f"publish: {type(error).__name__}"] += 1
        else:
            done = time.perf_counter()
            tally.statuses[201] += 1
            tally.published.append(Published(seq, show, done, done - started))
        due = max(due + 1 / rate, time.perf_counter())


async def _logging_in(served: Served, tally: Tally, names: Sequence[str], every: float, stop: asyncio.Event,
                      limit: int) -> None:  # fmt: skip
    """A login, a feed on that session, a logout: the feed must end with it. Every `every` seconds while the server
    keeps up (a login's hash takes a while); a late one is not made up for."""
    due = time.perf_counter()
    for number in range(limit):
        await _until(stop, due - time.perf_counter())
        if stop.is_set():
            return
        due = max(due + every, time.perf_counter())
        body = {"username": names[number % len(names)], "password": PASSWORD}
        where = address(LOGIN_BLOCK, number % 250)
        try:
            async with tally.hashing:
                answer = await exchange(served.port, json_request("POST", "/api/auth/login", body), where, ANSWER_WAIT)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
            tally.errors[f"login: {type(error).__name__}"] += 1
            continue
        tally.statuses[answer.status] += 1
        if answer.status != 200:
            continue
        tally.logins += 1
        cookie = answer.headers["set-cookie"].split(";")[0].split("=", 1)[1]
        feed = await _answered(served.port, feed_request("/events", cookie), where, tally)
        logout = json_request("POST", "/api/auth/logout", {}, {"cookie": f"gossip_session={cookie}"})
        try:
            tally.statuses[(await exchange(served.port, logout, where, ANSWER_WAIT)).status] += 1
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
            tally.errors[f"logout: {type(error).__name__}"] += 1
        if feed is not None and feed.status == 200:
            try:
                await asyncio.wait_for(asyncio.shield(feed.ended), CLOSE_WAIT)
            except TimeoutError:
                tally.revoked_late += 1
            await _ended(feed)


async def _sampling(plan: Plan, tally: Tally, services: Watched, database: Watched | None,
                    samples: list[Sample]) -> None:  # fmt: skip
    """A sample and its line every `sample_every` seconds of the run, the last at its end. Due on a schedule from
    the start: a sample that waits for a hash to end does not put off the ones after it, nor the last past the end."""
    last, seen, delivered = tally.started, 0, 0
    for number in range(1, int(plan.minutes * 60 / plan.sample_every) + 1):
        await asyncio.sleep(max(0.0, tally.started + number * plan.sample_every - time.perf_counter()))
        async with tally.hashing:  # a login's hash holds 64 MiB while it runs (services/auth/passwords.py): no growth
            services_mib = services.rss_mib()
        now = time.perf_counter()
        fresh, seen = tally.published[seen:], len(tally.published)
        deliveries = tally.deliveries()
        sample = Sample(
            (now - tally.started) / 60, services_mib, services.cpu_percent(now - last),
            database.rss_mib() if database else 0.0, database.cpu_percent(now - last) if database else 0.0,
            len(fresh), len(fresh) / (now - last), _p50(p.latency for p in fresh),
            deliveries - delivered, len(tally.live),
        )  # fmt: skip
        delivered, last = deliveries, now
        samples.append(sample)
        print(sample.line(), flush=True)


def _p50(latencies: Iterable[float]) -> float:
    values = list(latencies)
    return statistics.median(values) * 1000 if values else float("nan")


@dataclass(frozen=True, slots=True)
class Checked:
    """What every client got, against what was published for its shows."""

    behind: int  # clients without the newest update of their shows
    gaps: int  # updates a client should have had and never got
    duplicates: int
    out_of_order: int


def checked(clients: Sequence[Client], published: Sequence[Published]) -> Checked:
    by_show: dict[str, list[int]] = {slug: [] for slug in SHOW_SLUGS}
    for update in published:
        by_show[update.show].append(update.seq)
    behind = gaps = duplicates = out_of_order = 0
    for client in clients:
        wanted = {seq for show in client.shows for seq in by_show[show]}
        got = client.seqs.tolist()
        unique = set(got)
        behind += bool(wanted) and client.last < max(wanted)
        gaps += len(wanted - unique)
        duplicates += len(got) - len(unique)
        out_of_order += sum(1 for a, b in itertools.pairwise(got) if b < a)
    return Checked(behind, gaps, duplicates, out_of_order)


def slope(samples: Sequence[Sample]) -> float:
    """MiB a minute: the least-squares line through the services' memory."""
    if len(samples) < 2:
        return 0.0
    return statistics.linear_regression([s.minute for s in samples], [s.services_mib for s in samples]).slope


def thirds(published: Sequence[Published], start: float, end: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """(rate, p50 ms) of the first and the last third of [start, end] (time.perf_counter())."""
    third = (end - start) / 3

    def of(low: float, high: float) -> tuple[float, float]:
        inside = [p for p in published if low <= p.done < high]
        return len(inside) / third if third > 0 else 0.0, _p50(p.latency for p in inside)

    return of(start, start + third), of(end - third, end)


FULL_COLLECTIONS = 'python_gc_collections_total{generation="2"}'


async def full_collections(port: int) -> int:
    """How many full collections the service's garbage collector has run (prometheus-client's own metric): a cycle
    that reached the oldest generation waits for one."""
    answer = await exchange(port, request("GET", "/metrics"), timeout=ANSWER_WAIT)
    lines = answer.body.decode().splitlines()
    return next(int(float(line.split()[-1])) for line in lines if line.startswith(FULL_COLLECTIONS + " "))


def judged(plan: Plan, samples: Sequence[Sample], tally: Tally, check: Checked, end: float) -> Result:
    after = [s for s in samples if s.minute >= plan.warmup - 1e-9]
    warm = after[0] if after else samples[-1]
    last = samples[-1]
    (rate_first, p50_first), (rate_last, p50_last) = thirds(tally.published, tally.started + plan.warmup * 60, end)
    errors5xx, failed = tally.server_errors(), sum(tally.errors.values())
    figures: dict[str, Figure] = {
        "clients": plan.clients, "minutes": plan.minutes, "warm-up RSS MiB": warm.services_mib,
        "end RSS MiB": last.services_mib, "RSS MiB/min": slope(after),
        "database RSS MiB": last.database_mib, "rate first/last": f"{rate_first:.2f}/{rate_last:.2f}",
        "p50 ms first/last": f"{p50_first:.1f}/{p50_last:.1f}", "publishes": len(tally.published),
        "deliveries": tally.deliveries(), "feeds opened": tally.connections, "logins": tally.logins,
        "feeds a logout left open": tally.revoked_late,
        "behind": check.behind, "gaps": check.gaps, "dup": check.duplicates, "5xx": errors5xx,
        "unanswered": failed,
    }  # fmt: skip
    bound = warm.services_mib * 1.1 + 20
    targets = {
        f"RSS at the end ≤ {bound:.0f} MiB (warm-up's + 10 % + 20 MiB)": last.services_mib <= bound,
        "publish rate of the last third ≥ 90 % of the first's": rate_last >= 0.9 * rate_first,
        "publish p50 of the last third ≤ 110 % of the first's": p50_last <= 1.1 * p50_first,
        "0 behind, 0 gaps, 0 5xx": check.behind == check.gaps == errors5xx == 0,
    }
    return Result("soak", figures, targets)


async def _bounded(tasks: Sequence[asyncio.Task[None]], timeout: float) -> None:
    """Waits for the tasks, cancelling those still running after `timeout`."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class Run:
    result: Result
    samples: list[Sample]
    growth: list[str]


async def soak(mongo_url: str, mongo_pid: int | None, plan: Plan) -> Run:
    with tempfile.TemporaryDirectory(prefix="gossip-soak-trace-") as traces:
        tracing = {"MEMORY_TRACE": traces, "MEMORY_TRACE_EVERY": str(plan.sample_every)} if plan.trace else {}
        async with serving(mongo_url, **UNLIMITED, **tracing) as served:
            run = await _run(served, mongo_pid, plan)
        if plan.trace:
            run.growth = grown(Path(traces), plan.warmup * 60)
    return run


async def _run(served: Served, mongo_pid: int | None, plan: Plan) -> Run:
    step("soak", f"signing in {plan.clients:,} clients")
    rng = random.Random(28)
    follows = [rng.sample(SHOW_SLUGS, rng.randint(1, 3)) for _ in range(plan.clients)]
    cookies = await sign_in(served.db, served.settings, [f"soaker{n}" for n in range(plan.clients)], follows)
    clients = [
        Client(c, frozenset(f), address(CLIENT_BLOCK, n)) for n, (c, f) in enumerate(zip(cookies, follows, strict=True))
    ]
    names = [f"churner{n}" for n in range(LOGIN_USERS)]
    for name in names:
        await served.register(name, LOGIN_BLOCK + 1)
    token = await token_of(served.db, served.settings, "soak-publisher")
    connections = [await Connection.open(served.port) for _ in range(plan.publishers)]
    publisher = Publisher(connections, bearer_post(token))
    services = Watched(served.process.process.pid if served.process.process else 0)
    database = Watched(mongo_pid) if mongo_pid else None
    tally, stop, samples = Tally(), asyncio.Event(), list[Sample]()
    seconds = plan.minutes * 60
    most = int(seconds / plan.hold[0]) + 2  # any loop's bound: more than it can do in the time
    step("soak", plan.shown())
    tasks = [
        *(asyncio.create_task(_churning(served.port, tally, client, plan.hold, stop, most)) for client in clients),
        *(asyncio.create_task(_publishing(publisher, tally, plan.publish_rate / plan.publishers, stop,
                                          int(seconds * plan.publish_rate) + 1)) for _ in range(plan.publishers)),
        asyncio.create_task(_logging_in(served, tally, names, plan.login_every, stop, int(seconds / plan.login_every))),
    ]  # fmt: skip
    sampling = asyncio.create_task(_sampling(plan, tally, services, database, samples))
    await _until(asyncio.Event(), seconds)
    await _bounded([sampling], ANSWER_WAIT)  # the last sample, due now, however long a hash holds it up
    end = time.perf_counter()
    stop.set()
    await _bounded(tasks, ANSWER_WAIT + CLOSE_WAIT)
    await publisher.close()
    step("soak", "every client comes back for what it has not had")
    wanted = {id(c): [p.seq for p in tally.published if p.show in c.shows and p.seq > c.last] for c in clients}
    gate = asyncio.Semaphore(500)

    async def back(client: Client) -> None:
        if wanted[id(client)]:
            async with gate:
                await _session(served.port, tally, client, plan.hold, len(wanted[id(client)]))

    await _bounded([asyncio.create_task(back(client)) for client in clients], CATCH_UP_WAIT + ANSWER_WAIT)
    result = judged(plan, samples, tally, checked(clients, tally.published), end)
    result.figures["full GCs"] = await full_collections(served.port)
    return Run(result, samples, [])


def plan_of(arguments: Sequence[str]) -> Plan:
    """`make soak` passes SOAK_CLIENTS, SOAK_MINUTES, ... from make's variables (or the environment) as these."""
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__.split("\n\n")[0])
    defaults = Plan()
    parser.add_argument("--clients", type=int, default=defaults.clients)
    parser.add_argument("--minutes", type=float, default=defaults.minutes)
    parser.add_argument("--warmup", type=float, default=defaults.warmup, help="minutes")
    parser.add_argument("--publish-rate", type=float, default=defaults.publish_rate, help="publishes a second")
    parser.add_argument("--publishers", type=int, default=defaults.publishers)
    parser.add_argument("--login-every", type=float, default=defaults.login_every, help="seconds")
    parser.add_argument("--sample-every", type=float, default=defaults.sample_every, help="seconds")
    parser.add_argument("--trace", action="store_true", help="trace the service's allocations (slow)")
    parser.add_argument("--no-write", dest="write", action="store_false", help="leave BENCHMARKS.md as it is")
    given = parser.parse_args(arguments)
    if given.warmup >= given.minutes:
        parser.error("the warm-up must be shorter than the run")
    return Plan(given.clients, given.minutes, given.warmup, given.publish_rate, given.publishers, given.login_every,
                defaults.hold, given.sample_every, given.trace, given.write)  # fmt: skip
