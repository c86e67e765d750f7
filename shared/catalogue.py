"""The show catalogue as a process sees it: the `shows` collection, read at most once a second. Operators and other
programs write it straight into MongoDB, so a document that is no usable show is left out here, in one place, and
every reader (publish, follows, preferences, pages, feeds, pushes, the digest) sees only good shows."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from shared.db import Database
from shared.updates import NO_CONTROL, TITLE_MAX

log = logging.getLogger("gossip.catalogue")
# A slug names the show in URLs (/api/me/follows/<slug>) and keys the stored path `preferences.shows.<slug>`, where
# a '.' nests and a '$' is refused: a personal topic's alphabet (shared/rulesfile.py NAME), longer, as operators
# name shows (`the_good_the_bad_and_the_ugly_extended_edition`).
SLUG_MAX = 64
SLUG = re.compile(rf"[a-z0-9_-]{{1,{SLUG_MAX}}}")
SLUG_RULE = f"1 to {SLUG_MAX} of a-z, 0-9, '_' or '-'"
TITLE_RULE = f"text of 1 to {TITLE_MAX} characters, not only spaces, without control characters"
_warned: set[tuple[str, str, str]] = set()  # (database, _id, problem): each bad document is logged once a process


def is_slug(value: object) -> bool:
    return isinstance(value, str) and SLUG.fullmatch(value) is not None


def problem(show: Mapping[str, Any]) -> str | None:
    """Why a `shows` document is no usable show, naming its field, or None."""
    if not is_slug(show.get("_id")):
        return f"_id: {SLUG_RULE}"
    title = show.get("title")
    if not isinstance(title, str) or not title.strip() or len(title) > TITLE_MAX or not NO_CONTROL.match(title):
        return f"title: {TITLE_RULE}"
    return None


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
        """slug → title, in title order; only the usable shows."""
        if time.monotonic() - self._read_at >= self.max_age:
            async with self._lock:
                if time.monotonic() - self._read_at >= self.max_age:
                    shows = await self.db.shows.find().sort("title", 1).to_list()
                    self._titles = {show["_id"]: show["title"] for show in shows if self._usable(show)}
                    self._read_at = time.monotonic()
        return self._titles

    def _usable(self, show: Mapping[str, Any]) -> bool:
        """A bad document is logged once a process, not at every read (once a second), and by its `_id` cut short."""
        wrong = problem(show)
        if wrong is not None:
            key = (self.db.name, repr(show.get("_id"))[:80], wrong)
            if key not in _warned:
                _warned.add(key)
                log.warning("shows document %s left out of the catalogue: %s", key[1], wrong)
        return wrong is None

    async def title(self, slug: str) -> str | None:
        return (await self.titles()).get(slug)

    async def rule(self) -> str:
        """What a show's slug must be, every slug named: a script that sent a wrong one learns the right ones."""
        return "one of " + ", ".join(sorted(await self.titles()))
