"""The watcher against the real server: its sweep, with publishers that commit between its reads; edits and
retractions made in MongoDB, reaching real feeds; and changes it cannot use."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient, MongoClient, monitoring

from services.stream.audience import Audience
from services.stream.changes import skipping
from services.stream.feed import Feed
from services.stream.frames import follows_frame
from services.stream.hub import Hub
from services.stream.watcher import BATCH, Watcher, text_changed, timed_by_writer
from shared.auth import Caller
from shared.catalogue import Catalogue
from shared.db import Database, as_datetime, seed_shows, utcnow
from shared.settings import Settings
from shared.updates import digest
from tests.support.sse import Event, EventReader, events
from tests.support.updates import publish, stored_update
from tests.support.waiting import wait_until


class AnyTime(str):
    """Equal to any timestamp in the wire format."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", other) is not None

    __hash__ = str.__hash__


ANY_TIME = AnyTime()
SECOND = timedelta(seconds=1)


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
        await db.sessions.insert_one({"_id": "s1", "expires_at": utcnow() + SECOND * 3600})  # else the feed is revoked
        yield Watcher(db, hub, Catalogue(db), **options), feed, publishers
    finally:
        publishers.client.drop_database(settings.mongo_db)
        publishers.client.close()
        await client.close()


async def sent_ids(feed: Feed) -> list[int]:
    sent = b"".join(iter(feed.take, None))  # an unserved feed queues all it is given
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


async def delivered(http: httpx.AsyncClient, feed: EventReader) -> dict[str, Any]:
    """An update published, once the feed has it: what comes next on the feed is what follows."""
    published = await publish(http, "flash", "Barry is back")
    assert await feed.updates(1) == [published]
    return published


async def test_an_update_one_on_the_text_reaches_an_open_feed_as_an_edit_without_an_id(
    alice: httpx.AsyncClient, db: Database
) -> None:
    async with events(alice, "/events/all") as feed:
        published = await delivered(alice, feed)
        await db.updates.update_one({"seq": published["seq"]}, {"$set": {"text": "Barry is back, again"}})
        edit = await feed.next()
        assert (edit.event, edit.id) == ("edit", None)  # Last-Event-ID still marks the newest update
        assert edit.json() == {"seq": published["seq"], "text": "Barry is back, again", "edited_at": ANY_TIME}
        await db.updates.update_one({"seq": published["seq"]}, {"$set": {"tag": "not the text"}})
        after = await publish(alice, "flash", "next")  # neither that write nor the edit's own mark was an edit
        assert await feed.next() == Event("update", json.dumps(after, separators=(",", ":")), str(after["seq"]))

    async def marked() -> bool:
        return "edited_at" in (await alice.get("/api/updates")).json()["items"][0]

    await wait_until(marked)
    (shown, _) = (await alice.get("/api/updates")).json()["items"]
    assert shown["text"] == "Barry is back, again"
    assert abs(as_datetime({"$date": shown["edited_at"]}) - as_datetime({"$date": edit.json()["edited_at"]})) < SECOND


async def test_a_replace_that_keeps_the_seq_is_an_edit_too(alice: httpx.AsyncClient, db: Database) -> None:
    async with events(alice, "/events/all") as feed:
        published = await delivered(alice, feed)
        stored = await db.updates.find_one({"seq": published["seq"]})
        assert stored is not None
        await db.updates.replace_one({"_id": stored["_id"]}, {**stored, "text": "replaced"})
        assert ((edit := await feed.next()).event, edit.json()["text"]) == ("edit", "replaced")


async def test_the_apis_edit_reaches_feeds_with_the_edit_time_it_answered(
    alice: httpx.AsyncClient, db: Database
) -> None:
    async with events(alice, "/events/all") as feed:
        published = await delivered(alice, feed)
        answered = await alice.patch(f"/api/updates/{published['seq']}", json={"text": "Barry is back!"})
        assert answered.status_code == 200, answered.text
        edit = await feed.next()
    assert edit.json() == {k: answered.json()[k] for k in ("seq", "text", "edited_at")}
    assert {**answered.json(), "text": "Barry is back", "edited_at": None} == {**published, "edited_at": None}


async def test_a_delete_one_reaches_every_open_feed_as_a_retraction(alice: httpx.AsyncClient, db: Database) -> None:
    await alice.put("/api/me/follows/flash")
    async with events(alice) as followed, events(alice, "/events/all") as everything:
        published = await publish(alice, "flash", "Barry is back")
        for feed in (followed, everything):
            await feed.updates(1)
        await db.updates.delete_one({"seq": published["seq"]})
        for feed in (followed, everything):
            assert await feed.next() == Event("retract", json.dumps({"seq": published["seq"]}).replace(" ", ""))
    assert (await alice.get("/api/updates")).json()["items"] == []


async def test_a_malformed_or_unexpected_change_is_logged_in_one_line_and_skipped(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gossip")
    async with watched(settings, first=1, most=0) as (watcher, _, _):
        for change in (
            {"operationType": "insert", "documentKey": {"_id": 1}},  # no fullDocument
            {"operationType": "insert", "documentKey": {"_id": 1}, "fullDocument": "not a document"},
            {"operationType": "delete"},  # no documentKey
            {"operationType": "drop"},
            {},
        ):
            await skipping("updates", watcher._on_update, change)
    assert len(caplog.records) == 5 and "Traceback" not in caplog.text
    assert all(record.getMessage().startswith("skipped a change on updates") for record in caplog.records)


def test_mongodbs_update_events_say_whether_the_text_changed_and_who_timed_it() -> None:
    """MongoDB's own update events, which the embedded server does not send: updateDescription decides, whatever
    the looked-up document (which may already hold the next write) says."""
    stamped = {**stored_update(1, text="new"), "edited_at": utcnow()}  # looked up after the edit's mark
    by_api = {"updateDescription": {"updatedFields": {"text": "new", "edited_at": utcnow()}, "removedFields": []}}
    by_hand = {"updateDescription": {"updatedFields": {"text": "new"}, "removedFields": []}}
    mark = {"updateDescription": {"updatedFields": {"announced": "…", "edited_at": utcnow()}, "removedFields": []}}
    assert text_changed(by_api, stamped) and timed_by_writer(by_api, stamped)
    assert text_changed(by_hand, stamped) and not timed_by_writer(by_hand, stamped)
    assert not text_changed(mark, stamped)


def test_without_updatedescription_the_text_is_compared_with_what_feeds_were_told() -> None:
    told = stored_update(1, text="told")
    assert not text_changed({"operationType": "replace"}, told)
    assert text_changed({"updateDescription": None}, {**told, "text": "changed by hand"})
    api = {key: value for key, value in told.items() if key != "announced"} | {"text": "new", "edited_at": utcnow()}
    assert text_changed({}, api) and timed_by_writer({}, api)
    assert not timed_by_writer({}, {**told, "text": "changed by hand", "edited_at": utcnow()})


async def test_logouts_made_while_no_stream_was_open_end_their_feeds_when_one_opens(db: Database) -> None:
    """What a reopened stream on `sessions` cannot tell: the sessions revoked while it was down."""
    hub = Hub()
    await db.sessions.insert_one({"_id": "kept", "user_id": "u2", "expires_at": utcnow() + timedelta(days=1)})
    revoked, kept = hub.open(Caller("u1", "una", "revoked"), ["flash"]), hub.open(Caller("u2", "bo", "kept"), None)
    watcher = Watcher(db, hub, Catalogue(db))
    await watcher.start()  # each stream's opening runs its resync
    try:
        assert (revoked.ended, kept.ended) == (True, False)
    finally:
        await watcher.stop()


async def test_follow_changes_made_while_no_stream_was_open_reach_their_feeds_when_one_opens(db: Database) -> None:
    hub = Hub()
    ends = utcnow() + timedelta(days=1)
    await seed_shows(db)  # the follows told are those of the catalogue
    await db.users.insert_many([{"_id": "u1", "username": "una", "follows": ["sherlock", "suits"]},
                                {"_id": "u2", "username": "bo", "follows": ["flash"]}])  # fmt: skip
    await db.sessions.insert_many([{"_id": "s1", "expires_at": ends}, {"_id": "s2", "expires_at": ends}])
    changed, same = hub.open(Caller("u1", "una", "s1"), ["flash"]), hub.open(Caller("u2", "bo", "s2"), ["flash"])
    watcher = Watcher(db, hub, Catalogue(db))
    await watcher.start()
    try:
        assert (changed.shows, same.shows) == ({"sherlock", "suits"}, {"flash"})
        assert hub.publish("suits", b"suits\n\n") == 1 and hub.publish("flash", b"flash\n\n") == 1
        told = await sent(changed)
        assert told.startswith(follows_frame(["sherlock", "suits"])) and told.endswith(b"suits\n\n")
        assert b"flash\n\n" not in told
    finally:
        await watcher.stop()


async def sent(feed: Feed) -> bytes:
    return b"".join(iter(feed.take, None))  # an unserved feed queues all it is given


def test_an_update_description_without_updated_fields_changed_neither_text_nor_time() -> None:
    told = {"text": "same", "announced": "whatever"}
    assert not text_changed({"updateDescription": {"removedFields": ["x"]}}, told)
    assert not timed_by_writer({"updateDescription": {"removedFields": ["x"]}}, told)


async def test_an_edit_by_another_writer_is_timed_by_its_change_and_told_to_its_shows_feeds(db: Database) -> None:
    hub = Hub()
    flash, sherlock = hub.open(Caller("u1", "una", "s1"), ["flash"]), hub.open(Caller("u2", "bo", "s2"), ["sherlock"])
    await db.updates.insert_one(update := {**stored_update(1, text="changed by hand"), "_id": "u-1"})
    committed = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    await Watcher(db, hub, Catalogue(db))._edited({"wallTime": committed}, update)
    edit = Event("edit", (await sent(flash)).split(b"data: ")[1].strip().decode())
    assert edit.json() == {"seq": 1, "text": "changed by hand", "edited_at": "2026-01-02T03:04:05.000Z"}
    assert await sent(sherlock) == b""
    stored = await db.updates.find_one({"_id": "u-1"})
    assert stored is not None and stored["announced"] == digest("changed by hand")  # told: not taken for an edit again


def test_a_session_end_that_is_not_a_date_is_logged_and_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    hub = Hub()
    feed = hub.open(Caller("u1", "una", "s1", expires_at=utcnow() + timedelta(days=1)), ["flash"])
    with caplog.at_level(logging.WARNING, logger="gossip.stream.audience"):
        Audience(None, hub, None, lambda: 0).session_ends("s1", {"expires_at": "tomorrow"})  # type: ignore[arg-type]
    assert caplog.messages == ["a session's end is not a date: 'tomorrow'"] and not feed.ended


def test_a_session_cut_short_ends_its_feeds_with_expired_at_once() -> None:
    hub = Hub()
    cut, other = (hub.open(Caller(f"u{i}", "una", f"s{i}", expires_at=utcnow() + timedelta(days=1)), None)
                  for i in (1, 2))  # fmt: skip
    ended = {"created_at": utcnow(), "expires_at": utcnow() - timedelta(seconds=1)}
    Audience(None, hub, None, lambda: 0).session_ends("s1", ended)  # type: ignore[arg-type]
    assert (cut.ended, other.ended) == (True, False)
