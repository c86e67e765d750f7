"""The stream process's presence report: every PRESENCE_INTERVAL seconds, one write of who has feeds open here
(shared/presence.py), withdrawn when the process stops."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from services.stream.hub import Hub
from services.stream.metrics import CHANGE_LAG
from shared import presence, reports
from shared.db import Database, utcnow
from shared.refusals import by_label


def figures(hub: Hub) -> dict[str, Any]:
    """What the operator console shows of this process beside its users: its open feeds, in all and per show, and
    the lag of its change stream on `updates` as of the last change (absent before the first). The console runs in
    another process and cannot read these otherwise."""
    feeds, per_show = hub.feed_counts()
    found: dict[str, Any] = {"feeds": feeds, "show_feeds": per_show}
    if (lag := by_label(CHANGE_LAG.collect(), "collection").get("updates")) is not None:
        found["lag"] = lag
    return found


@contextlib.asynccontextmanager
async def reported(
    db: Database, hub: Hub, interval: float, clock: Callable[[], datetime] = utcnow
) -> AsyncIterator[None]:
    """Reports the hub's users for as long as the context lasts, then withdraws the report. `clock`: injected, so
    that a test reads the report's lease (`expires_at`) without waiting for it to run out."""

    def report() -> dict[str, Any]:
        return presence.report_of(hub.carried(), figures(hub))

    async with reports.reporting(db.presence, report, interval, "this process's open feeds", clock):
        yield
