"""History for feeds that (re)connect, read from MongoDB and shared by the feeds that ask for the same range at once."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from services.stream.frames import update_frame
from shared.db import Database
from shared.updates import history

BATCH = 500
Range = tuple[frozenset[str] | None, int, int]


class Replay:
    """When a stream process restarts or the network blips, thousands of browsers reconnect at once with the same
    Last-Event-ID: one read then serves them all and each frame is encoded once. Nothing is kept once a read is
    answered: a later request reads the database again, which stays the only history."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._reads: dict[Range, asyncio.Future[tuple[bytes, int]]] = {}

    async def chunk(self, shows: Collection[str] | None, after: int, upto: int) -> tuple[bytes, int]:
        """The frames of the first updates in (after, upto] as one chunk, and the seq the next chunk starts after
        (`upto` once the range is done)."""
        key = (None if shows is None else frozenset(shows), after, upto)
        read = self._reads.get(key)
        if read is None:
            read = self._reads[key] = asyncio.ensure_future(self._read(key))
            read.add_done_callback(lambda _: self._forget(key))
        return await asyncio.shield(read)  # one browser hanging up does not cancel the others' read

    def _forget(self, key: Range) -> None:
        read = self._reads.pop(key)
        if not read.cancelled():
            read.exception()  # marked as seen: a failure whose browsers had all hung up is not an error to log

    async def _read(self, key: Range) -> tuple[bytes, int]:
        shows, after, upto = key
        updates = await history(self.db, shows, after, BATCH, upto=upto)
        frames = b"".join(update_frame(update) for update in updates)
        return frames, updates[-1]["seq"] if len(updates) == BATCH else upto
