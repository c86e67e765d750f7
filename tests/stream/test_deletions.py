"""Deletions in MongoDB reach open feeds as retractions, whoever wrote the update; retention's do not."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
from bson import ObjectId

from shared.db import Database, next_seq, utcnow
from tests.support.accounts import registered
from tests.support.sse import Event, EventReader, events, opening
from tests.support.updates import publish, stored_update
from tests.support.waiting import wait_until


def retraction(seq: int) -> Event:
    return Event("retract", json.dumps({"seq": seq}, separators=(",", ":")))


async def test_retentions_deletions_are_not_sent_and_a_retraction_is(alice: httpx.AsyncClient, db: Database) -> None:
    """The test server keeps 90 days of history: deleting older updates is retention at work."""
    aged = utcnow() - timedelta(days=91)
    async with events(alice, "/events/all") as feed:
        old = [stored_update(await next_seq(db), created_at=aged) for _ in range(3)]
        await db.updates.insert_many(old)
        await feed.updates(3)
        recent = await publish(alice, "flash", "retracted")
        await feed.updates(1)
        await db.updates.delete_many({"seq": {"$in": [update["seq"] for update in old]}})
        await db.updates.delete_one({"seq": recent["seq"]})
        assert await feed.next() == retraction(recent["seq"])


async def test_an_authors_delete_through_the_api_reaches_every_open_feed_as_a_retraction(
    alice: httpx.AsyncClient, server: str
) -> None:
    """The API's DELETE, with the Idempotency-Key the update was published with (kept a day longer), reaches the
    author's feed of followed shows and another user's feed of every show; a feed opened after it never has it."""
    await alice.put("/api/me/follows/flash")
    async with registered(server, "bob") as bob:
        async with events(alice) as followed, events(bob, "/events/all") as everything:
            kept = await publish(alice, "flash", "kept")
            said = await alice.post(
                "/api/updates", json={"show": "flash", "text": "said too soon"}, headers={"idempotency-key": "k1"}
            )
            assert said.status_code == 201
            retracted = said.json()
            for feed in (followed, everything):
                assert await feed.updates(2) == [kept, retracted]
            assert (await alice.delete(f"/api/updates/{retracted['seq']}")).status_code == 204
            for feed in (followed, everything):
                assert await feed.named("retract") == retraction(retracted["seq"])
        async with events(bob, "/events/all", **{"last-event-id": str(kept["seq"] - 1)}) as replayed:
            after = await publish(alice, "flash", "after the retraction")
            assert await replayed.updates(2) == [kept, after]


async def retracted_once_stored(db: Database, feed: EventReader, document_id: object) -> None:
    """Deletes the document once a delivered update's _id is noted, and expects its retraction."""
    (update,) = await feed.updates(1)
    await wait_until(lambda: db.update_ids.find_one({"_id": document_id}))
    await db.updates.delete_one({"_id": document_id})
    assert await feed.next() == retraction(update["seq"])


async def test_a_foreign_documents_deletion_is_retracted_by_the_seq_it_was_given(
    alice: httpx.AsyncClient, db: Database
) -> None:
    async with events(alice, "/events/all") as feed:
        for document_id in ("a-string-id", 17, ObjectId()):
            await db.updates.insert_one({"_id": document_id, "show": "flash", "text": "foreign", "author": "dba"})
            await retracted_once_stored(db, feed, document_id)
        numbered = {**stored_update(await next_seq(db)), "_id": ObjectId()}  # its own seq, its own _id
        await db.updates.insert_one(numbered)
        await retracted_once_stored(db, feed, numbered["_id"])


async def test_an_update_deleted_before_its_turn_is_never_sent(alice: httpx.AsyncClient, db: Database) -> None:
    async with events(alice, "/events/all") as feed:
        hole = await next_seq(db)  # the update after it waits for it, up to the gap wait
        held = stored_update(await next_seq(db))
        await db.updates.insert_one(held)
        await db.updates.delete_one({"_id": held["_id"]})
        after = await publish(alice, "flash", "after the hole")
        assert await feed.updates(1) == [after]
    assert after["seq"] == hole + 2


async def test_a_resume_beside_deleted_updates_replays_what_is_kept_without_a_resync(
    alice: httpx.AsyncClient, db: Database
) -> None:
    """The test server trims history (90 days), but nothing has gone by age: an update its author deleted, or one
    another program deleted as a watch rule retracts, is no missed history, from before it or from it."""
    await alice.put("/api/me/follows/flash")
    async with events(alice) as live:  # once it has both retractions, no feed opened below can get one
        first, second, third, fourth = [(await publish(alice, "flash", f"update {n}"))["seq"] for n in range(4)]
        assert (await alice.delete(f"/api/updates/{first}")).status_code == 204
        await db.updates.delete_one({"seq": second})
        assert [await live.named("retract") for _ in range(2)] == [retraction(first), retraction(second)]
    for after in (0, first, second):
        assert await opening(alice, after, 2) == [("update", third), ("update", fourth)]
