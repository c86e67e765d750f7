"""The update as stored: its _id, its checks and its wire shape, as pure logic; and who may see it, in every query
that reads updates, against the real server."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring

from shared.db import MAX_INT, SHOWS, Database, ensure_indexes
from shared.settings import Settings
from shared.updates import (
    COUNT_CAP,
    MAX_TEXT,
    NO_CONTROL,
    NOT_BLANK,
    any_before,
    between,
    cut,
    digest,
    every_viewers,
    history,
    numbered,
    personal_topics,
    recent,
    sees,
    seq_in_id,
    shown,
    since_read,
    titled,
    unread,
    update_document,
    update_id,
    why_text_refused,
    why_undeliverable,
    wire,
)
from tests.support.updates import personal_update, stored_update

CREATED = datetime(2026, 11, 24, 10, 0, 0, 123000, tzinfo=UTC)

CONTROL = "no control characters but tabs and line breaks"


@pytest.mark.parametrize("seq", [1, 1042, MAX_INT])
def test_an_updates_id_holds_its_seq_and_its_time(seq: int) -> None:
    made = update_id(seq, CREATED)
    assert seq_in_id(made) == seq
    assert made.generation_time == CREATED.replace(microsecond=0)


def test_other_ids_hold_no_seq_of_ours() -> None:
    assert seq_in_id("a string id") is None and seq_in_id(1042) is None
    assert seq_in_id(ObjectId()) != 1  # a driver's ObjectId: random bytes where the seq would be


def test_the_digest_tells_texts_apart() -> None:
    assert digest("Barry is back") == digest("Barry is back") != digest("Barry is back!")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"show": "no_such_show"}, "show"),
        ({"show": 7}, "show"),
        ({"text": ""}, "text"),
        ({"text": "   "}, "text"),
        ({"text": 42}, "text"),
        ({"text": "x" * 1001}, "text"),
        ({"author": None}, "author"),
        ({"author": "<script>alert(1)</script>"}, "author"),
        ({"author": "al"}, "author"),
        ({"author": "a" * 33}, "author"),
        ({"author": "dba\n"}, "author"),
        ({"created_at": "last tuesday"}, "created_at"),
        ({"edited_at": 17}, "edited_at"),
    ],
)
def test_a_document_that_cannot_be_an_update_says_why(change: dict[str, Any], why: str) -> None:
    assert why_undeliverable(stored_update(1), SHOWS) is None
    found = why_undeliverable({**stored_update(1), **change}, SHOWS)
    assert found is not None and found.startswith(why)


def test_a_document_without_a_required_field_says_which() -> None:
    for field in ("show", "text", "author", "created_at"):
        update = stored_update(1)
        del update[field]
        found = why_undeliverable(update, SHOWS)
        assert found is not None and found.startswith(field)


def test_what_is_shown_leaves_out_documents_of_a_wrong_shape() -> None:
    good, bad_seq, bad_text = stored_update(1), {**stored_update(2), "seq": "2"}, {**stored_update(3), "text": None}
    gone = {**stored_update(4), "show": "no_longer_shown"}
    assert shown([good, bad_seq, bad_text, gone], SHOWS) == [good]


def test_the_title_shown_is_the_catalogues_whatever_the_document_holds() -> None:
    wrong, untitled = {**stored_update(1), "title": "<b>Free prizes</b>"}, stored_update(2)
    del untitled["title"]
    assert [update["title"] for update in shown([wrong, untitled], SHOWS)] == ["The Flash", "The Flash"]


def test_an_edited_update_carries_its_edit_time_on_the_wire() -> None:
    assert "edited_at" not in wire(stored_update(1))
    edited = wire({**stored_update(1), "edited_at": {"$date": "2026-11-24T10:00:00.123Z"}})
    assert edited["edited_at"] == "2026-11-24T10:00:00.123Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "required"), (" \t\u3000\x1c", "required"), ("x" * MAX_TEXT, None), ("\u200b", None),
     ("x" * (MAX_TEXT + 1), f"at most {MAX_TEXT:,} characters (this is {MAX_TEXT + 1:,})"),
     ("two\nlines\r\n\tand a tab", None), ("a\x00b", CONTROL), ("\x1b[31mred", CONTROL), ("del\x7f", CONTROL),
     ("\x9b31mred", CONTROL), ("next\x85line", None)],
)  # fmt: skip
def test_text_is_required_and_bounded_and_has_no_control_characters(text: str, expected: str | None) -> None:
    assert why_text_refused(text) == expected


def test_the_document_refuses_the_same_control_characters() -> None:
    pattern = jsonschema_rs.validator_for({"type": "string", "pattern": NO_CONTROL.pattern})
    for char in map(chr, range(0x100)):
        assert pattern.is_valid(f"a{char}b") == (why_text_refused(f"a{char}b") != CONTROL), hex(ord(char))


def test_blank_is_what_python_calls_whitespace_and_the_document_means_the_same() -> None:
    blank = [chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace()]
    assert [char for char in map(chr, range(sys.maxunicode + 1)) if not NOT_BLANK.search(char)] == blank
    pattern = jsonschema_rs.validator_for({"type": "string", "pattern": NOT_BLANK.pattern})
    for char in [*blank, "\ufeff", "\u200b", "\x1b", "a"]:
        assert pattern.is_valid(char) == (not char.isspace()), hex(ord(char))


async def test_reads_for_clients_take_only_the_wire_fields_of_a_document(db: Database) -> None:
    await db.updates.insert_one({**stored_update(1), "author_id": "u1", "blob": "x" * 100_000})
    (first,), (newest,) = await history(db, None, None), await recent(db, None, None, 10)
    assert set(first) == set(newest) == {"seq", "show", "title", "text", "author", "created_at"}


class Queries(monitoring.CommandListener):
    """What a client asks of the server and how many documents come back: PyMongo's own command monitoring."""

    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []
        self.returned = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        cursor = event.reply.get("cursor", {})
        self.returned += len(cursor.get("firstBatch", cursor.get("nextBatch", [])))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_an_unread_count_reads_a_bounded_number_of_documents_however_many_are_unread(
    settings: Settings, db: Database
) -> None:
    await ensure_indexes(db)
    await db.updates.insert_many([stored_update(seq, author="bob") for seq in range(1, 20_001)])
    queries = Queries()
    watched = AsyncMongoClient(settings.mongo_url, event_listeners=[queries])
    try:
        assert await unread(watched[settings.mongo_db], ["flash"], {"_id": "a", "username": "alice"}, 0) == COUNT_CAP
    finally:
        await watched.close()
    asked = [command for command in queries.commands if command.keys() & {"find", "aggregate", "count"}]
    assert len(asked) == 2  # the followed shows' updates, and the user's personal ones
    assert all("find" in one and 0 < one["limit"] <= COUNT_CAP for one in asked) and queries.returned <= COUNT_CAP
    for one in asked:  # the embedded server scans the whole collection for a $type or an $or (docs/mongodb.md)
        assert "$type" not in str(one["filter"]) and "$or" not in str(one["filter"])
        explained = await db.command("explain", {"find": "updates", "filter": one["filter"], "limit": one["limit"]})
        if "executionStats" in explained:  # MongoDB says what it read; the embedded server does not
            assert explained["executionStats"]["totalDocsExamined"] <= 2 * COUNT_CAP


async def test_every_reader_shows_a_personal_update_to_its_recipient_alone(db: Database) -> None:
    """Each query reader, for the recipient, for another user and for nobody; bypassing `visible_to` in any of them
    fails here."""
    await db.updates.insert_many(
        [stored_update(1), personal_update(2, "alice_id"), stored_update(3), personal_update(4, "bob_id")]
    )
    alice, bob = {"_id": "alice_id", "username": "alice"}, {"_id": "bob_id", "username": "bob"}
    for shows in (None, ["flash"]):
        seqs = [[u["seq"] for u in await history(db, shows, who)] for who in ("alice_id", "carol_id", None)]
        assert seqs == [[1, 2, 3], [1, 3], [1, 3]]
        assert [u["seq"] for u in await recent(db, shows, "alice_id", 10)] == [3, 2, 1]
        assert [u["seq"] for u in await recent(db, shows, "carol_id", 10)] == [3, 1]
        assert [u["seq"] for u in await since_read(db, shows, "bob_id", 0, 1, 10)] == [4, 3, 1]
        assert await between(db, shows, "alice_id", 0, 4) == 3 and await between(db, shows, None, 0, 4) == 2
        assert await cut(db, shows, "bob_id", 0, 4, 1) == 3 and await cut(db, shows, "carol_id", 0, 4, 1) == 1
        assert await any_before(db, shows, "alice_id", 3) and not await any_before(db, shows, "carol_id", 1)
    assert await any_before(db, ["flash"], "alice_id", 3)  # her own, though she follows only flash: seq 2
    assert await unread(db, ["flash"], alice, 0) == 3 and await unread(db, ["flash"], bob, 0) == 3
    assert await unread(db, ["flash"], {"_id": "carol_id", "username": "carol"}, 0) == 2
    everyone = await every_viewers(db, ["flash"], 0, 10, 4)
    assert [u["seq"] for u in everyone if sees("alice_id", u.get("recipient"))] == [1, 2, 3]
    assert [u["seq"] for u in everyone if sees(None, u.get("recipient"))] == [1, 3]


async def test_a_muted_topics_personal_updates_are_left_out_of_notifications_and_the_count_not_all_notifs(
    db: Database,
) -> None:
    """Alice muted her orders: the readers of Notifications (her heard shows) and her unread count leave them out,
    her invoices still in; All Notifs (every show) lists them. The digest's `topics` is its own choice."""
    invoice = {**personal_update(4, "alice_id"), "show": "invoices", "title": "Your invoices"}
    await db.updates.insert_many([stored_update(1), personal_update(2, "alice_id"), stored_update(3), invoice])
    alice, muted = {"_id": "alice_id", "username": "alice"}, ["orders"]
    assert [u["seq"] for u in await since_read(db, ["flash"], "alice_id", 0, 1, 10, muted)] == [4, 3, 1]
    assert [u["seq"] for u in await recent(db, ["flash"], "alice_id", 10, None, muted)] == [4, 3, 1]
    assert [u["seq"] for u in await recent(db, None, "alice_id", 10, None, muted)] == [4, 3, 2, 1]
    assert not await any_before(db, [], "alice_id", 3, muted) and await any_before(db, [], "alice_id", 3)
    assert await unread(db, ["flash"], alice, 0, muted=muted) == 3 and await unread(db, ["flash"], alice, 0) == 4
    assert await unread(db, [], alice, 0, topics=["orders"], muted=muted) == 1


async def test_a_users_personal_topics_are_those_of_the_updates_addressed_to_them(db: Database) -> None:
    invoice = {**personal_update(5, "alice_id"), "show": "invoices", "title": "Your invoices"}
    renamed = {**personal_update(6, "alice_id"), "title": "Your orders, renamed"}
    rejected = {**personal_update(7, "alice_id"), "show": "refunds", "rejected": "a test"}
    returns = {**personal_update(4, "bob_id"), "show": "returns"}
    ordered = [stored_update(1), personal_update(2, "alice_id"), personal_update(3, "bob_id"), returns, invoice]
    await db.updates.insert_many([*ordered, renamed, rejected])
    assert await personal_topics(db, "alice_id") == {"orders": "Your orders, renamed", "invoices": "Your invoices"}
    assert await personal_topics(db, "bob_id") == {"returns": "Your orders", "orders": "Your orders"}
    assert await personal_topics(db, "carol_id") == {}


HOSTILE_TOPICS = ["a.b", "$x", "x.$y", "", "z" * 500, "émission", "<script>alert(1)</script>", "Orders", "or"]


@pytest.mark.parametrize("topic", HOSTILE_TOPICS)
def test_a_personal_update_whose_topic_is_no_slug_cannot_be_delivered(topic: str) -> None:
    """Its topic would key the user's preferences (`preferences.shows.<topic>`): the stream rejects it, as it
    rejects any other document it cannot use, and every reader leaves it out."""
    hostile, order = {**personal_update(2, "alice_id"), "show": topic}, personal_update(3, "alice_id")
    why = why_undeliverable(hostile, SHOWS)
    assert why is not None and why.startswith("show: ") and len(why) < 200
    assert why_undeliverable(order, SHOWS) is None and shown([hostile, order], SHOWS) == [titled(order, {})]


async def test_a_users_personal_topics_pass_over_a_show_that_is_no_slug(db: Database) -> None:
    """Before the stream service rejects such a document (or while none runs) it is already no topic of the user's,
    and does not hide the topics of older updates."""
    hostile = [{**personal_update(seq, "alice_id"), "show": topic} for seq, topic in enumerate(HOSTILE_TOPICS, 3)]
    invoice = {**personal_update(2, "alice_id"), "show": "invoices", "title": "Your invoices"}
    await db.updates.insert_many([personal_update(1, "alice_id"), invoice, *hostile])
    assert await personal_topics(db, "alice_id") == {"invoices": "Your invoices", "orders": "Your orders"}


def test_a_personal_update_says_so_on_the_wire_and_never_whom_it_is_for() -> None:
    order = personal_update(2, "alice_id")
    shown_update = wire(order)
    assert shown_update["personal"] is True and "recipient" not in shown_update
    assert "personal" not in wire(stored_update(1))
    assert why_undeliverable(order, SHOWS) is None  # its topic is its rule's, not the catalogue's
    assert why_undeliverable({**order, "recipient": 7}, SHOWS) == "recipient: a user's _id, as text"
    assert why_undeliverable({**stored_update(1), "show": "orders"}, SHOWS) == "show: 'orders' is not in the catalogue"


def test_a_numbered_update_holds_its_seq_in_its_id_unless_another_program_gave_it_one() -> None:
    when = datetime(2026, 12, 1, tzinfo=UTC)
    published = update_document(show="flash", title="The Flash", text="hi", author="ann", created_at=when)
    foreign = update_document(show="flash", title=None, text="yo", author="bob", created_at=when, _id="theirs")
    numbered([published, foreign], 42)
    assert (published["seq"], foreign["seq"]) == (41, 42)
    assert (seq_in_id(published["_id"]), foreign["_id"]) == (41, "theirs")
    assert published["announced"] == digest("hi") and "title" not in foreign
