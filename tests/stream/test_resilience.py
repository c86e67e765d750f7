"""The stream service when things go wrong: the database restarts, the service itself is stopped."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dev.embedded import EmbeddedMongo
from dev.processes import ServiceProcess
from services.all import app as gossip
from services.auth.accounts import user_document
from shared.auth import open_session
from shared.db import Database
from shared.settings import Settings
from tests.support.accounts import registered
from tests.support.servers import LiveServer, gauge
from tests.support.sse import events
from tests.support.updates import publish
from tests.support.waiting import wait_until


@pytest.fixture
def own_mongo(tmp_path: Path) -> Iterator[EmbeddedMongo]:
    """A database of this test's own, since the test restarts it."""
    mongo = EmbeddedMongo(tmp_path / "mongo").start()
    yield mongo
    mongo.stop()


async def test_updates_after_a_database_restart_arrive_once(own_mongo: EmbeddedMongo, settings: Settings) -> None:
    live = LiveServer(gossip.create(dataclasses.replace(settings, mongo_url=own_mongo.url))).start()
    try:
        async with registered(live.url, "rita") as rita:
            await rita.put("/api/me/follows/flash")
            async with events(rita) as feed:
                before = await publish(rita, "flash", "before the restart")
                assert await feed.updates(1) == [before]
                own_mongo.stop()
                own_mongo.start()  # same port, same data; its change-stream resume tokens are gone
                after = [await publish(rita, "flash", f"after the restart {i}") for i in range(3)]
                assert await feed.updates(3, timeout=20) == after
                last = await publish(rita, "flash", "and nothing twice before this one")
                assert await feed.updates(1) == [last]
    finally:
        live.stop()


async def make_session(db: Database, settings: Settings, username: str) -> str:
    await db.users.insert_one(user := user_document(username, "", ["flash"]))
    return await open_session(db, settings, user["_id"], username)


async def test_shutdown_with_50_open_streams_is_prompt(settings: Settings, db: Database) -> None:
    cookie = await make_session(db, settings, "sam")
    with ServiceProcess("services.stream.app", settings) as stream:
        limits = httpx.Limits(max_connections=60)
        async with (
            httpx.AsyncClient(base_url=stream.url, cookies={"gossip_session": cookie}, limits=limits) as http,
            contextlib.AsyncExitStack() as stack,
        ):
            readers = [await stack.enter_async_context(events(http)) for _ in range(50)]
            await wait_until(lambda: gauge(stream.url, "gossip_stream_connections") >= 50)
            took = stream.stop()
            assert took < 4, stream.output()
            for reader in readers:
                with pytest.raises(EOFError):  # the stream ended cleanly, not cut off mid-chunk
                    await reader.next()
    assert "without completing response" not in stream.output()
