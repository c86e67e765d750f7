"""The stream service when things go wrong: the database restarts, the service itself is stopped."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dev.embedded import EmbeddedMongo
from dev.processes import ServiceProcess
from services.all import app as gossip
from services.auth.accounts import user_document
from shared.auth import open_session
from shared.db import Database, next_seq
from shared.settings import Settings
from tests.support.accounts import registered
from tests.support.http import async_client
from tests.support.servers import LiveServer, gauge
from tests.support.sse import events
from tests.support.updates import publish, stored_update
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
            async_client(base_url=stream.url, cookies={"gossip_session": cookie}, limits=limits) as http,
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


async def test_a_feed_moved_to_a_lagging_stream_process_misses_nothing_and_gets_nothing_twice(
    alice: httpx.AsyncClient, settings: Settings, db: Database
) -> None:
    """A browser reconnects, with its Last-Event-ID, to another stream process whose change stream is behind the one
    it left. That process is paused (SIGSTOP) while an update that follows a hole is delivered by the first; resumed,
    it holds that update for its gap wait, so the browser arrives while it lags. The update is not sent again, and
    what comes after arrives once."""
    await alice.put("/api/me/follows/flash")
    with ServiceProcess("services.stream.app", settings) as lagging:
        assert lagging.process is not None
        async with events(alice) as first:
            before = await publish(alice, "flash", "both processes have this")
            assert await first.updates(1) == [before]
            os.kill(lagging.process.pid, signal.SIGSTOP)
            try:
                await next_seq(db)  # a hole: the update after it waits out each process's gap wait
                late = stored_update(await next_seq(db))
                await db.updates.insert_one(late)
                (seen,) = await first.updates(1)
                assert seen["seq"] == late["seq"]
            finally:
                os.kill(lagging.process.pid, signal.SIGCONT)
        async with (
            async_client(base_url=lagging.url, cookies=alice.cookies, timeout=10) as moved,
            events(moved, **{"last-event-id": str(late["seq"])}) as second,
        ):
            after = await publish(alice, "flash", "after the move")
            assert await second.updates(1) == [after]
