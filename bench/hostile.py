"""Hostile foreign documents for `make abuse`: what anyone who can write to MongoDB might put in `updates`, and the
check that nothing of it reaches a client. Every forged value carries FORGED, so a frame or a history item that
holds it, or that is not an update's wire shape, is hostile."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from shared.db import SHOWS
from shared.updates import MAX_TEXT
from shared.usernames import is_username

FORGED = "FORGED"
HUGE = 2 << 20  # characters: far past MAX_TEXT, well within MongoDB's 16 MB a document
WIRE = {"seq", "show", "title", "text", "author", "created_at", "edited_at", "personal"}


def breaking(created_at: datetime) -> list[dict[str, Any]]:
    """Documents that break a rule of an update's shape, each one: the stream service rejects them."""
    good = {"show": "flash", "text": "hostile", "author": "mallory", "created_at": created_at}
    return [
        {**good, "author": f"<b>{FORGED}</b>"},  # not a username
        {**good, "author": FORGED * 1000},
        {**good, "text": FORGED + "x" * HUGE},
        {**good, "text": {FORGED: 1}},
        {**good, "show": [FORGED]},
        {**good, "show": FORGED},  # not in the catalogue
        {**good, "author": ["mallory", FORGED]},
        {**good, "created_at": FORGED},
        {**good, "text": f"{FORGED}\x1b[2J"},  # a control character
    ]


def shaped(created_at: datetime) -> list[dict[str, Any]]:
    """Documents that are updates but for fields that are not the writer's to say: delivered, with the catalogue's
    title and without the extras."""
    good = {"show": "flash", "text": "hostile but shaped", "author": "mallory", "created_at": created_at}
    return [{**good, "title": f"{FORGED} title"}, {**good, FORGED: "x" * HUGE, "trace": FORGED}]


def hostile(item: dict[str, Any]) -> bool:
    """Whether an update as a client got it (a frame's data, a history item) carries anything a writer forged."""
    return (
        FORGED in json.dumps(item)
        or not set(item) <= WIRE
        or SHOWS.get(item.get("show", "")) != item.get("title")
        or not is_username(item.get("author"))
        or not isinstance(item.get("text"), str)
        or len(item["text"]) > MAX_TEXT
    )


def updates_in(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The updates of an SSE body's lines: the data of each `update` event."""
    found, event = [], "message"
    for line in lines:
        if line.startswith("event:"):
            event = line.partition(":")[2].strip()
        elif line.startswith("data:") and event == "update":
            found.append(json.loads(line.partition(":")[2]))
        elif not line:
            event = "message"
    return found
