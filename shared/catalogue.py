"""The show catalogue as a process sees it: the `shows` collection, read at most once a second."""

from __future__ import annotations

import asyncio
import time

from shared.db import Database


class Catalogue:
    """Every publish and every follow names a show, and the catalogue changes only when an operator edits it:
    reading it once a second instead of once a request takes a round trip off the publish path, and an edit is
    seen within a second by every process."""

    def __init__(self, db: Database, max_age: float = 1.0) -> None:
        self.db, self.max_age = db, max_age
        self._titles: dict[str, str] = {}
        self._read_at = -max_age
        self._lock = asyncio.Lock()  # concurrent requests that find it stale share one read

    async def titles(self) -> dict[str, str]:
        """slug → title, in title order."""
        if time.monotonic() - self._read_at >= self.max_age:
            async with self._lock:
                if time.monotonic() - self._read_at >= self.max_age:
                    shows = await self.db.shows.find().sort("title", 1).to_list()
                    self._titles = {show["_id"]: show["title"] for show in shows}
                    self._read_at = time.monotonic()
        return self._titles

    async def title(self, slug: str) -> str | None:
        return (await self.titles()).get(slug)

    async def rule(self) -> str:
        """What a show's slug must be, every slug named: a script that sent a wrong one learns the right ones."""
        return "one of " + ", ".join(sorted(await self.titles()))
