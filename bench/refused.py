"""`python -m bench.refused [COUNT]`: what a refused feed open costs. For each way `GET /events` is refused, COUNT
opens (2,000 unless told), a few at a time, each on a connection of its own from an address of its own block, as
`make abuse` sends them; then the CPU seconds the serving process and the embedded database spent on them, per
open. CPU time, not latency: the figures hold on a machine shared with other work.

Two servers, each on the embedded database: one with limits small enough to reach (FEEDS_PER_USER 2, MAX_FEEDS 4)
and opens unlimited, for the refusals of who is calling and of the hub; one whose opening limit (FEED_OPENS_PER_USER)
is reached first. No feed limit counts per client address: the addresses only keep each kind's clients apart.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from asyncio import Runner
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench import new_event_loop
from bench.abuse import Served, address, counted, serving
from bench.cluster import sign_in
from bench.http import exchange, request
from bench.sse import Feed, feed_request, open_feeds
from dev.embedded import EmbeddedMongo
from shared.auth import session_cookie

AT_ONCE = 8  # opens in flight at a time: enough to keep the server busy, few enough that no queue builds
DEADLINE = 300.0  # seconds for one kind's opens, at most


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    raw: bytes  # the request, the same each time
    status: int  # what each must answer


def cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def refused(served: Served, database: psutil.Process, kind: Kind, block: int, count: int) -> str:
    """`count` opens of one kind; a line of its figures: ms of CPU per open, the server's and the database's."""
    assert served.process.process is not None
    server, gate, answers = psutil.Process(served.process.process.pid), asyncio.Semaphore(AT_ONCE), Counter[int]()

    async def one(number: int) -> None:
        async with gate:
            answers[(await exchange(served.port, kind.raw, address(block, number % 5000), timeout=30)).status] += 1

    before, db_before, start = cpu(server), cpu(database), time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(count))), DEADLINE)
    took = time.monotonic() - start
    spent, db_spent = (cpu(server) - before) / count * 1000, (cpu(database) - db_before) / count * 1000
    met = "met" if answers == Counter({kind.status: count}) else "NOT met"
    return (f"{kind.name:<14} opens={count} answers={counted(answers)} server ms/open={spent:.2f} "
            f"database ms/open={db_spent:.2f} s={took:.1f}  [all {kind.status}: {met}]")  # fmt: skip


async def held(served: Served, names: list[str], each: int) -> tuple[list[str], list[Feed]]:
    """Users signed in, each holding `each` open feeds."""
    cookies = await sign_in(served.db, served.settings, names, [["flash"]] * len(names))
    feeds = await open_feeds(served.port, [feed_request("/events", c) for c in cookies for _ in range(each)])
    assert all(feed.status == 200 for feed in feeds), [feed.status for feed in feeds]
    return cookies, feeds


def events(cookie: str | None, path: str = "/events", **headers: str) -> bytes:
    own = {"accept": "text/event-stream", **({"cookie": f"gossip_session={cookie}"} if cookie else {}), **headers}
    return request("GET", path, headers=own)


async def hub_and_callers(mongo_url: str, database: psutil.Process, count: int) -> list[str]:
    limits = {"FEEDS_PER_USER": "2", "MAX_FEEDS": "4", "FEED_OPENS_PER_USER": "100000000"}
    async with serving(mongo_url, **limits) as served:
        (caller,) = await sign_in(served.db, served.settings, ["caller"], [["flash"]])
        unknown = session_cookie(served.settings, "a-session-that-was-never-stored-or-has-ended")
        kinds = [
            Kind("no cookie", events(None), 401),
            Kind("forged cookie", events("not-a-signed-session"), 401),
            Kind("ended session", events(unknown), 401),
            Kind("other user", events(caller, "/events?user=someone"), 403),
            Kind("Last-Event-ID", events(caller, **{"last-event-id": "abc"}), 422),
            Kind("after", events(caller, "/events?after=-1x"), 422),
        ]
        lines = [await refused(served, database, kind, 60 + n, count) for n, kind in enumerate(kinds)]
        (full,), feeds = await held(served, ["full"], 2)
        lines.append(await refused(served, database, Kind("feeds per user", events(full), 429), 70, count))
        _, more = await held(served, ["other"], 2)
        (late,) = await sign_in(served.db, served.settings, ["late"], [["flash"]])
        lines.append(await refused(served, database, Kind("max feeds", events(late), 503), 71, count))
        for feed in [*feeds, *more]:
            feed.close()
        return lines


async def opening(mongo_url: str, database: psutil.Process, count: int) -> list[str]:
    async with serving(mongo_url, FEED_OPENS_PER_USER="1", FEED_OPEN_WINDOW="3600") as served:
        (fast,), feeds = await held(served, ["fast"], 1)  # the bucket is empty now
        line = await refused(served, database, Kind("opening rate", events(fast), 429), 72, count)
        for feed in feeds:
            feed.close()
        return [line]


async def measure(mongo_url: str, database_pid: int, count: int) -> list[str]:
    database = psutil.Process(database_pid)
    return [*await hub_and_callers(mongo_url, database, count), *await opening(mongo_url, database, count)]


def main() -> None:
    count = int(sys.argv[1]) if sys.argv[1:] else 2000
    with (
        tempfile.TemporaryDirectory(prefix="gossip-refused-") as data,
        EmbeddedMongo(Path(data)) as mongo,
        Runner(loop_factory=new_event_loop) as runner,
    ):
        assert mongo.process is not None
        for line in runner.run(measure(mongo.url, mongo.process.pid, count)):
            print(line, flush=True)


if __name__ == "__main__":
    main()
