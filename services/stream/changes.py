"""Change streams kept open for as long as the service runs: each reopened after a failure (its `on_open` then
catches up on what it missed), a change it cannot use logged and skipped, and all of them stopped together."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bson import Timestamp
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import ConnectionFailure

from services.stream.metrics import CHANGE_LAG, RESTARTS, SKIPPED
from shared import tasks
from shared.db import Database

log = logging.getLogger("gossip.stream.changes")

Change = dict[str, Any]
RETRY_DELAY = 0.5  # between attempts to reopen a failed change stream
BUSY = 1.0  # seconds after a change during which a stream polls at its shorter pause
LOOKUP = {"full_document": "updateLookup"}  # the embedded server's update events say nothing of what changed


# Embedded-server workaround: its documentKey gives an integer _id as a string.
def change_id(change: dict[str, Any]) -> Any:
    """The changed document's _id, from documentKey as MongoDB gives it. The embedded server gives an integer _id
    there as a string (and an ObjectId in fullDocument in its private encoding): when fullDocument has the integer
    that string spells, the integer is the _id."""
    key = change["documentKey"]["_id"]
    full = (change.get("fullDocument") or {}).get("_id")
    if isinstance(key, str) and type(full) is int and str(full) == key:
        return full
    return key


# Embedded-server workaround: its resume tokens do not survive its restart.
SAME_START = 1000  # ms: one server process's start, worked out from two of its answers, differs by a few at most


async def token_epoch(db: Database) -> str | None:
    """What a stored resume token is good for. The embedded server forgets its tokens when it restarts (and resumes
    after a forgotten one without an error, delivering nothing): a token is kept with the server process that gave
    it, and one from another process is lost history. That process is its host, its pid and when it started
    (`host:pid@ms`, milliseconds since 1970 UTC): a pid alone comes back, in a container as the same one at every
    start. None on MongoDB, whose tokens outlive restarts and which answers ChangeStreamHistoryLost when one has left
    the oplog."""
    status = await db.command("buildInfo")
    if status.get("process") != "nx_27017":
        return None
    started = round(status["localTime"].timestamp() * 1000) - status["uptimeMillis"]
    return f"{status['host']}:{status['pid']}@{started}"


def _process(epoch: str) -> tuple[str, str, int | None]:
    """An epoch's host, pid and start; no start in the format kept before it had one (`host:pid`)."""
    process, _, started = epoch.partition("@")
    host, _, pid = process.rpartition(":")
    return host, pid, int(started) if started else None


def same_process(kept: str | None, epoch: str | None) -> bool:
    """Whether a token kept with epoch `kept` was given by the server with `epoch`, so that it can be resumed from.
    The start is worked out from the server's clock and uptime, each in whole milliseconds, so two processes of Gossip
    may see the one server's start a millisecond or two apart: within SAME_START it is the same start. A kept epoch
    without a start cannot be told from a later process with the same pid, so it is never taken for this one."""
    if kept is None or epoch is None:
        return kept == epoch
    (host, pid, started), (host_now, pid_now, started_now) = _process(kept), _process(epoch)
    if started is None or started_now is None or (host, pid) != (host_now, pid_now):
        return False
    return abs(started - started_now) <= SAME_START


def from_earlier_process(kept: str | None, epoch: str | None) -> bool:
    """Whether a token kept with epoch `kept`, read from the database that the embedded server with `epoch` serves,
    was given by an earlier process of that server: another process on the same host. Only one process at a time
    serves a data directory, so that token is one the server forgot when it stopped, as it does every time; one from
    MongoDB (None) or from another host came with data moved from another server."""
    if kept is None or epoch is None or same_process(kept, epoch):
        return False
    return _process(kept)[0] == _process(epoch)[0]


# Embedded-server workaround: it answers an empty getMore at once instead of waiting maxAwaitTimeMS.
async def next_change(stream: AsyncChangeStream[dict[str, Any]], pause: float) -> dict[str, Any] | None:
    """The next change event, or None after an empty batch (the caller uses that moment for timers).

    The embedded server answers an empty getMore at once instead of waiting maxAwaitTimeMS, so after an empty batch
    this waits out the rest of `pause`, and the loop does not spin. MongoDB's getMore has already waited that long
    on the server, so there it asks again at once: a change never waits for a sleep on top of the server's wait.
    """
    asked = time.monotonic()
    change = await stream.try_next()
    if change is None:
        await asyncio.sleep(pause - (time.monotonic() - asked))
    return change


async def _nothing() -> None:
    return None


class Reopen(Exception):
    """Raised by a handler: the stream reopens at once from its Resumable's options. Neither a failure nor a skip."""


class Resumable(Protocol):
    """Where a stream resumes when the service starts again: a token kept in MongoDB (a watch rule's)."""

    async def options(self) -> dict[str, Any]:
        """The watch options of the next open: `resume_after`, or none to start from now."""

    async def opened(self, token: Mapping[str, Any] | None) -> None:
        """The open stream's position, before any change: kept, so that a stream that hears nothing resumes here."""

    def failed(self, error: Exception) -> None:
        """What ended the last attempt (ChangeStreamHistoryLost, say), heard before the stream reopens."""


@dataclass(frozen=True, slots=True)
class ChangeStream:
    """One change stream to keep open: what to do when it (re)opens, per change, and when idle.

    `server_wait` is how long MongoDB may hold an empty getMore (maxAwaitTimeMS): it answers as soon as a change
    commits, so a change never waits for it, but `on_idle` runs only once it has answered. The embedded server
    answers at once whatever it is told; there `pause` paces the polls instead: `pause` within `BUSY` seconds of
    the last change, when the next is likely near and each millisecond of the pause is one a change may wait,
    `idle_pause` after, when a poll, which costs CPU, mostly finds nothing."""

    collection: AsyncCollection[dict[str, Any]]
    pipeline: list[dict[str, Any]]
    on_open: Callable[[], Awaitable[None]]
    on_change: Callable[[Change], Awaitable[None]]
    on_idle: Callable[[], Awaitable[None]] = _nothing
    pause: float = 0.1  # after an empty batch, the least time before the next getMore
    idle_pause: float | None = None  # the same, once changes have stopped coming; None: `pause`
    server_wait: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)
    resume: Resumable | None = None  # None: a reopened stream starts from now, and `on_open` catches up


class ChangeStreams:
    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, streams: Sequence[ChangeStream]) -> None:
        """Returns once every stream is open and has run its `on_open`."""
        opened = [asyncio.Event() for _ in streams]
        self._tasks = [asyncio.create_task(_watch(one, event)) for one, event in zip(streams, opened, strict=True)]
        await asyncio.gather(*(event.wait() for event in opened))

    async def stop(self) -> None:
        await tasks.stop(*self._tasks)


def committed_at(change: Change) -> datetime | None:
    """When a change committed: its wallTime (MongoDB 6.0 on, to the millisecond), else its clusterTime (a
    Timestamp, to the second); None when it carries neither."""
    wall = change.get("wallTime")
    if isinstance(wall, datetime):
        return wall
    cluster = change.get("clusterTime")
    return cluster.as_datetime() if isinstance(cluster, Timestamp) else None


def lag(change: Change, now: float) -> float | None:
    """Seconds from the change's commit to `now` (epoch seconds), never below 0: the database's clock and this
    process's may differ a little."""
    at = committed_at(change)
    return None if at is None else max(0.0, now - at.timestamp())


async def _watch(watched: ChangeStream, opened: asyncio.Event) -> None:
    name = watched.collection.name
    lagging, restarts = CHANGE_LAG.labels(collection=name), RESTARTS.labels(collection=name)  # both series from now on
    while True:
        try:
            options = {**watched.options, **(await watched.resume.options() if watched.resume else {})}
            async with await watched.collection.watch(
                watched.pipeline, max_await_time_ms=int(watched.server_wait * 1000), **options
            ) as stream:
                if watched.resume:
                    await watched.resume.opened(stream.resume_token)
                await watched.on_open()  # after the stream is open, so nothing falls between the two
                opened.set()
                changed_at = time.monotonic()
                while True:
                    change = await next_change(stream, pause_after(watched, time.monotonic() - changed_at))
                    if change is None:
                        await watched.on_idle()
                    else:
                        changed_at = time.monotonic()
                        if (behind := lag(change, time.time())) is not None:
                            lagging.set(behind)
                        await skipping(name, watched.on_change, change)
        except asyncio.CancelledError:
            raise
        except Reopen as reopen:
            log.info("change stream on %s reopens: %s", name, reopen)
        except Exception as error:
            restarts.inc()
            log.warning("change stream on %s failed; reopening", name, exc_info=True)
            if watched.resume:
                watched.resume.failed(error)
            await asyncio.sleep(RETRY_DELAY)


def pause_after(watched: ChangeStream, quiet: float) -> float:
    """The pause before the next poll, `quiet` seconds after the last change."""
    return watched.pause if quiet < BUSY or watched.idle_pause is None else watched.idle_pause


async def skipping(name: str, handle: Callable[[Change], Awaitable[None]], change: Change) -> None:
    """A change the code cannot use (a field missing or of a wrong type, an operation it does not expect) is logged
    in one line and skipped: reopening the stream would not make it usable, and the changes after it still count.
    Only the database's own failures reach the loop, which reopens the stream and catches up."""
    try:
        await handle(change)
    except (ConnectionFailure, Reopen):
        raise
    except Exception as error:  # any bug a document can trigger: one line, not a traceback per change
        SKIPPED.labels(collection=name).inc()
        key = change.get("documentKey") if isinstance(change, dict) else None
        log.warning("skipped a change on %s (%r): %s: %s", name, key, type(error).__name__, error)
