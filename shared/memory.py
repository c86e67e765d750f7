"""A debug hook for finding what grows: with MEMORY_TRACE naming a folder, the process traces its allocations
(tracemalloc) and writes a snapshot there every MEMORY_TRACE_EVERY seconds, which `python -m bench soak --trace`
(or anyone, with tracemalloc.Snapshot.load) compares. Off by default: tracing doubles what allocations cost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

log = logging.getLogger("gossip.memory")

FRAMES = 10  # of each allocation's traceback: deep enough to reach the caller that keeps what grows
SUFFIX = ".snapshot"


def write_snapshot(folder: Path, elapsed: float) -> Path:
    """The traced allocations now, less tracemalloc's own, named by the seconds since tracing began (so that they
    sort in time). Written aside and renamed, so a reader never loads half a file."""
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    path = folder / f"{round(elapsed):07d}{SUFFIX}"
    partial = path.with_suffix(".partial")
    snapshot.dump(str(partial))
    partial.rename(path)
    return path


@contextlib.asynccontextmanager
async def traced(folder: Path | None, every: float) -> AsyncIterator[None]:
    """Traces for as long as the service lives, when `folder` is given; does nothing otherwise."""
    if folder is None:
        yield
        return
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    tracemalloc.start(FRAMES)
    started = time.monotonic()
    log.warning("tracing memory allocations into %s every %g s: a debugging aid, slow", folder, every)

    async def snapshots() -> None:
        while True:
            await asyncio.sleep(every)
            write_snapshot(folder, time.monotonic() - started)

    task = asyncio.create_task(snapshots())
    try:
        yield
    finally:
        task.cancel()
        tracemalloc.stop()
