"""The real fixtures: the embedded MongoDB-protocol server once per run (or MONGO_URL), a fresh database per test,
and the app on a live uvicorn over a real socket."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pymongo
import pytest

from dev.embedded import EmbeddedMongo
from shared.db import Database, connect
from shared.settings import Settings
from tests.support.accounts import registered
from tests.support.http import async_client
from tests.support.servers import serving

HASH_WAIT = 30.0  # seconds a test's login may wait for a hashing turn
HASH_MEMORY = 1  # MiB per Argon2id hash: the same hashing at a 64th of the cost (tests/auth/test_passwords.py
# keeps the default where the time a hash takes matters)


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("MONGO_URL"):
        yield url
        return
    with EmbeddedMongo(tmp_path_factory.mktemp("mongo")) as mongo:
        yield mongo.url


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port where every connection is refused: bound, never listening, and held for the test, so that no
    server can start on it while the test counts on nothing answering there."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture(scope="session")
def mongo_client(mongo_url: str) -> Iterator[pymongo.MongoClient[dict[str, Any]]]:
    """The run's own client, for what the fixtures ask of the server: one connection for all the tests' drops."""
    with pymongo.MongoClient(mongo_url) as client:
        yield client


@pytest.fixture(scope="session")
def embedded_server(mongo_client: pymongo.MongoClient[dict[str, Any]]) -> bool:
    """Whether MONGO_URL's server is the embedded one (nx-27017), asked of the server itself: a separately started
    embedded server is still the embedded server."""
    return bool(mongo_client.admin.command("buildInfo").get("process") == "nx_27017")


@pytest.fixture(autouse=True)
def _server_kind(request: pytest.FixtureRequest) -> None:
    """A test marked `embedded` checks a workaround for a difference of the embedded server, and one marked `mongodb`
    the behaviour MongoDB has instead (docs/mongodb.md): each is skipped on the other server."""
    wanted = [mark.name for mark in request.node.iter_markers() if mark.name in ("embedded", "mongodb")]
    if wanted and (wanted[0] == "embedded") != request.getfixturevalue("embedded_server"):
        pytest.skip(f"needs {'the embedded server' if wanted[0] == 'embedded' else 'MongoDB'}")


@pytest.fixture
def settings(mongo_url: str, mongo_client: pymongo.MongoClient[dict[str, Any]], tmp_path: Path) -> Iterator[Settings]:
    """A database of the test's own, dropped after it whether the test asked for `db` or not: the embedded server
    keeps 100 databases open and closes the least used beyond that, which a run of this many tests reached. Mail
    without an SMTP_URL goes to the test's own folder. A login waits up to HASH_WAIT for a hashing turn: generous
    here, since a busy machine's hash can take a second or more, and the test of the 503 sets its own. A hash takes
    HASH_MEMORY: a login or registration in every other test does not need the cost that slows a guesser down."""
    settings = Settings(
        secret_key="test-secret-" + uuid.uuid4().hex,
        mongo_url=mongo_url,
        mongo_db=f"test_{uuid.uuid4().hex[:12]}",
        ping_interval=1.0,
        send_timeout=2.0,
        hash_wait=HASH_WAIT,
        hash_memory=HASH_MEMORY,
        mail_dir=tmp_path / "mail",
    )
    yield settings
    mongo_client.drop_database(settings.mongo_db)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    client = connect(settings.mongo_url)
    yield client[settings.mongo_db]
    await client.close()  # the settings fixture drops the database


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    """All three services' routes on one live uvicorn, as `make run` serves them."""
    with serving(settings) as url:
        yield url


@pytest.fixture
async def client(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with async_client(base_url=server, timeout=10) as http:
        yield http


@pytest.fixture
async def alice(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with registered(server, "alice") as http:
        yield http
