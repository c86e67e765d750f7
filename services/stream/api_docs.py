"""The stream service's feeds in the API document, each named in its route in app.py."""

from __future__ import annotations

from shared.db import MAX_INT
from shared.openapi import SESSION, operation, refusals
from shared.schemas import Schema, ref

SEQ: Schema = {"type": "integer", "minimum": 0, "maximum": MAX_INT}
RESUME = [
    {"name": "Last-Event-ID", "in": "header", "required": False, "schema": SEQ,
     "description": "Set by a reconnecting browser: the updates after it are replayed first, in order, then live "
                    "ones, none twice. Wins over `after`."},
    {"name": "after", "in": "query", "required": False, "schema": SEQ, "example": 0,
     "description": "The same, for a page that starts from the last update it showed; 0 replays the history."},
    {"name": "read", "in": "query", "required": False, "schema": SEQ, "example": 1042,
     "description": "The read mark (last_read_seq) the page shows. When it is not the user's, the feed starts with a "
                    "`read` event of the current mark, its count as of `after` (or Last-Event-ID), before the replay: "
                    "a mark made after the page was made and before its feed opened reached no feed of it."},
    {"name": "user", "in": "query", "required": False, "schema": {"type": "string"}, "example": "alice",
     "description": "The user the page was made for: 403 if the session is someone else's (the browser signed in "
                    "as another user since)."},
]  # fmt: skip


def _feed(summary: str) -> dict[str, object]:
    stream = {
        "description": "An endless Server-Sent Events stream: `retry:` on connect, a `: ping` comment now and then, "
                       "and the events below. Updates come replayed from the resume point first (after a `resync` if "
                       "it is too far back), then live, none twice; `follows` and `read` follow the user's changes "
                       "made anywhere. It ends when the session is revoked or runs out (`expired`), when the client "
                       "falls too far behind (it reconnects with Last-Event-ID and is replayed what it missed), or "
                       "when the server stops.",
        # Before OpenAPI 3.2 (and its itemSchema), the schema of an event stream is that of each of its events.
        "content": {"text/event-stream": {"schema": ref("FeedEvent")}},
    }  # fmt: skip
    refused = refusals(
        401,
        403,
        422,
        429,
        503,
        _403="The session is another user's than the one named in `user` (`other_user`).",
        _429="The user has as many live feeds as one may hold on this process, or has opened feeds faster than the "
        "limit allows.",
        _503="This process holds as many feeds as it can; another may not.",
    )
    return operation(summary, SESSION, {200: stream, **refused}, parameters=RESUME)


events = _feed("The caller's feed: updates of the shows they follow, and their own changes")
events_all = _feed("Every show's updates, and the caller's own changes")
