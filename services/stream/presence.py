"""The stream process's presence report: every PRESENCE_INTERVAL seconds, one write of who has feeds open here
(shared/presence.py), withdrawn when the process stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pymongo

from services.stream.hub import Hub
from shared import presence
from shared.db import Database, utcnow

log = logging.getLogger("gossip.stream.presence")
WITHDRAW_WAIT = 1.0  # seconds: a database that has gone must not hold the shutdown; the report expires anyway


async def _reporting(db: Database, hub: Hub, process: str, interval: float) -> None:
    while True:
        try:
            await presence.report(db, process, hub.carried(), utcnow(), interval)
        except Exception:  # the database may be away for a while: the next report catches up
            log.warning("could not report this process's open feeds; trying again in %g s", interval, exc_info=True)
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def reported(db: Database, hub: Hub, interval: float) -> AsyncIterator[None]:
    """Reports the hub's users for as long as the context lasts, then withdraws the report."""
    process = presence.process_id()
    chore = asyncio.create_task(_reporting(db, hub, process, interval))
    try:
        yield
    finally:
        chore.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await chore
        try:
            with pymongo.timeout(WITHDRAW_WAIT):
                await presence.withdraw(db, process)
        except Exception:  # the report expires on its own within a few intervals
            log.warning("could not withdraw this process's presence report", exc_info=True)
