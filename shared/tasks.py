"""Ending a service's background tasks at shutdown, when the database may have gone with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

log = logging.getLogger("gossip.tasks")

STOP_CHECK, STOP_TRIES = 0.1, 30  # cancelled again every STOP_CHECK seconds, up to STOP_TRIES times


async def stop(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancels until every task has ended. When the database has just gone, PyMongo can take a cancellation for the
    dropped connection and carry on (a retried write, a resumed change stream) into its 5 s server selection, and a
    loop that logs its failures and tries again would then never end: each task still running is cancelled again."""
    for _ in range(STOP_TRIES):
        if not (running := [task for task in tasks if task is not None and not task.done()]):
            return
        for task in running:
            task.cancel()
        await asyncio.wait(running, timeout=STOP_CHECK)
    log.warning("%d background tasks did not stop; leaving them", sum(not t.done() for t in tasks if t is not None))


async def _repeat(work: Callable[[], Awaitable[object]], every: float, stopping: asyncio.Event, what: str) -> None:
    while not stopping.is_set():
        try:
            await work()
        except Exception:  # the database may be away for a while: the next round catches up
            log.warning("%s failed; trying again in %g s", what, every, exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), every)


@contextlib.asynccontextmanager
async def unwound_within(seconds: float, what: str) -> AsyncIterator[contextlib.AsyncExitStack]:
    """An exit stack whose unwinding, once the body is done, is given `seconds`: whatever is still waiting then is
    cancelled, said in the log, and the unwinding goes on. For a service's shutdown, which must end within seconds
    whatever the database does; each step that talks to it is bounded on its own too (shared/db.py `farewell`)."""
    deadline = asyncio.timeout(None)
    try:
        async with deadline, contextlib.AsyncExitStack() as stack:
            try:
                yield stack
            finally:
                deadline.reschedule(asyncio.get_running_loop().time() + seconds)
    except TimeoutError:
        if not deadline.expired():
            raise
        log.warning("%s took more than %g s; what was still waiting was cancelled", what, seconds)


@contextlib.asynccontextmanager
async def repeating(work: Callable[[], Awaitable[object]], every: float, what: str) -> AsyncIterator[None]:
    """Runs `work` every `every` seconds while the context lasts, a failure logged and the next round run as usual.
    A flag ends it, not a cancellation alone: PyMongo can turn a cancellation into a connection error, which such a
    loop would take for one more failure, and go on for ever, holding up the end of the process."""
    stopping = asyncio.Event()
    task = asyncio.create_task(_repeat(work, every, stopping, what))
    try:
        yield
    finally:
        stopping.set()
        await stop(task)
