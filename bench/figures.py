"""What the feeds received, checked against what was published: latencies, and lost, duplicate or wrong updates."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from bench.sse import Feed


@dataclass(frozen=True, slots=True)
class Tally:
    deliveries: int
    lost: int
    duplicates: int
    wrong: int  # updates for a show the feed does not carry, or out of seq order
    latencies: list[float]  # seconds from the post to ingest to the frame's arrival, one per delivery
    last_arrival: float

    @property
    def exact(self) -> bool:
        """Every update each feed should have had, each once."""
        return self.lost == self.duplicates == 0

    def misses(self) -> dict[str, int]:
        return {"lost": self.lost, "dup": self.duplicates}

    def percentile(self, fraction: float) -> float:
        """Milliseconds; nearest-rank on the sorted latencies."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def tally(feeds: Sequence[Feed], expected: Sequence[Collection[int]], sent: dict[int, float]) -> Tally:
    """`expected[i]` is what feeds[i] should have received, each once and in seq order."""
    deliveries = lost = duplicates = wrong = 0
    latencies: list[float] = []
    last_arrival = 0.0
    for feed, wanted in zip(feeds, expected, strict=True):
        got = feed.seqs.tolist()
        unique = set(got)
        deliveries += len(got)
        duplicates += len(got) - len(unique)
        lost += len(set(wanted) - unique)
        wrong += len(unique - set(wanted)) + sum(1 for a, b in itertools.pairwise(got) if b <= a)
        latencies.extend(arrival - sent[seq] for seq, arrival in zip(got, feed.times, strict=True) if seq in sent)
        if feed.times:
            last_arrival = max(last_arrival, feed.times[-1])
    return Tally(deliveries, lost, duplicates, wrong, latencies, last_arrival)


async def all_arrived(feeds: Sequence[Feed], counts: Sequence[int], timeout: float) -> None:
    """Waits until every feed holds at least its count of updates, or the deadline; the tally then says what is
    missing."""
    waits = [feed.holding(count) for feed, count in zip(feeds, counts, strict=True)]
    if waits:
        await asyncio.wait(waits, timeout=timeout)
