"""History for feeds that (re)connect, read from MongoDB and shared by the feeds that ask for the same range at once:
where the replay starts (at most REPLAY_LIMIT updates, the rest announced by `resync`), then its chunks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from services.stream.frames import resync_frame, update_frame
from shared.catalogue import Catalogue
from shared.db import Database
from shared.updates import between, cut, every_viewers, sees, shown, trimmed

BATCH = 500
T = TypeVar("T")
Shows = frozenset[str] | None


@dataclass(frozen=True, slots=True)
class Frames:
    """A chunk of replayed frames, read once for every feed that asked: the same bytes for each when none of them is
    personal (`joined`), else each frame with its recipient and show, for each feed to keep what its user may see and
    has not muted."""

    joined: bytes | None
    parts: tuple[tuple[str | None, str, bytes], ...] = ()

    def seen_by(self, viewer: str, muted: Collection[str] = ()) -> bytes:
        """`muted`: the topics whose personal updates the feed leaves out (Hub.muted)."""
        if self.joined is not None:
            return self.joined
        return b"".join(
            frame
            for recipient, show, frame in self.parts
            if sees(viewer, recipient) and (recipient is None or show not in muted)
        )


class Replay:
    """When a stream process restarts or the network blips, thousands of browsers reconnect at once with the same
    Last-Event-ID: one read then serves them all and each frame is encoded once. Nothing is kept once a read is
    answered: a later request reads the database again, which stays the only history.

    A resume point may lie below what history's retention removed (its horizon, `shared.updates.trimmed`). Only that
    is missed history: an update deleted by its author or retracted by a watch rule is not, and a resume point beside
    it needs no `resync`. `horizon`: that seq when it no longer moves (`fixed_horizon`), or None while retention
    raises it, when each replay's start reads it. The replay limit and `resync`'s count are of the updates meant for
    everybody, which the feeds share."""

    def __init__(self, db: Database, catalogue: Catalogue, limit: int, horizon: int | None = 0) -> None:
        self.db, self.catalogue, self.limit, self.horizon = db, catalogue, limit, horizon
        self._reads: dict[Hashable, asyncio.Future[Any]] = {}

    async def start(self, shows: Collection[str] | None, after: int, upto: int) -> tuple[int, bytes]:
        """Where the replay of (after, upto] starts, and the `resync` frame that goes first when that is not `after`
        (b"" when it is): the replay is the newest `limit` updates at most, and starts above retention's horizon."""
        key = ("start", _shows(shows), after, upto)
        return cast(tuple[int, bytes], await self._shared(key, lambda: self._start(_shows(shows), after, upto)))

    async def chunk(
        self, shows: Collection[str] | None, viewer: str, after: int, upto: int, muted: Collection[str] = ()
    ) -> tuple[bytes, int]:
        """The frames of the first updates in (after, upto] the viewer may see, but their personal ones of `muted`
        topics, as one chunk, and the seq the next chunk starts after (`upto` once the range is done)."""
        key = ("chunk", _shows(shows), after, upto)
        frames, next_after = await self._shared(key, lambda: self._read(_shows(shows), after, upto))
        return frames.seen_by(viewer, muted), next_after

    async def _shared(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        running = self._reads.get(key)
        if running is None:
            running = self._reads[key] = asyncio.ensure_future(read())
            running.add_done_callback(lambda _: self._forget(key))
        return cast(T, await asyncio.shield(running))  # one browser hanging up does not cancel the others' read

    def _forget(self, key: Hashable) -> None:
        read = self._reads.pop(key)
        if not read.cancelled():
            read.exception()  # marked as seen: a failure whose browsers had all hung up is not an error to log

    async def _start(self, shows: Shows, after: int, upto: int) -> tuple[int, bytes]:
        start, known = after, True
        horizon = self.horizon if self.horizon is not None else await trimmed(self.db)
        if after < horizon:
            start, known = min(horizon, upto), False  # some of what lay between is gone: how much, nobody knows
        if upto - start > self.limit:
            start = await cut(self.db, shows, None, start, upto, self.limit)
        if start == after:
            return after, b""
        missed = await between(self.db, shows, None, after, start) if known else None
        return start, resync_frame(after, start, missed)

    async def _read(self, shows: Shows, after: int, upto: int) -> tuple[Frames, int]:
        updates = await every_viewers(self.db, shows, after, BATCH, upto)
        parts = tuple(
            (update.get("recipient"), update["show"], update_frame(update))
            for update in shown(updates, await self.catalogue.titles())
        )
        if any(recipient is not None for recipient, _, _ in parts):
            frames = Frames(None, parts)
        else:
            frames = Frames(b"".join(frame for _, _, frame in parts))
        return frames, updates[-1]["seq"] if len(updates) == BATCH else upto


async def fixed_horizon(db: Database, history_days: float) -> int | None:
    """Retention's horizon for a Replay made now. While HISTORY_DAYS keeps history for a while, the sweeps raise it,
    so each replay reads it (None). At 0, which keeps history for ever, no sweep runs, but what sweeps removed while
    it was set stays gone: the horizon read once here holds for the process's life, and a replay pays no read for it.
    The services share one environment, so no other process sweeps meanwhile."""
    return None if history_days else await trimmed(db)


def _shows(shows: Collection[str] | None) -> Shows:
    return None if shows is None else frozenset(shows)
