"""Two ingest processes, as docker-compose can run them, sharing one counter: seq stays unique and gapless."""

from __future__ import annotations

import asyncio

import httpx

from dev.processes import ServiceProcess
from shared.db import Database
from shared.settings import Settings
from tests.support.http import async_client


async def test_concurrent_publishes_through_two_processes_get_distinct_gapless_seqs(
    alice: httpx.AsyncClient, settings: Settings, db: Database
) -> None:
    token = (await alice.post("/api/me/tokens", json={"name": "two processes"})).json()["token"]
    first, second = ServiceProcess("services.ingest.app", settings), ServiceProcess("services.ingest.app", settings)
    await asyncio.gather(asyncio.to_thread(first.start), asyncio.to_thread(second.start))  # each waits for /readyz
    try:
        headers = {"authorization": f"Bearer {token}"}
        async with async_client(headers=headers, timeout=20) as http:
            responses = await asyncio.gather(*(
                http.post(f"{(first, second)[i % 2].url}/api/updates", json={"show": "flash", "text": f"update {i}"})
                for i in range(50)
            ))  # fmt: skip
    finally:
        first.stop()
        second.stop()
    assert [response.status_code for response in responses] == [201] * 50
    assert sorted(response.json()["seq"] for response in responses) == list(range(1, 51))
    stored = await db.updates.find({}, {"_id": 0, "seq": 1, "text": 1}).sort("seq", 1).to_list()
    assert sorted(update["text"] for update in stored) == sorted(f"update {i}" for i in range(50))


async def test_two_processes_share_one_publishing_limit_per_author(
    alice: httpx.AsyncClient, settings: Settings
) -> None:
    token = (await alice.post("/api/me/tokens", json={"name": "two processes"})).json()["token"]
    limit = {"PUBLISHES_PER_AUTHOR": "4", "PUBLISH_WINDOW": "3600"}
    first, second = (ServiceProcess("services.ingest.app", settings, **limit) for _ in range(2))
    await asyncio.gather(asyncio.to_thread(first.start), asyncio.to_thread(second.start))
    try:
        async with async_client(headers={"authorization": f"Bearer {token}"}, timeout=20) as http:
            statuses = [
                (await http.post(f"{process.url}/api/updates", json={"show": "flash", "text": "x"})).status_code
                for process in (first, second) * 4
            ]
    finally:
        first.stop()
        second.stop()
    assert statuses == [201] * 4 + [429] * 4
