"""The stream service: per-user SSE feeds from the hub, with replay from MongoDB, and the live pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.stream.frames import RETRY, update_frame
from services.stream.hub import Feed, Hub
from services.stream.metrics import CONNECTIONS, SLOW_CONSUMERS
from services.stream.watcher import watching
from shared.app import create_app
from shared.auth import require_caller
from shared.db import MAX_INT, SHOWS, Database
from shared.errors import ApiError
from shared.pages import page_caller, render
from shared.updates import any_before, history, recent, since_read, wire

REPLAY_BATCH = 500
PAGE_SIZE = 50
UNREAD_MAX = 200  # a first page lists up to this many unread updates; older pages reach any beyond


def _update_id(name: str, raw: str | None) -> int | None:
    """None if not given. At most 19 digits, so that neither int() nor MongoDB's 64-bit integers choke on it."""
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) <= MAX_INT):
        raise ApiError(422, detail=f"{name} must be an update id.", fields={name: "a non-negative integer"})
    return int(raw)


def _resume_point(request: Request) -> int | None:
    """Last-Event-ID (a browser reconnecting) wins over ?after= (a page starting from what it showed)."""
    resumed = _update_id("Last-Event-ID", request.headers.get("last-event-id"))
    return resumed if resumed is not None else _update_id("after", request.query_params.get("after"))


async def _follows(db: Database, user_id: str) -> list[str]:
    user = await db.users.find_one({"_id": user_id}, {"follows": 1})
    return user["follows"] if user else []


async def _frames(db: Database, hub: Hub, feed: Feed, after: int | None, ceiling: int) -> AsyncIterator[bytes]:
    """History up to the ceiling from the database, then live frames, which are all above it: no gap, no twice."""
    try:
        yield RETRY
        while after is not None and after < ceiling:
            batch = await history(db, feed.shows, after, REPLAY_BATCH, upto=ceiling)
            for update in batch:
                yield update_frame(update)
            after = batch[-1]["seq"] if len(batch) == REPLAY_BATCH else ceiling
        async for frame in feed.frames():
            yield frame
    finally:
        _closed(hub, feed)  # a send that timed out ends here: sse-starlette closes the generator, skips `background`


def _closed(hub: Hub, feed: Feed) -> None:
    if hub.close(feed):
        CONNECTIONS.dec()
        if feed.overflowed:
            SLOW_CONSUMERS.inc()


async def events(request: Request) -> Response:
    caller = await require_caller(request)
    after = _resume_point(request)
    db, hub = request.state.db, request.state.hub
    shows = None if request.url.path == "/events/all" else await _follows(db, caller.user_id)
    feed = hub.open(caller, shows)
    ceiling = request.state.watcher.delivered  # read in the same tick as open: every live frame is above it
    CONNECTIONS.inc()
    return EventSourceResponse(
        _frames(db, hub, feed, after, ceiling),
        ping=request.state.settings.ping_interval,
        send_timeout=request.state.settings.send_timeout,
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        background=BackgroundTask(_closed, hub, feed),  # also when the generator never started (HEAD, early hang-up)
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
    caller = await page_caller(request)
    everything = request.url.path == "/notifications/all"
    before = _update_id("before", request.query_params.get("before"))
    db = request.state.db
    user = await db.users.find_one({"_id": caller.user_id}, {"follows": 1, "last_read_seq": 1}) or {}
    follows, last_read = user.get("follows", []), user.get("last_read_seq", 0)
    items, older = await _listing(db, None if everything else follows, last_read, before)
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


routes = [
    Route("/events", events),
    Route("/events/all", events),
    Route("/notifications", notifications_page),
    Route("/notifications/all", notifications_page),
]
extensions = [watching]
app = create_app("stream", routes, extensions=extensions)
