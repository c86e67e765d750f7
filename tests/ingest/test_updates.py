"""Publishing and history (services/ingest/updates.py) against the real embedded server, without HTTP: validation
before any seq is taken, the group commit of concurrent publishes, idempotency keys, pages. And its pure parts."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import DuplicateKeyError, OperationFailure

from services.ingest.updates import MAX_KEY, PAGE_DEFAULT, Updates, _write_error
from shared.auth import Caller
from shared.catalogue import Catalogue
from shared.db import MAX_INT, SHOWS, prepare, utcnow
from shared.errors import ApiError
from shared.limits import Buckets, Limit, Rate
from shared.settings import Settings
from shared.updates import update_id
from tests.support.updates import personal_update, stored_update

ALICE = Caller("u1", "alice")
BOB = Caller("u2", "bob")


class Commands(monitoring.CommandListener):
    """The commands a client sent, by name: what a group commit saves is round trips."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def commands() -> Commands:
    return Commands()


@pytest.fixture
async def updates(settings: Settings, commands: Commands) -> AsyncIterator[Updates]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url, event_listeners=[commands])
    db = client[settings.mongo_db]
    await prepare(db)
    publishing = Limit(Buckets(db), "publish", Rate(10_000, 60), "too fast")  # never reached here
    store = Updates(db, Catalogue(db, max_age=60), publishing)
    await store.catalogue.titles()  # read now, so that no publish below waits for it
    commands.sent.clear()
    yield store
    await client.drop_database(settings.mongo_db)
    await client.close()


def flash(text: str) -> dict[str, str]:
    return {"show": "flash", "text": text}


async def test_concurrent_publishes_share_one_seq_increment_and_one_insert(
    updates: Updates, commands: Commands
) -> None:
    published = await asyncio.gather(*(updates.publish(ALICE, flash(f"update {i}"), None) for i in range(6)))
    assert [update["seq"] for update in published] == [1, 2, 3, 4, 5, 6]  # in the order they were made
    assert (commands.sent["findAndModify"], commands.sent["insert"]) == (1, 1)
    assert await updates.db.updates.count_documents({}) == 6


async def test_what_is_published_is_what_clients_see_and_what_is_stored(updates: Updates) -> None:
    update = await updates.publish(ALICE, flash("Barry is back"), "key-1")
    assert set(update) == {"seq", "show", "title", "text", "author", "created_at"}
    assert (update["title"], update["author"]) == ("The Flash", "alice")
    stored = await updates.db.updates.find_one({"seq": update["seq"]})
    assert stored is not None
    assert (stored["author_id"], stored["idempotency_key"], stored["text"]) == ("u1", "key-1", "Barry is back")
    assert stored["_id"] == update_id(update["seq"], stored["created_at"])  # what a delete event maps back to a seq


async def test_every_problem_is_named_before_any_seq_is_taken(updates: Updates) -> None:
    with pytest.raises(ApiError) as refused:
        await updates.publish(ALICE, {"show": "nope", "text": " "}, "k" * (MAX_KEY + 1))
    assert (refused.value.status, set(refused.value.fields)) == (422, {"show", "text", "Idempotency-Key"})
    assert refused.value.detail.startswith("Invalid show: one of flash, ")  # a script reads what each field must be
    assert "; text: required; Idempotency-Key: 1 to 200 characters" in refused.value.detail
    assert all(isinstance(message, str) for message in refused.value.fields.values())
    assert await updates.db.counters.count_documents({}) == 0


async def test_keys_of_the_shortest_and_longest_length_are_taken(updates: Updates) -> None:
    assert (await updates.publish(ALICE, flash("long key"), "k" * MAX_KEY))["seq"] == 1
    assert (await updates.publish(ALICE, flash("short key"), "k"))["seq"] == 2


async def test_a_key_whose_update_was_retracted_refuses_only_its_own_retries(updates: Updates) -> None:
    retracted = await updates.publish(ALICE, flash("said too soon"), "spent")
    await updates.retract(ALICE, retracted["seq"])
    with pytest.raises(ApiError) as refused:
        await updates.publish(ALICE, flash("said too soon"), "spent")
    assert (refused.value.status, refused.value.error) == (409, "retracted")
    assert (await updates.publish(ALICE, flash("said too soon"), "fresh"))["text"] == "said too soon"
    assert (await updates.publish(BOB, flash("said too soon"), "spent"))["author"] == "bob"  # keys are per author


async def test_a_retracted_update_key_is_free_once_its_record_has_expired_though_still_stored(updates: Updates) -> None:
    retracted = await updates.publish(ALICE, flash("said too soon"), "spent")
    await updates.retract(ALICE, retracted["seq"])
    spent = await updates.db.spent_keys.find_one({})
    await updates.db.spent_keys.replace_one({"_id": spent["_id"]}, {**spent, "expires_at": utcnow()})
    assert (await updates.publish(ALICE, flash("said again"), "spent"))["text"] == "said again"
    assert await updates.db.spent_keys.count_documents({}) == 1


async def test_a_retry_answers_the_first_update_and_takes_no_seq(updates: Updates) -> None:
    first = await updates.publish(ALICE, flash("once"), "retry")
    assert await updates.publish(ALICE, flash("once"), "retry") == first
    assert (await updates.db.counters.find_one({"_id": "updates"}) or {})["seq"] == 1
    other = await updates.publish(BOB, flash("once"), "retry")  # keys are per author
    assert other["seq"] == 2


async def test_a_retry_after_an_edit_answers_the_update_as_it_is_now(updates: Updates) -> None:
    """The key stands for what was asked, not for what the update holds since."""
    first = await updates.publish(ALICE, flash("as asked"), "edited-later")
    await updates.edit(ALICE, first["seq"], "as edited")
    retried = await updates.publish(ALICE, flash("as asked"), "edited-later")
    assert (retried["seq"], retried["text"]) == (first["seq"], "as edited")


async def test_a_used_key_with_another_update_is_422_naming_the_key(updates: Updates) -> None:
    await updates.publish(ALICE, flash("once"), "key")
    for fields in (flash("twice"), {"show": "suits", "text": "once"}):
        with pytest.raises(ApiError) as refused:
            await updates.publish(ALICE, fields, "key")
        assert (refused.value.status, list(refused.value.fields)) == (422, ["Idempotency-Key"])


async def test_racing_retries_store_once_and_answer_alike(updates: Updates) -> None:
    """All pass the lookup before any is stored; the unique index refuses the others' inserts, and each of them
    answers what the first stored. The holes their seqs leave are the stream's to skip."""
    await updates.publish(ALICE, flash("an earlier one"), None)
    answers = await asyncio.gather(*(updates.publish(ALICE, flash("raced"), "race") for _ in range(3)))
    assert answers[0] == answers[1] == answers[2] and answers[0]["text"] == "raced"
    assert await updates.db.updates.count_documents({}) == 2


async def test_a_page_starts_after_its_seq_and_says_where_the_next_starts(updates: Updates) -> None:
    await updates.db.updates.insert_many(
        [stored_update(seq, show="flash" if seq % 2 else "suits") for seq in range(1, PAGE_DEFAULT + 3)]
    )
    first = await updates.page(ALICE.user_id, "", None, None)
    assert ([u["seq"] for u in first["items"]], first["next_after"]) == (list(range(1, PAGE_DEFAULT + 1)), 100)
    rest = await updates.page(ALICE.user_id, "", str(first["next_after"]), "1")
    assert ([u["seq"] for u in rest["items"]], rest["next_after"]) == ([PAGE_DEFAULT + 1], PAGE_DEFAULT + 1)
    flash_only = await updates.page(ALICE.user_id, "flash", "0", "3")
    assert [u["seq"] for u in flash_only["items"]] == [1, 3, 5] and "_id" not in flash_only["items"][0]
    assert await updates.page(ALICE.user_id, "flash", str(PAGE_DEFAULT + 2), None) == {
        "items": [],
        "next_after": PAGE_DEFAULT + 2,
    }


async def test_a_page_of_an_unknown_show_is_422(updates: Updates) -> None:
    with pytest.raises(ApiError) as refused:
        await updates.page(ALICE.user_id, "nope", None, None)
    assert refused.value.fields == {
        "show": "one of " + ", ".join(sorted(SHOWS)) + ", or a topic of your personal notifications"
    }


async def test_a_page_of_one_show_or_personal_topic_holds_its_updates_alone(updates: Updates) -> None:
    """A user's personal updates are in the pages of their own topic, not in every show's."""
    await updates.db.updates.insert_many(
        [stored_update(1, show="flash"), personal_update(2, ALICE.user_id), stored_update(3, show="suits")]
    )
    for show, seqs in (("flash", [1]), ("orders", [2]), ("", [1, 2, 3])):
        assert [u["seq"] for u in (await updates.page(ALICE.user_id, show, None, None))["items"]] == seqs
    with pytest.raises(ApiError) as refused:
        await updates.page("bob_id", "orders", None, None)  # no order of bob's: not a topic of his
    assert list(refused.value.fields) == ["show"]


def test_a_write_error_in_a_batch_is_raised_as_what_one_insert_would_raise() -> None:
    duplicate = _write_error({"index": 0, "code": 11000, "errmsg": "E11000 duplicate key"})
    assert isinstance(duplicate, DuplicateKeyError) and duplicate.code == 11000
    other = _write_error({"index": 1, "code": 121, "errmsg": "Document failed validation"})
    assert type(other) is OperationFailure and other.code == 121


async def test_one_refused_insert_in_a_batch_fails_that_publish_alone(updates: Updates) -> None:
    """Inserted unordered: the updates after a refused one in the batch are stored all the same."""
    await updates.publish(ALICE, flash("first"), "used")
    made = utcnow()
    fields = {"show": "flash", "title": "The Flash", "author": "alice", "author_id": "u1", "created_at": made}
    batch = [{**fields, "text": "dup", "idempotency_key": "used"}, {**fields, "text": "fresh"}]
    refused, stored = await updates._store_batch(batch)
    assert isinstance(refused, DuplicateKeyError) and not isinstance(stored, Exception)
    assert await updates.db.updates.count_documents({"text": "fresh"}) == 1


async def test_only_the_author_may_change_an_update_and_a_rejected_one_is_no_update(updates: Updates) -> None:
    mine = await updates.publish(ALICE, flash("mine"), None)
    with pytest.raises(ApiError) as refused:
        await updates.edit(BOB, mine["seq"], "not yours")
    assert (refused.value.status, refused.value.detail) == (403, f"Update {mine['seq']} is not yours: only its author "
                                                                 "can change it.")  # fmt: skip
    await updates.db.updates.update_one({"seq": mine["seq"]}, {"$set": {"rejected": "by hand"}})
    with pytest.raises(ApiError) as gone:
        await updates.edit(ALICE, mine["seq"], "rejected meanwhile")
    assert (gone.value.status, gone.value.detail) == (404, f"There is no update {mine['seq']}.")


async def test_the_largest_seq_is_an_update_like_any_other(updates: Updates) -> None:
    await updates.db.updates.insert_one({**stored_update(MAX_INT, author="alice"), "author_id": "u1"})
    assert (await updates.edit(ALICE, MAX_INT, "edited"))["text"] == "edited"


async def test_ones_own_updates_are_listed_newest_first_without_others_or_rejected_ones(updates: Updates) -> None:
    """What the publish page offers to edit or retract."""
    first, second, third = [await updates.publish(ALICE, flash(f"mine {n}"), None) for n in range(3)]
    await updates.publish(BOB, flash("bob's"), None)
    await updates.db.updates.update_one({"seq": second["seq"]}, {"$set": {"rejected": "by hand"}})
    await updates.db.updates.insert_one({"show": "flash", "text": "no seq yet", "author_id": "u1"})
    assert [update["seq"] for update in await updates.mine(ALICE, 10)] == [third["seq"], first["seq"]]
    assert [(update["seq"], update["text"]) for update in await updates.mine(ALICE, 1)] == [(third["seq"], "mine 2")]
