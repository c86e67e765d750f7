"""Updates in tests: published over the API as a user would, or written straight into MongoDB with a chosen seq."""

from __future__ import annotations

from typing import Any

import httpx

from shared.db import utcnow


def stored_update(seq: int, show: str = "flash", text: str = "", author: str = "test") -> dict[str, Any]:
    """An update as ingest stores it, for writing straight into MongoDB with a chosen seq."""
    return {"seq": seq, "show": show, "title": "The Flash", "text": text or f"update {seq}", "author": author,
            "created_at": utcnow()}  # fmt: skip


async def publish(http: httpx.AsyncClient, show: str, text: str) -> dict[str, Any]:
    response = await http.post("/api/updates", json={"show": show, "text": text})
    assert response.status_code == 201, response.text
    return response.json()
