"""What create_app gives every service (shared/app.py), over real HTTP: liveness, and readiness that follows the
database."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from dev.embedded import EmbeddedMongo
from services.auth import app as auth
from shared.app import create_app
from shared.settings import Settings
from tests.support.accounts import json_error
from tests.support.memory import alive, collector_off
from tests.support.servers import LiveServer
from tests.support.waiting import wait_until


async def test_readyz_is_503_while_the_database_is_down_and_200_once_it_is_back(
    settings: Settings, tmp_path: Path
) -> None:
    with EmbeddedMongo(tmp_path / "mongo") as mongo:
        live = LiveServer(create_app("auth", auth.routes, dataclasses.replace(settings, mongo_url=mongo.url))).start()
        try:
            async with httpx.AsyncClient(base_url=live.url, timeout=15) as http:
                assert (await http.get("/readyz")).json() == {"status": "ready"}
                mongo.stop()
                assert json_error(await http.get("/readyz")) == (503, "unavailable", {})
                assert (await http.get("/healthz")).json() == {"status": "ok"}  # alive all the same
                mongo.start()
                await wait_until(lambda: _ready(http), timeout=15)
        finally:
            live.stop()


async def _ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200


async def test_a_request_is_freed_as_it_ends_not_left_for_the_collector(server: str) -> None:
    """uvicorn's request cycle and the scope it holds are freed as the request ends: nothing the app keeps of a
    request (the server's `send` or `receive`, both methods of the cycle) may make every request a cycle for the
    collector, which a busy process runs rarely."""
    with collector_off():
        for _ in range(10):
            async with httpx.AsyncClient(base_url=server) as http:  # a connection each, closed after
                assert (await http.get("/healthz")).status_code == 200
        await wait_until(lambda: alive(RequestResponseCycle) == 0, timeout=5, interval=0.2)
