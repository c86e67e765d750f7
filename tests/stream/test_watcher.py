"""The watcher's sweep against the real server, with publishers that commit between its reads."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

from pymongo import AsyncMongoClient, MongoClient, monitoring

from services.stream.hub import Feed, Hub
from services.stream.watcher import BATCH, Watcher
from shared.auth import Caller
from shared.catalogue import Catalogue
from shared.db import seed_shows
from shared.settings import Settings
from tests.support.updates import stored_update
from tests.support.waiting import wait_until


class SteadyPublishers(monitoring.CommandListener):
    """Commits the next update each time a read of `updates` in seq order has been answered, up to `most`: publishers
    that keep pace with the reader, whatever its speed."""

    def __init__(self, settings: Settings, first: int, most: int) -> None:
        self.client: MongoClient[dict[str, Any]] = MongoClient(settings.mongo_url)
        self.updates = self.client[settings.mongo_db].updates
        self.next_seq, self.most = first, most
        self.reads = 0
        self._asked: set[int] = set()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command.get("sort") == {"seq": 1}:
            self._asked.add(event.request_id)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.request_id in self._asked:
            self._asked.discard(event.request_id)
            self.reads += 1
            if self.reads <= self.most:
                self.updates.insert_one(stored_update(self.next_seq))
                self.next_seq += 1

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._asked.discard(event.request_id)


@contextlib.asynccontextmanager
async def watched(
    settings: Settings, first: int, most: int, **options: float
) -> AsyncIterator[tuple[Watcher, Feed, SteadyPublishers]]:
    """A watcher whose reads the publishers see, and a feed following flash; its change streams open on start()."""
    publishers = SteadyPublishers(settings, first, most)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url, event_listeners=[publishers])
    try:
        hub = Hub()
        feed = hub.open(Caller("u1", "una", "s1"), ["flash"], max_frames=2 * BATCH)
        db = client[settings.mongo_db]
        await seed_shows(db)
        await db.sessions.insert_one({"_id": "s1"})  # else the sessions stream, opening, ends the feed as revoked
        yield Watcher(db, hub, Catalogue(db), **options), feed, publishers
    finally:
        publishers.client.drop_database(settings.mongo_db)
        publishers.client.close()
        await client.close()


async def sent_ids(feed: Feed) -> list[int]:
    feed.end()
    sent = b"".join([chunk async for chunk in feed.frames()])
    return [int(seq) for seq in re.findall(rb"^id: (\d+)$", sent, re.MULTILINE)]


async def test_a_sweep_reads_once_while_publishers_keep_committing(settings: Settings) -> None:
    async with watched(settings, first=4, most=50) as (watcher, feed, publishers):
        publishers.updates.insert_many([stored_update(seq) for seq in (1, 2, 3)])
        await watcher.catch_up()
        assert publishers.reads == 1  # what commits during a sweep is the change stream's to deliver
        assert await sent_ids(feed) == [1, 2, 3]


async def test_what_commits_during_a_sweep_comes_once_through_the_open_stream(settings: Settings) -> None:
    async with watched(settings, first=4, most=1, sweep=60) as (watcher, feed, publishers):
        publishers.updates.insert_many([stored_update(seq) for seq in (1, 2, 3)])
        await watcher.start()  # its first sweep reads past 3, and seq 4 commits just after
        try:
            await wait_until(lambda: watcher.delivered == 4)
        finally:
            await watcher.stop()
        assert publishers.reads == 1
        assert await sent_ids(feed) == [4]


async def test_a_backlog_longer_than_a_batch_is_read_whole(settings: Settings) -> None:
    async with watched(settings, first=BATCH + 6, most=0) as (watcher, feed, publishers):
        publishers.updates.insert_many([stored_update(seq) for seq in range(1, BATCH + 6)])
        await watcher.catch_up()
        assert publishers.reads == 2
        assert await sent_ids(feed) == list(range(1, BATCH + 6))
