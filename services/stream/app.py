"""The stream service: per-user SSE feeds from the hub, with replay from MongoDB, and the live pages."""

from __future__ import annotations

from collections.abc import AsyncIterator

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
from shared.db import SHOWS, Database
from shared.errors import ApiError
from shared.pages import page_caller, render
from shared.updates import history, recent, unread, wire

REPLAY_BATCH = 500
PAGE_SIZE = 50


def _resume_point(request: Request) -> int | None:
    """Last-Event-ID (a browser reconnecting) wins over ?after= (a page starting from what it showed)."""
    for name, raw in (("Last-Event-ID", request.headers.get("last-event-id")), ("after", request.query_params.get("after"))):
        if raw:
            if not (raw.isascii() and raw.isdigit()):
                raise ApiError(422, detail=f"{name} must be an update id.", fields={name: "a non-negative integer"})
            return int(raw)
    return None


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


async def notifications_page(request: Request) -> Response:
    """Recent history rendered at once, unread ones marked; the page script then continues live from there."""
    caller = await page_caller(request)
    everything = request.url.path == "/notifications/all"
    db = request.state.db
    user = await db.users.find_one({"_id": caller.user_id}, {"follows": 1, "last_read_seq": 1}) or {}
    follows, last_read = user.get("follows", []), user.get("last_read_seq", 0)
    items = [wire(update) for update in await recent(db, None if everything else follows, PAGE_SIZE)]
    context = {
        "everything": everything,
        "items": items,
        "after": items[0]["seq"] if items else 0,
        "last_read": last_read,
        "follows": follows,
        "shows": SHOWS,
        "unread": await unread(db, follows, last_read, caller.username),
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
