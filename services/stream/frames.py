"""The SSE wire format, encoded once per update and shared as the same bytes by every feed that carries it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from shared.db import iso_utc
from shared.updates import wire

RETRY_MS = 2000
RETRY = f"retry: {RETRY_MS}\n\n".encode()
PING = b": ping\n\n"  # a comment line: keeps proxies and browsers from timing the connection out


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def update_frame(update: dict[str, Any]) -> bytes:
    """`id` is the seq, so a reconnecting browser's Last-Event-ID says exactly where it stopped."""
    return f"id: {update['seq']}\nevent: update\ndata: {_json(wire(update))}\n\n".encode()


def event_frame(event: str, data: dict[str, Any]) -> bytes:
    """Any event but an update: no `id`, so that it never moves the browser's Last-Event-ID."""
    return f"event: {event}\ndata: {_json(data)}\n\n".encode()


def follows_frame(follows: Iterable[str]) -> bytes:
    return event_frame("follows", {"follows": sorted(follows)})


def preferences_frame(preferences: dict[str, Any]) -> bytes:
    """The user's preferences, all of them (as GET /api/me/preferences answers): pages leave muted shows and
    personal topics out."""
    return event_frame("preferences", preferences)


def read_frame(last_read_seq: int, unread: int) -> bytes:
    """The user's read mark and how many updates are unread as of the frames sent before this one: a page sets its
    badge to `unread` and counts on from there."""
    return event_frame("read", {"last_read_seq": last_read_seq, "unread": unread})


def resync_frame(after: int, resume: int, missed: int | None) -> bytes:
    """Sent first when a resume point is too far back: the updates in (after, resume] are not replayed; `missed` is
    how many the feed's shows had there, None when some are no longer kept."""
    return event_frame("resync", {"after": after, "resume": resume, "missed": missed})


EXPIRED = event_frame("expired", {})  # the session ended by age: the page stops reconnecting


def edit_frame(seq: int, text: str, edited_at: Any) -> bytes:
    """A stored update's new text: pages change the item in place."""
    return event_frame("edit", {"seq": seq, "text": text, "edited_at": iso_utc(edited_at)})


def retract_frame(seq: int) -> bytes:
    """A stored update deleted: pages remove the item."""
    return event_frame("retract", {"seq": seq})
