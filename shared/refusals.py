"""Refusals per limit as every process of every service counts them (gossip_refusals_total), reported to MongoDB
every PRESENCE_INTERVAL seconds as one `refusals` document per process (shared/reports.py): the operator console,
served by one auth process, sums the live reports, since each process serves only its own /metrics. The counts run
from each process's start, so a process that stops takes its own with it."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from datetime import datetime

from prometheus_client import Metric

from shared import reports
from shared.db import Database
from shared.limits import LIMITS, REFUSALS


def by_label(metrics: Iterable[Metric], label: str, suffix: str = "") -> dict[str, float]:
    """A labelled metric's current values by one label, through prometheus-client's public collect()."""
    return {sample.labels[label]: sample.value for metric in metrics for sample in metric.samples
            if sample.name == metric.name + suffix}  # fmt: skip


def counted() -> dict[str, int]:
    """This process's refusals since it started, per limit."""
    return {limit: int(count) for limit, count in by_label(REFUSALS.collect(), "limit", "_total").items()}


@contextlib.asynccontextmanager
async def reported(db: Database, service: str, interval: float) -> AsyncIterator[None]:
    """For as long as the service runs: its process's counts, named by the service it serves."""
    async with reports.reporting(db.refusals, lambda: {"service": service, "counts": counted()}, interval, "refusals"):
        yield


async def totals(db: Database, now: datetime) -> dict[str, int]:
    """Per limit, the refusals every live process has counted: every limit of LIMITS, at 0 where none refused."""
    total: Counter[str] = Counter(dict.fromkeys(LIMITS, 0))
    for report in await reports.live(db.refusals, now, {"counts": 1}):
        total.update(report.get("counts") or {})
    return dict(sorted(total.items()))
