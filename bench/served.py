"""The latency as the stream service measures it itself: gossip_delivery_latency_seconds from its /metrics, the
figure the operators' dashboard shows, printed beside the one the load client measures.

The two differ by design: the client's runs from the moment it sends the publish to the moment a frame reaches
each feed; the service's, from the update's created_at (set by ingest) to the end of the stream process's fan-out
to every feed, once per update."""

from __future__ import annotations

import math
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

METRIC = "gossip_delivery_latency_seconds"


@dataclass(frozen=True, slots=True)
class Histogram:
    """Cumulative counts by upper bound (seconds), +Inf last, as Prometheus exposes a histogram."""

    counts: tuple[tuple[float, float], ...]

    def since(self, earlier: Histogram) -> Histogram:
        """What was observed after `earlier` was read: a scenario's own updates."""
        return self._with(earlier, -1)

    def plus(self, other: Histogram) -> Histogram:
        """Two processes' observations as one, as the dashboard's `sum by (le)` adds its instances'."""
        return self._with(other, 1)

    def _with(self, other: Histogram, sign: int) -> Histogram:
        pairs = zip(self.counts, other.counts, strict=True)
        return Histogram(tuple((bound, mine + sign * theirs) for (bound, mine), (_, theirs) in pairs))

    def quantile(self, fraction: float) -> float:
        """Milliseconds, estimated as PromQL's histogram_quantile does: linearly within the bucket that holds the
        rank, from 0 in the first; the highest finite bound when the rank falls above it; NaN with no observations."""
        total = self.counts[-1][1] if self.counts else 0.0
        if not total:
            return math.nan
        rank, lower, below = fraction * total, 0.0, 0.0
        for bound, count in self.counts:
            if count >= rank and count > below:
                if math.isinf(bound):
                    return lower * 1000
                return (lower + (bound - lower) * (rank - below) / (count - below)) * 1000
            lower, below = bound, count
        return lower * 1000


async def served_by(port: int) -> Histogram:
    """The histogram of the service on 127.0.0.1:`port`, as it stands."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    for family in text_string_to_metric_families(text):
        if family.name == METRIC:
            buckets = [sample for sample in family.samples if sample.name == f"{METRIC}_bucket"]
            return Histogram(tuple(sorted((float(sample.labels["le"]), sample.value) for sample in buckets)))
    raise RuntimeError(f"the service on port {port} exports no {METRIC}")
