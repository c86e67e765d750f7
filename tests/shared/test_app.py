"""What create_app gives every service (shared/app.py), over real HTTP: liveness, and readiness that follows the
database."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from dev.embedded import EmbeddedMongo
from services.auth import app as auth
from shared.app import create_app
from shared.settings import ROOT, Settings
from tests.support.accounts import json_error
from tests.support.http import async_client
from tests.support.servers import LiveServer
from tests.support.waiting import wait_until


async def test_readyz_is_503_while_the_database_is_down_and_200_once_it_is_back(
    settings: Settings, tmp_path: Path
) -> None:
    with EmbeddedMongo(tmp_path / "mongo") as mongo:
        live = LiveServer(create_app("auth", auth.routes, dataclasses.replace(settings, mongo_url=mongo.url))).start()
        try:
            async with async_client(base_url=live.url, timeout=15) as http:
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


@pytest.mark.parametrize("service", ["ingest", "stream"])
def test_a_service_that_hashes_no_password_and_sends_no_push_loads_neither(service: str) -> None:
    """What one service uses is its own (Argon2 and its test hash, the VAPID key): the others never load it."""
    code = f"import sys, services.{service}.app; print(*(m for m in ('argon2', 'py_vapid') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout.strip()) == (0, ""), result.stderr
