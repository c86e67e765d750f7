"""What the stream service runs beside its endpoints for as long as it lives: the hub and its watcher, the
heartbeat that pings feeds and drops stalled ones, the report of who has feeds open here, and ending every feed when
the server stops."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator
from typing import TypedDict

from services.stream import rulebook
from services.stream.changes import ChangeStreams
from services.stream.derive import RuleStream, rule_streams
from services.stream.hub import Hub
from services.stream.presence import reported
from services.stream.replay import Replay, fixed_horizon
from services.stream.server import stopping
from services.stream.watcher import Watcher
from shared.catalogue import Catalogue
from shared.db import Database, farewell
from shared.limits import Limit, Rate
from shared.settings import Settings
from shared.state import Core
from shared.tracing import tracer_of

HEARTBEAT_SHARES = 10  # the feeds are pinged a tenth at a time
OPENING_TOO_FAST = (
    "You are opening live feeds faster than the limit allows (a page reloading in a loop?). Wait a moment."
)

log = logging.getLogger("gossip.stream.lifecycle")


class FanOut(TypedDict):
    """The stream service's part of its state: what fans each change out to the open feeds."""

    hub: Hub
    watcher: Watcher
    replay: Replay
    opening: Limit  # feeds opened per user, a token bucket shared by every stream process


@contextlib.asynccontextmanager
async def fan_out(core: Core) -> AsyncIterator[FanOut]:
    """The hub and its watcher live as long as the app. When the server is told to stop, the hub ends every feed,
    so each response closes cleanly before uvicorn's graceful wait runs out, instead of being cancelled mid-stream
    (the lifespan's own shutdown comes too late for them: uvicorn waits for open responses first)."""
    db, settings = core["db"], core["settings"]
    hub = Hub(settings.max_feeds, settings.feeds_per_user)
    watcher = Watcher(
        db,
        hub,
        core["catalogue"],
        settings.history_days,
        session_lifetime=settings.session_absolute_age,
        tracer=tracer_of(core["tracer_provider"]),
    )
    replay = Replay(db, core["catalogue"], settings.replay_limit, await fixed_horizon(db, settings.history_days))
    rate = Rate(settings.feed_opens_per_user, settings.feed_open_window)
    opening = Limit(core["buckets"], "feed", rate, OPENING_TOO_FAST)
    await watcher.start()
    rules, deriving = ChangeStreams(), await watched(db, settings, core["catalogue"])
    await rules.start([stream.changes() for stream in deriving])
    chores = [asyncio.create_task(_end_feeds_at_shutdown(hub)), asyncio.create_task(_heartbeat(hub, settings))]
    try:
        async with reported(db, hub, settings.presence_interval):
            yield FanOut(hub=hub, watcher=watcher, replay=replay, opening=opening)
    finally:
        for chore in chores:
            chore.cancel()
        hub.end_all()
        await rules.stop()
        await farewell(db, "releasing the watch rules' leases", lambda: _released(deriving))
        await watcher.stop()


async def watched(db: Database, settings: Settings, catalogue: Catalogue) -> list[RuleStream]:
    """The watch rules' change streams. A rule that cannot work stops the service, its message naming the rule and
    the field: better than a service that runs and never notifies what its operator asked for."""
    if settings.watch_rules is None:
        return []
    try:
        rules = rulebook.load(settings.watch_rules)
        await rulebook.check(db, rules, await catalogue.titles())
    except rulebook.RuleError as error:
        log.error("%s", error)
        raise
    log.info("watch rules from %s: %s", settings.watch_rules, ", ".join(rule.name for rule in rules) or "none")
    return await rule_streams(db, rules, catalogue, settings.rule_lease)


async def _released(deriving: list[RuleStream]) -> None:
    """All at once: a lease not released lapses within its LEASE seconds."""
    await asyncio.gather(*(stream.release() for stream in deriving))


async def _end_feeds_at_shutdown(hub: Hub) -> None:
    """The server's signal that it is stopping, waited for once for all feeds (server.py)."""
    await stopping()
    hub.end_all()


async def _heartbeat(hub: Hub, settings: Settings) -> None:
    """Pings a share of the feeds at each tick, drops those whose send has hung for `send_timeout`, and ends those
    whose session has run out: no change event says so when time alone ends it."""
    for share in itertools.cycle(range(HEARTBEAT_SHARES)):
        await asyncio.sleep(settings.ping_interval / HEARTBEAT_SHARES)
        try:
            hub.heartbeat(share, HEARTBEAT_SHARES)
            hub.drop_stalled(time.monotonic() - settings.send_timeout)
            hub.expire(time.time())
        except Exception:  # a bug in one tick must not end pings, drops and expiry for the life of the process
            log.exception("a heartbeat tick failed; the next one runs as usual")
