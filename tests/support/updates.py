"""Updates in tests: published over the API as a user would, or written straight into MongoDB with a chosen seq."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from shared.db import SHOWS, utcnow
from shared.updates import numbered, update_document


def stored_update(
    seq: int, show: str = "flash", text: str = "", author: str = "test", created_at: datetime | None = None
) -> dict[str, Any]:
    """An update as ingest stores it, for writing straight into MongoDB with a chosen seq."""
    text, created_at = text or f"update {seq}", created_at or utcnow()
    update = update_document(show=show, title=SHOWS[show], text=text, author=author, created_at=created_at)
    numbered([update], seq)
    return update


async def publish(http: httpx.AsyncClient, show: str, text: str) -> dict[str, Any]:
    response = await http.post("/api/updates", json={"show": show, "text": text})
    assert response.status_code == 201, response.text
    return response.json()
