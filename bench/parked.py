"""What one parked feed holds in the stream process: `python -m bench.parked [FEEDS]` starts the stream service with
its allocations traced (shared/memory.py), opens FEEDS idle feeds (1,000 by default), and prints what the process
allocated for them, per feed, by file and by line: uvicorn's connection, the request's task and its middleware, the
feed's own objects, the hub's indexes. Resident memory per feed is the scale scenario's figure (bench/scenarios.py);
this says where it goes."""

from __future__ import annotations

import asyncio
import secrets
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench import new_event_loop
from bench.cluster import STREAM_OPTIONS, sign_in
from bench.memory import by_place
from bench.sse import feed_request, open_feeds
from dev.embedded import EmbeddedMongo
from dev.processes import ServiceProcess
from shared.db import connect, prepare
from shared.memory import SUFFIX
from shared.settings import Settings

EVERY = 10.0  # seconds between the service's snapshots: writing one holds its event loop up
SETTLE = 3.0  # seconds for the service's start-up allocations to settle before the first snapshot counts


def _written_after(folder: Path, moment: float) -> list[Path]:
    return sorted((path for path in folder.glob(f"*{SUFFIX}") if path.stat().st_mtime > moment), key=str)


async def _snapshot_after(folder: Path, moment: float, timeout: float = 60.0) -> Path:
    """The first snapshot the service wrote after `moment` (time.time())."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if written := await asyncio.to_thread(_written_after, folder, moment):
            return written[0]
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the service wrote no snapshot into {folder} within {timeout:g} s")


async def parked(mongo_url: str, feeds: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="gossip-parked-") as traces:
        folder = Path(traces)
        settings = Settings(secret_key=secrets.token_urlsafe(32), mongo_url=mongo_url,
                            mongo_db=f"bench_parked_{secrets.token_hex(4)}")  # fmt: skip
        client = connect(mongo_url)
        db = client[settings.mongo_db]
        await prepare(db)
        cookies = await sign_in(db, settings, [f"viewer{n}" for n in range(feeds)], [["flash"]] * feeds)
        stream = ServiceProcess("services.stream.app", settings, *STREAM_OPTIONS, MEMORY_TRACE=traces,
                                MEMORY_TRACE_EVERY=str(EVERY))  # fmt: skip
        await asyncio.to_thread(stream.start)
        try:
            await asyncio.sleep(SETTLE)
            before = await _snapshot_after(folder, time.time())
            opened = await open_feeds(stream.port, [feed_request("/events", cookie) for cookie in cookies])
            await asyncio.sleep(SETTLE)  # the feeds' histories sent, every sender parked
            after = await _snapshot_after(folder, time.time())
            old, new = tracemalloc.Snapshot.load(str(before)), tracemalloc.Snapshot.load(str(after))
            for feed in opened:
                feed.close()
        except BaseException:
            await asyncio.to_thread(stream.stop)
            print(stream.output()[-3000:])
            raise
        else:
            await asyncio.to_thread(stream.stop)
        finally:
            await client.drop_database(settings.mongo_db)
            await client.close()
    return by_place(old, new, feeds, "filename") + by_place(old, new, feeds, "lineno")


def main() -> None:
    feeds = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with (
        tempfile.TemporaryDirectory(prefix="gossip-parked-db-") as data,
        EmbeddedMongo(Path(data)) as mongo,
        asyncio.Runner(loop_factory=new_event_loop) as runner,
    ):
        lines = runner.run(parked(mongo.url, feeds))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
