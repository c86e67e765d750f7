"""The stream service: per-user SSE feeds from the hub, with replay from MongoDB, and the live pages."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.stream import api_docs
from services.stream.audience import told_read
from services.stream.feed import Feed, Streamed
from services.stream.frames import RETRY
from services.stream.hub import Hub, Marks, marks_of
from services.stream.lifecycle import FanOut, fan_out
from services.stream.metrics import CONNECTIONS, SLOW_CONSUMERS
from services.stream.replay import Replay
from shared.app import create_app
from shared.auth import require_caller, same_user
from shared.body import whole_number
from shared.db import Database, last_seq
from shared.expiry import expiring
from shared.openapi import ApiRoute
from shared.pages import Viewer, page_viewer, render
from shared.state import Core
from shared.updates import COUNT_CAP, any_before, recent, shown, since_read, wire

PAGE_SIZE = 50
UNREAD_MAX = COUNT_CAP  # a first page lists as many unread updates as are counted; older pages reach any beyond


class Stream(Core, FanOut):
    """Every service's core, and the hub with its watcher."""


StreamRequest = Request[Stream]


def _resume_points(request: StreamRequest) -> tuple[int | None, int | None]:
    """Last-Event-ID (a browser reconnecting) and ?after= (a page starting from what it showed); both must be
    numbers when given, and the first wins."""
    resumed = whole_number("Last-Event-ID", request.headers.get("last-event-id"))
    return resumed, whole_number("after", request.query_params.get("after"))


async def _told(db: Database, user_id: str, user: dict[str, Any], marks: Marks, shown: int | None, upto: int) -> bytes:
    """A `read` event when the read mark the page shows (?read=) is not the user's: one made after the page was made
    and before its feed joined the hub (the last page's, sent as it was left) reached no feed of it, as the audience
    tells only the open ones. Its count is as of the last update the page has (`upto`): the history and the live
    frames come after it, and the page counts those on. Without ?read=, or with the user's mark, nothing is read."""
    if shown is None or shown == marks.last_read:
        return b""
    return await told_read(db, user_id, user, marks, lambda: upto)


async def _history(
    replay: Replay, hub: Hub, feed: Feed, after: int | None, ceiling: int, told: Callable[[], Awaitable[bytes]]
) -> AsyncIterator[bytes]:
    """What the feed missed, up to the ceiling, from the database; the live frames that follow are all above it:
    no gap, no twice. The retry line (with a `read` the page needs first, `told`, and a `resync` when the resume
    point is too far back) rides with the first chunk, so a reconnecting browser costs one write, not two. The topics
    the feed leaves out are the hub's, as of each chunk, as the live frames are."""
    head = RETRY + await told()
    if after is not None and after < ceiling:
        after, resync = await replay.start(feed.shows, after, ceiling)
        head += resync
    while after is not None and after < ceiling:
        chunk, after = await replay.chunk(feed.shows, feed.caller.user_id, after, ceiling, hub.muted(feed))
        yield head + chunk
        head = b""
    if head:
        yield head


def _closed(hub: Hub, feed: Feed) -> None:
    if hub.close(feed):
        CONNECTIONS.dec()
        if feed.too_slow:
            SLOW_CONSUMERS.labels(reason=feed.too_slow).inc()


async def _settled(state: Stream, resumed: int | None) -> int:
    """Up to which seq a reconnecting client has every update: the live ones up to it are not sent again
    (Hub.publish), as a browser back from another stream process that was ahead of this one would get them twice.
    Only a Last-Event-ID counts: a stream sent it, so every update below it was settled; a page's ?after= is the
    newest update stored as it was made, and one below it may still commit. One ahead of every seq ever issued
    (made up, or from a database since wiped) would hold back every live update until the seqs caught up: it is
    cut to the last one issued."""
    if resumed is None:
        return 0
    if resumed <= state["watcher"].delivered:
        return resumed
    return min(resumed, await last_seq(state["db"]))


async def _feed(request: StreamRequest, everything: bool) -> Feed:
    """Every show, or the caller's followed ones but the muted; either way the user's follow changes, preferences and
    read marks reach it as `follows`, `preferences` and `read` events. The feed joins the hub before its history is
    read: the seam. Past the hub's limits (Hub.admit), or the rate of opening feeds, it is refused here, before the
    stream starts; the hub's first, which cost no round trip, so that an opening it refuses takes no token and
    reads nothing."""
    caller = await require_caller(request)
    same_user(caller, request.query_params.get("user"))
    state = request.state
    resumed, after = _resume_points(request)
    shown_read = whole_number("read", request.query_params.get("read"))
    hub = state["hub"]
    hub.admit(caller)
    await state["opening"](caller.user_id)
    settled = await _settled(state, resumed)
    after = resumed if resumed is not None else after
    found = await state["users"](caller.user_id) or {}
    user = marks_of(found, await state["catalogue"].titles())
    feed = hub.open(caller, None if everything else user.heard, user, resumed=settled)
    ceiling = state["watcher"].delivered  # read in the same tick as open: every live frame is above it
    CONNECTIONS.inc()
    upto = ceiling if after is None else after
    told = functools.partial(_told, state["db"], caller.user_id, found, user, shown_read, upto)
    return feed.serves(_history(state["replay"], hub, feed, after, ceiling, told), functools.partial(_closed, hub))


async def events(request: StreamRequest) -> Feed:
    return await _feed(request, everything=False)


async def events_all(request: StreamRequest) -> Feed:
    return await _feed(request, everything=True)


async def _listing(
    db: Database, titles: dict[str, str], shows: list[str] | None, viewer: Viewer, before: int | None
) -> tuple[list[dict[str, Any]], int | None]:
    """A first page's updates (what is unread) or an older page's, and where the next older page starts, if any.
    Notifications (the heard `shows`) leaves out the viewer's personal updates of muted topics; All Notifs
    (`shows=None`) lists them."""
    user_id, muted = viewer.caller.user_id, () if shows is None else viewer.me["muted"]
    if before is None:
        updates = await since_read(db, shows, user_id, viewer.me["last_read_seq"], PAGE_SIZE, UNREAD_MAX, muted)
    else:
        updates = await recent(db, shows, user_id, PAGE_SIZE, before, muted)
    oldest = updates[-1]["seq"] if updates else 0
    older = oldest if oldest and await any_before(db, shows, user_id, oldest, muted) else None
    return [wire(update) for update in shown(updates, titles)], older


async def _notifications(request: StreamRequest, everything: bool) -> Response:
    """The first page lists what is unread (at least the recent history), then its script continues live and marks
    it read; but a page another site opened (Sec-Fetch-Site: cross-site) marks nothing read until the person acts on
    it, so that no site can clear someone's unread updates by opening the page. `?before=SEQ` is an older page:
    static, and it marks nothing read."""
    viewer = await page_viewer(request)
    before = whole_number("before", request.query_params.get("before"))
    follows, last_read = viewer.me["follows"], viewer.me["last_read_seq"]
    titles = await request.state["catalogue"].titles()
    shows = None if everything else viewer.me["heard"]
    items, older = await _listing(request.state["db"], titles, shows, viewer, before)
    context = {
        "everything": everything,
        "live": before is None,
        "items": items,
        "older": older,
        "last_read": last_read,
        "follows": follows,
        "shows": titles,
        "opened_by_another_site": request.headers.get("sec-fetch-site") == "cross-site",
    }
    return render(request, viewer, "notifications/index.html", context)


async def notifications(request: StreamRequest) -> Response:
    return await _notifications(request, everything=False)


async def notifications_all(request: StreamRequest) -> Response:
    return await _notifications(request, everything=True)


routes = [
    ApiRoute("/events", Streamed(events), "GET", api_docs.events),
    ApiRoute("/events/all", Streamed(events_all), "GET", api_docs.events_all),
    Route("/notifications", notifications),
    Route("/notifications/all", notifications_all),
]
extensions = [fan_out, expiring("update_ids", "presence")]
app = create_app("stream", routes, extensions=extensions)
