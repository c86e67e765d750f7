"""The stream process's presence report: every PRESENCE_INTERVAL seconds, one write of who has feeds open here
(shared/presence.py), withdrawn when the process stops."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime
from typing import Any

from prometheus_client import Metric

from services.stream.hub import Hub
from services.stream.metrics import CHANGE_LAG
from shared import presence, tasks
from shared.db import Database, farewell, utcnow
from shared.limits import REFUSALS


def _by_label(metrics: Iterable[Metric], label: str, suffix: str = "") -> dict[str, float]:
    """A labelled metric's current values by one label, through prometheus-client's public collect()."""
    return {sample.labels[label]: sample.value for metric in metrics for sample in metric.samples
            if sample.name == metric.name + suffix}  # fmt: skip


def figures(hub: Hub) -> dict[str, Any]:
    """What the operator console shows of this process beside its users: its open feeds, in all and per show, the
    lag of its change stream on `updates` as of the last change (absent before the first), and the refusals it has
    counted since it started, per limit. The console runs in another process and cannot read these otherwise."""
    feeds, per_show = hub.feed_counts()
    found: dict[str, Any] = {"feeds": feeds, "show_feeds": per_show}
    if (lag := _by_label(CHANGE_LAG.collect(), "collection").get("updates")) is not None:
        found["lag"] = lag
    found["refusals"] = {limit: int(count) for limit, count in _by_label(REFUSALS.collect(), "limit", "_total").items()}
    return found


@contextlib.asynccontextmanager
async def reported(
    db: Database, hub: Hub, interval: float, clock: Callable[[], datetime] = utcnow
) -> AsyncIterator[None]:
    """Reports the hub's users for as long as the context lasts, then withdraws the report (a farewell: bounded, and
    skipped when the database has gone, since the report expires on its own). `clock`: injected, so that a test
    reads the report's lease (`expires_at`) without waiting for it to run out."""
    process = presence.process_id()

    async def report() -> None:
        await presence.report(db, process, hub.carried(), clock(), interval, figures(hub))

    try:
        async with tasks.repeating(report, interval, "reporting this process's open feeds"):
            yield
    finally:
        await farewell(db, "withdrawing this process's presence report", lambda: presence.withdraw(db, process))
