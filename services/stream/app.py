"""The stream service: per-user SSE feeds from the hub, with replay from MongoDB, and the live pages."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.stream.frames import RETRY
from services.stream.hub import Feed, Hub
from services.stream.metrics import CONNECTIONS, SLOW_CONSUMERS
from services.stream.replay import Replay
from services.stream.response import FeedResponse
from services.stream.watcher import Watcher
from shared.app import create_app
from shared.auth import require_caller
from shared.batching import by_id
from shared.body import whole_number
from shared.db import SHOWS, Database
from shared.pages import page_caller, render
from shared.settings import Settings
from shared.updates import any_before, recent, since_read, wire

PAGE_SIZE = 50
UNREAD_MAX = 200  # a first page lists up to this many unread updates; older pages reach any beyond
HEARTBEAT_SHARES = 10  # the feeds are pinged a tenth at a time
SHUTDOWN_GRACE = 2.0  # seconds for open feeds to end cleanly once the server stops; uvicorn waits 5


def _resume_point(request: Request) -> int | None:
    """Last-Event-ID (a browser reconnecting) wins over ?after= (a page starting from what it showed)."""
    resumed = whole_number("Last-Event-ID", request.headers.get("last-event-id"))
    return resumed if resumed is not None else whole_number("after", request.query_params.get("after"))


async def _frames(replay: Replay, hub: Hub, feed: Feed, after: int | None, ceiling: int) -> AsyncIterator[bytes]:
    """History up to the ceiling from the database, then live frames, which are all above it: no gap, no twice.
    The retry line rides with the first chunk of history, so a reconnecting browser costs one write, not two."""
    try:
        head = RETRY
        while after is not None and after < ceiling:
            chunk, after = await replay.chunk(feed.shows, after, ceiling)
            yield head + chunk
            head = b""
        if head:
            yield head
        async for chunk in feed.frames():
            yield chunk
    finally:
        await _closed(hub, feed)  # however the stream ended; `background` also covers a generator never started


async def _closed(hub: Hub, feed: Feed) -> None:
    """Async though it never waits, so that Starlette runs it in place as a background task, not in a thread."""
    if hub.close(feed):
        CONNECTIONS.dec()
        if feed.too_slow:
            SLOW_CONSUMERS.inc()


async def events(request: Request) -> Response:
    caller = await require_caller(request)
    after = _resume_point(request)
    state = request.state
    if request.url.path == "/events/all":
        shows = None
    else:
        user = await state.find_user(caller.user_id)
        shows = user["follows"] if user else []
    feed = state.hub.open(caller, shows)
    ceiling = state.watcher.delivered  # read in the same tick as open: every live frame is above it
    CONNECTIONS.inc()
    return FeedResponse(
        feed,
        _frames(state.replay, state.hub, feed, after, ceiling),
        ping=0,  # the hub's heartbeat pings every feed: no ping task per connection (6 KB each, with its timer)
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        background=BackgroundTask(_closed, state.hub, feed),  # also when the generator never started (HEAD, hang-up)
        shutdown_event=state.shutdown,
        shutdown_grace_period=SHUTDOWN_GRACE,
    )


async def _listing(
    db: Database, shows: list[str] | None, last_read: int, before: int | None
) -> tuple[list[dict[str, Any]], int | None]:
    """A first page's updates (what is unread) or an older page's, and where the next older page starts, if any."""
    if before is None:
        updates = await since_read(db, shows, last_read, PAGE_SIZE, UNREAD_MAX)
    else:
        updates = await recent(db, shows, PAGE_SIZE, before)
    oldest = updates[-1]["seq"] if updates else 0
    older = oldest if oldest and await any_before(db, shows, oldest) else None
    return [wire(update) for update in updates], older


async def notifications_page(request: Request) -> Response:
    """The first page lists what is unread (at least the recent history), then its script continues live and marks
    it read. `?before=SEQ` is an older page: static, and it marks nothing read."""
    await page_caller(request)
    everything = request.url.path == "/notifications/all"
    before = whole_number("before", request.query_params.get("before"))
    me = request.state.me or {}  # read with the caller, for the layout's unread badge
    follows, last_read = me.get("follows", []), me.get("last_read_seq", 0)
    items, older = await _listing(request.state.db, None if everything else follows, last_read, before)
    context = {
        "everything": everything,
        "live": before is None,
        "items": items,
        "after": items[0]["seq"] if items else 0,
        "older": older,
        "last_read": last_read,
        "follows": follows,
        "shows": SHOWS,
    }
    return render(request, "notifications/index.html", context)


@contextlib.asynccontextmanager
async def feeds(app: object, state: dict[str, Any]) -> AsyncIterator[None]:
    """The hub and its watcher live as long as the app. When the server stops, sse-starlette sets the shutdown
    event of every open response; the hub then ends every feed, so each response closes cleanly within the
    grace period instead of being cancelled mid-stream (the lifespan's own shutdown comes too late for them)."""
    hub, db = Hub(), state["db"]
    watcher, shutdown = Watcher(db, hub), anyio.Event()
    await watcher.start()
    state.update(hub=hub, watcher=watcher, replay=Replay(db), find_user=by_id(db.users, {"follows": 1}),
                 shutdown=shutdown)  # fmt: skip
    chores = [asyncio.create_task(_end_feeds_when(shutdown, hub)),
              asyncio.create_task(_heartbeat(hub, state["settings"]))]  # fmt: skip
    try:
        yield
    finally:
        for chore in chores:
            chore.cancel()
        hub.end_all()
        await watcher.stop()


async def _end_feeds_when(shutdown: anyio.Event, hub: Hub) -> None:
    await shutdown.wait()
    hub.end_all()


async def _heartbeat(hub: Hub, settings: Settings) -> None:
    """Pings a share of the feeds at each tick, and drops those whose send has hung for `send_timeout`."""
    for share in itertools.cycle(range(HEARTBEAT_SHARES)):
        await asyncio.sleep(settings.ping_interval / HEARTBEAT_SHARES)
        hub.heartbeat(share, HEARTBEAT_SHARES)
        hub.drop_stalled(time.monotonic() - settings.send_timeout)


routes = [
    Route("/events", events),
    Route("/events/all", events),
    Route("/notifications", notifications_page),
    Route("/notifications/all", notifications_page),
]
extensions = [feeds]
app = create_app("stream", routes, extensions=extensions)
