"""What parked feeds cost the stream process. `python -m bench.parked [FEEDS]` opens FEEDS idle feeds (10,000 by
default, as the scale scenario does) and prints the resident memory they added, per feed: the scale scenario's
figure, on its own and with room for a busy machine (a generous wait for the feeds to open). `python -m bench.parked
FEEDS --trace` runs the service with its allocations traced (shared/memory.py) and prints what it allocated for the
feeds, per feed, by file and by line: uvicorn's connection, the request's task and its middleware, the feed's own
objects, the hub's indexes. Tracing slows every allocation: a few hundred feeds say where the memory goes."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import psutil

from bench import new_event_loop
from bench.cluster import STREAM_OPTIONS, sign_in
from bench.memory import by_place
from bench.sse import Feed, feed_request, open_feeds
from dev.embedded import EmbeddedMongo
from dev.processes import ServiceProcess
from shared.db import connect, prepare
from shared.memory import SUFFIX
from shared.settings import Settings

EVERY = 10.0  # seconds between the traced service's snapshots: writing one holds its event loop up
SETTLE = 3.0  # seconds for allocations to settle: the service's start-up before, the feeds' histories after
OPEN_TIMEOUT = 900.0  # seconds for all the feeds to be answered, on a machine other work keeps busy
START_TIMEOUT = 300.0  # seconds for the service to be ready, likewise
KiB = 1024


def _written_after(folder: Path, moment: float) -> list[Path]:
    return sorted((path for path in folder.glob(f"*{SUFFIX}") if path.stat().st_mtime > moment), key=str)


async def _snapshot_after(folder: Path, moment: float, timeout: float = 120.0) -> tracemalloc.Snapshot:
    """The first snapshot the service wrote after `moment` (time.time())."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if written := await asyncio.to_thread(_written_after, folder, moment):
            return tracemalloc.Snapshot.load(str(written[0]))
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the service wrote no snapshot into {folder} within {timeout:g} s")


@contextlib.asynccontextmanager
async def _stream(mongo_url: str, feeds: int, **env: str) -> AsyncIterator[tuple[ServiceProcess, list[bytes]]]:
    """A stream service on a database of its own, and the requests of `feeds` signed-in users' feeds."""
    settings = Settings(secret_key=secrets.token_urlsafe(32), mongo_url=mongo_url,
                        mongo_db=f"bench_parked_{secrets.token_hex(4)}")  # fmt: skip
    client = connect(mongo_url)
    db = client[settings.mongo_db]
    try:
        await prepare(db)
        cookies = await sign_in(db, settings, [f"viewer{n}" for n in range(feeds)], [["flash"]] * feeds)
        stream = ServiceProcess("services.stream.app", settings, *STREAM_OPTIONS, **env)
        await asyncio.to_thread(stream.start, START_TIMEOUT)
        try:
            yield stream, [feed_request("/events", cookie) for cookie in cookies]
        finally:
            await asyncio.to_thread(stream.stop)
    finally:
        await client.drop_database(settings.mongo_db)
        await client.close()


def _closed(opened: list[Feed]) -> None:
    for feed in opened:
        feed.close()


async def resident(mongo_url: str, feeds: int) -> list[str]:
    async with _stream(mongo_url, feeds) as (stream, requests):
        assert stream.process is not None
        process = psutil.Process(stream.process.pid)
        await asyncio.sleep(SETTLE)
        before, started = process.memory_info().rss, time.monotonic()
        opened = await open_feeds(stream.port, requests, timeout=OPEN_TIMEOUT)
        took = time.monotonic() - started
        await asyncio.sleep(SETTLE)
        grown = process.memory_info().rss - before
        _closed(opened)
    return [
        f"{feeds:,} parked feeds: {grown / feeds / KiB:.1f} KB of resident memory per feed (opened in {took:.0f} s)"
    ]


async def traced(mongo_url: str, feeds: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="gossip-parked-") as traces:
        folder = Path(traces)
        async with _stream(mongo_url, feeds, MEMORY_TRACE=traces, MEMORY_TRACE_EVERY=str(EVERY)) as (stream, requests):
            await asyncio.sleep(SETTLE)
            old = await _snapshot_after(folder, time.time())
            opened = await open_feeds(stream.port, requests, timeout=OPEN_TIMEOUT)
            await asyncio.sleep(SETTLE)
            new = await _snapshot_after(folder, time.time())
            _closed(opened)
    return by_place(old, new, feeds, "filename") + by_place(old, new, feeds, "lineno")


def main() -> None:
    arguments = [argument for argument in sys.argv[1:] if argument != "--trace"]
    feeds = int(arguments[0]) if arguments else 10_000
    measure = traced if "--trace" in sys.argv[1:] else resident
    with (
        tempfile.TemporaryDirectory(prefix="gossip-parked-db-") as data,
        EmbeddedMongo(Path(data)) as mongo,
        asyncio.Runner(loop_factory=new_event_loop) as runner,
    ):
        lines = runner.run(measure(mongo.url, feeds))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
