"""A lookup whose finds are remembered for a moment: for what is read on every request and changes rarely, where
a change may take that moment to be seen (an API token, looked up by every publish, refused within a second of its
revocation)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

PRUNE_AT = 1000  # remembered keys before the expired ones are let go


class Remembered:
    """`await remembered(key)` is `await lookup(key)`, answered from memory for `max_age` seconds after a lookup
    started, so that what the database said then is never served past `max_age` after it stopped being true.
    Misses are not remembered: a key created a moment after it was asked for is found at once."""

    def __init__(self, lookup: Callable[[Any], Awaitable[dict[str, Any] | None]], max_age: float) -> None:
        self._lookup, self.max_age = lookup, max_age
        self._found: dict[Any, tuple[float, dict[str, Any]]] = {}

    async def __call__(self, key: Any) -> dict[str, Any] | None:
        asked = time.monotonic()
        if (remembered := self._found.get(key)) is not None and asked - remembered[0] < self.max_age:
            return remembered[1]
        found = await self._lookup(key)
        if found is None:
            self._found.pop(key, None)
            return None
        if len(self._found) >= PRUNE_AT:
            self._found = {k: v for k, v in self._found.items() if asked - v[0] < self.max_age}
        self._found[key] = (asked, found)
        return found
