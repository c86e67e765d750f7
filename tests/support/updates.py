"""Updates in tests: published over the API as a user would, or written straight into MongoDB with a chosen seq or
as a watch rule writes them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx

from shared.db import SHOWS, Database, next_seq, utcnow
from shared.updates import numbered, update_document


def stored_update(
    seq: int, show: str = "flash", text: str = "", author: str = "test", created_at: datetime | None = None
) -> dict[str, Any]:
    """An update as ingest stores it, for writing straight into MongoDB with a chosen seq."""
    text, created_at = text or f"update {seq}", created_at or utcnow()
    update = update_document(show=show, title=SHOWS[show], text=text, author=author, created_at=created_at)
    numbered([update], seq)
    return update


def personal_update(seq: int, recipient: str, text: str = "", created_at: datetime | None = None) -> dict[str, Any]:
    """A personal update as gossip.toml's `orders` rule makes one for the user whose _id is `recipient`, with a
    chosen seq."""
    update = update_document(show="orders", title="Your orders", text=text or f"update {seq}", author="orders",
                             created_at=created_at or utcnow(), recipient=recipient)  # fmt: skip
    numbered([update], seq)
    return update


async def addressed(db: Database, recipient: str, text: str, topic: str = "orders") -> dict[str, Any]:
    """A personal update stored as the rule stores it, with the next seq; of another personal rule's `topic` (which
    may be named as a show of the catalogue is)."""
    update = {**personal_update(await next_seq(db), recipient, text), "show": topic}
    await db.updates.insert_one(update)
    return update


class TopicReads:
    """How many times a service read a user's personal topics (`personal_topics`, each read its queries) while the
    test watched: the real reads, counted where the service's modules call them (monkeypatched in by the test; the
    server runs in the test's process, tests/support/servers.py). Not PyMongo's command monitoring: a listener
    registered for every client makes PyMongo draw request ids from `random`, which Hypothesis's tests beside it
    (Schemathesis, the fuzzer) then report as randomness inside their strategies."""

    def __init__(self, read: Callable[[Database, str], Awaitable[dict[str, str]]]) -> None:
        self.read, self.count = read, 0

    async def __call__(self, db: Database, user_id: str) -> dict[str, str]:
        self.count += 1
        return await self.read(db, user_id)


async def publish(http: httpx.AsyncClient, show: str, text: str) -> dict[str, Any]:
    response = await http.post("/api/updates", json={"show": show, "text": text})
    assert response.status_code == 201, response.text
    return response.json()
