"""Seq order out of commit order: with concurrent publishers the change stream can show 1043 before 1042."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class Reorder(Generic[T]):
    """Releases items strictly in seq order. An item above a gap waits until the gap fills or `wait` seconds
    pass; then the caller reads the missing numbers from the database and `settle` skips those still absent
    (a publish that failed after taking its number). Released seqs never go backwards."""

    def __init__(self, delivered: int, wait: float = 1.0) -> None:
        self.delivered = delivered
        self.wait = wait
        self._held: dict[int, T] = {}
        self._gap_since: float | None = None

    def push(self, seq: int, item: T, now: float) -> list[T]:
        """A later push of a held seq replaces it: an update edited before its turn goes out as it now is."""
        if seq > self.delivered:
            self._held[seq] = item
        return self._release(now)

    def discard(self, seq: int) -> None:
        """A held update that was deleted before its turn: its seq becomes a hole, settled like any other."""
        self._held.pop(seq, None)

    def overdue(self, now: float) -> bool:
        return self._gap_since is not None and now - self._gap_since >= self.wait

    def gap(self) -> tuple[int, int]:
        """The seq range (exclusive, inclusive] to read from the database before settling."""
        return self.delivered, max(self._held, default=self.delivered)

    def settle(self, found: Iterable[tuple[int, T]]) -> list[T]:
        """What the database has fills the gaps; numbers still absent are holes and are skipped for good."""
        for seq, item in found:
            if seq > self.delivered:
                self._held.setdefault(seq, item)
        ready = [self._held[seq] for seq in sorted(self._held)]
        self.delivered = max(self._held, default=self.delivered)
        self._held.clear()
        self._gap_since = None
        return ready

    def _release(self, now: float) -> list[T]:
        ready = []
        while self.delivered + 1 in self._held:
            self.delivered += 1
            ready.append(self._held.pop(self.delivered))
        if not self._held:
            self._gap_since = None
        elif ready or self._gap_since is None:
            self._gap_since = now  # a new gap: its own full wait
        return ready
