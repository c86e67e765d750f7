"""Updates other programs insert without a seq: numbered once, completed, delivered and replayed like a publish; a
document that cannot be an update is rejected once and costs the updates around it nothing."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import PyMongoError

from services.all import app as gossip
from services.stream.adoption import BATCH, CLAIM_STALE, Adoption
from shared.catalogue import Catalogue
from shared.db import Database, last_seq, next_seq, prepare, utcnow
from shared.settings import Settings
from shared.updates import update_document, wire
from tests.support.accounts import registered, user_id
from tests.support.servers import LiveServer, gauge
from tests.support.sse import events
from tests.support.updates import addressed, personal_update, publish, stored_update
from tests.support.waiting import wait_until

REJECTED = "gossip_stream_rejected_documents_total"


def raw_insert(settings: Settings, document: dict[str, Any]) -> Any:
    """As any other program writes: a plain, synchronous PyMongo client of its own."""
    with MongoClient(settings.mongo_url) as plain:
        return plain[settings.mongo_db].updates.insert_one(document).inserted_id


async def test_a_raw_insert_reaches_both_feeds_with_a_seq(alice: httpx.AsyncClient, settings: Settings) -> None:
    await alice.put("/api/me/follows/flash")
    async with events(alice) as followed, events(alice, "/events/all") as everything:
        before = await publish(alice, "flash", "published")
        assert await followed.updates(1) == await everything.updates(1) == [before]
        raw_insert(settings, {"show": "flash", "text": "Barry is back", "author": "dba"})
        (received,) = await followed.updates(1, timeout=5)
        assert await everything.updates(1, timeout=5) == [received]
    assert received["seq"] == before["seq"] + 1  # the next number: the claim took one, and only one
    assert (received["show"], received["title"], received["text"], received["author"]) == (
        "flash", "The Flash", "Barry is back", "dba",
    )  # fmt: skip
    assert received["created_at"].endswith("Z")
    async with events(alice, **{"last-event-id": str(before["seq"])}) as again:  # replayed from history
        assert await again.updates(1) == [received]
    history = (await alice.get("/api/updates", params={"after": before["seq"]})).json()["items"]
    assert history == [received]


async def test_given_fields_are_kept_and_the_insert_time_is_the_creation_time(
    alice: httpx.AsyncClient, db: Database
) -> None:
    async with events(alice, "/events/all") as feed:
        inserted = ObjectId()
        await db.updates.insert_one({"_id": inserted, "show": "sherlock", "text": "The game is on", "author": "dba",
                                     "title": "a title of its own", "source": "a migration"})  # fmt: skip
        (received,) = await feed.updates(1)
        dated = {"show": "suits", "text": "dated", "author": "dba", "created_at": "2026-11-24T10:00:00Z"}
        dated_id = (await db.updates.insert_one(dated)).inserted_id
        (given,) = await feed.updates(1)
    assert received["title"] == "Sherlock"  # from the catalogue, always
    stored = await db.updates.find_one({"_id": inserted})
    assert stored is not None and stored["source"] == "a migration" and "claim" not in stored
    assert abs((stored["created_at"] - inserted.generation_time).total_seconds()) < 5
    assert given["created_at"] == "2026-11-24T10:00:00.000Z"  # a date written as text is stored as a date
    assert isinstance((await db.updates.find_one({"_id": dated_id}))["created_at"], datetime)


async def test_a_poison_document_between_two_updates_costs_neither(
    alice: httpx.AsyncClient, db: Database, server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gossip")
    rejected_before = gauge(server, REJECTED)
    poison = [
        {"show": "no_such_show", "text": "x", "author": "dba"},
        {"show": "flash", "text": 42, "author": "dba"},
        {"show": "flash", "text": "x" * 1001, "author": "dba"},
        {"show": "flash", "author": "dba"},
        {"show": "flash", "text": "x", "author": "dba", "created_at": "yesterday"},
    ]
    async with events(alice, "/events/all") as feed:
        first = await publish(alice, "flash", "before the poison")
        ids = [(await db.updates.insert_one(document)).inserted_id for document in poison]
        numbered = {"seq": await next_seq(db), "show": "flash", "text": "", "author": "dba"}  # poison with a seq
        ids.append((await db.updates.insert_one(numbered)).inserted_id)
        last = await publish(alice, "flash", "after the poison")
        assert await feed.updates(2) == [first, last]

    async def all_rejected() -> bool:
        return await db.updates.count_documents({"rejected": {"$exists": True}}) == len(ids)

    await wait_until(all_rejected)
    assert gauge(server, REJECTED) - rejected_before == len(ids)
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    for document_id in ids:
        assert sum(repr(document_id) in warning for warning in warnings) == 1, warnings
    assert "Traceback" not in caplog.text and "reopening" not in caplog.text
    assert [update["seq"] for update in (await alice.get("/api/updates")).json()["items"]] == [
        first["seq"],
        last["seq"],
    ]


async def test_an_offered_document_is_numbered_in_a_task_of_its_own_without_a_sweep(db: Database) -> None:
    """`offer` returns at once; the batch is numbered in the background, and an offer after that batch has ended
    starts the next. No sweep runs here: only the offers number them."""
    await prepare(db)
    adoption = Adoption(db, Catalogue(db))
    ids = []

    async def numbered() -> bool:
        return await db.updates.count_documents({"seq": {"$gt": 0}}) == len(ids)

    for texts in (("one", "two"), ("three",)):
        for text in texts:
            ids.append((await db.updates.insert_one({"show": "flash", "text": text, "author": "dba"})).inserted_id)
            adoption.offer(ids[-1])
        await wait_until(numbered)
        await wait_until(lambda: adoption._adopting is None)  # the batch has ended
    assert [u["_id"] async for u in db.updates.find().sort("seq")] == ids
    await adoption.stop()


async def test_a_batch_the_database_refuses_is_logged_and_left_to_the_sweep(
    db: Database, caplog: pytest.LogCaptureFixture, refused_port: int
) -> None:
    gone = AsyncMongoClient(f"mongodb://127.0.0.1:{refused_port}/?directConnection=true", serverSelectionTimeoutMS=50)
    adoption = Adoption(gone[db.name], Catalogue(db))
    try:
        adoption.offer(ObjectId())
        adoption.offer(ObjectId())
        warned = await wait_until(lambda: [r for r in caplog.records if r.name == "gossip.stream.adoption"])
        await adoption.stop()
    finally:
        await gone.close()
    message = warned[0].getMessage()
    assert message.startswith("could not number 2 documents in updates, left to the sweep: ")
    assert f"127.0.0.1:{refused_port}" in message


async def test_stopping_ends_a_batch_under_way(db: Database, refused_port: int) -> None:
    gone = AsyncMongoClient(
        f"mongodb://127.0.0.1:{refused_port}/?directConnection=true", serverSelectionTimeoutMS=60_000
    )
    adoption = Adoption(gone[db.name], Catalogue(db))
    try:
        adoption.offer(ObjectId())  # waits for a server that is not there
        await asyncio.wait_for(adoption.stop(), 10)
        assert adoption._adopting is None
    finally:
        await gone.close()


async def test_a_document_the_database_will_not_take_back_numbered_is_rejected_and_the_rest_stored(
    db: Database,
) -> None:
    """The batch's writes are unordered: the one that fails (here its seq is taken already, by an update written
    with one) is rejected with the database's reason, and those after it are stored all the same."""
    await prepare(db)
    ids = [(await db.updates.insert_one({"show": "flash", "text": f"t{n}", "author": "dba"})).inserted_id
           for n in range(3)]  # fmt: skip
    await db.updates.insert_one(stored_update(2))  # a seq the counter has not given yet
    await Adoption(db, Catalogue(db)).adopt([(document_id, None) for document_id in ids])
    stored = {u["_id"]: u async for u in db.updates.find({"_id": {"$in": ids}})}
    assert [stored[ids[0]].get("seq"), stored[ids[2]].get("seq")] == [1, 3]
    why, prefix = stored[ids[1]]["rejected"], "could not be stored with a seq: "
    assert why.startswith(prefix) and "seq" not in stored[ids[1]]
    assert why[len(prefix) :] not in ("", "None", "write failed")  # the database's own reason, whatever its words


async def test_a_rejection_is_marked_logged_and_counted_once(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    await prepare(db)
    bystander = (await db.updates.insert_one({"show": "flash", "text": "fine", "author": "dba"})).inserted_id
    document_id = (await db.updates.insert_one({"show": "flash", "author": "dba"})).inserted_id
    adoption = Adoption(db, Catalogue(db))
    assert await adoption.reject(document_id, "claimed", {"claim.by": "a batch"}) is False  # that claim is not held
    assert await adoption.reject(document_id, "it has no text") is True
    assert await adoption.reject(document_id, "seen again") is False  # another process's mark landed first
    (logged,) = [record.getMessage() for record in caplog.records if record.name == "gossip.stream.adoption"]
    assert logged.startswith("a document in updates is not an update;") and logged.endswith(": it has no text")
    assert f"(_id {document_id!r})" in logged
    stored = await db.updates.find_one({"_id": document_id})
    assert stored is not None and stored["rejected"] == "it has no text"
    assert "rejected" not in (await db.updates.find_one({"_id": bystander}) or {"rejected": "gone"})


async def test_only_one_claim_wins_and_only_the_winner_takes_a_number(db: Database) -> None:
    await prepare(db)
    inserted = (await db.updates.insert_one({"show": "flash", "text": "once", "author": "dba"})).inserted_id
    catalogue = Catalogue(db)
    await asyncio.gather(*(Adoption(db, catalogue).adopt([(inserted, None)]) for _ in range(5)))
    stored = await db.updates.find_one({"_id": inserted})
    assert stored is not None and stored["seq"] == 1
    assert await last_seq(db) == 1  # no number taken and left unused: no hole for the watcher to wait out


async def test_a_show_of_a_type_no_catalogue_can_hold_is_rejected_and_spares_its_batch(db: Database) -> None:
    """A list or a subdocument as the show cannot key the catalogue: it is rejected like any other poison, and the
    documents claimed with it are numbered, not left claimed."""
    await prepare(db)
    documents = [{"show": show, "text": "x", "author": "dba"} for show in (["flash"], {"slug": "flash"}, "flash")]
    ids = (await db.updates.insert_many(documents)).inserted_ids
    await Adoption(db, Catalogue(db)).adopt([(document_id, None) for document_id in ids])
    stored = {update["_id"]: update for update in await db.updates.find({}).to_list()}
    assert ["rejected" in stored[key] for key in ids] == [True, True, False] and stored[ids[2]]["seq"] == 1
    assert not any("claim" in update for update in stored.values())


async def test_two_adopters_racing_over_one_batch_number_each_document_once_with_no_hole(db: Database) -> None:
    await prepare(db)
    documents = [{"show": "flash", "text": f"imported {n}", "author": "dba"} for n in range(300)]
    documents[150]["author"] = "<b>nobody</b>"  # one that cannot be an update, in the middle
    ids = (await db.updates.insert_many(documents)).inserted_ids
    catalogue = Catalogue(db)
    first, second = Adoption(db, catalogue), Adoption(db, catalogue)
    overlapping = [(document_id, None) for document_id in ids[:200]], [(key, None) for key in reversed(ids[100:])]
    await asyncio.gather(first.adopt(overlapping[0]), second.adopt(overlapping[1]), second.sweep())
    stored = await db.updates.find({}, {"seq": 1, "claim": 1, "rejected": 1}).to_list()
    seqs = sorted(update["seq"] for update in stored if "seq" in update)
    assert seqs == list(range(1, 300)) and await last_seq(db) == 299  # each numbered once, no number left unused
    assert sum("rejected" in update for update in stored) == 1 and not any("claim" in update for update in stored)


async def test_a_claim_whose_process_died_is_finished_by_the_sweep_and_a_live_one_is_left(db: Database) -> None:
    await prepare(db)
    now = time.time()
    dead = {"show": "flash", "text": "claimed", "author": "dba", "claim": {"by": "gone", "at": now - CLAIM_STALE - 1}}
    live = {"show": "flash", "text": "claimed", "author": "dba", "claim": {"by": "busy", "at": now}}
    dead_id, live_id = (await db.updates.insert_many([dead, live])).inserted_ids
    await Adoption(db, Catalogue(db)).sweep()
    finished, left = await db.updates.find_one({"_id": dead_id}), await db.updates.find_one({"_id": live_id})
    assert finished is not None and finished["seq"] == 1 and "claim" not in finished
    assert left is not None and "seq" not in left and left["claim"]["by"] == "busy"


async def test_documents_inserted_while_no_stream_ran_are_delivered_when_one_starts(
    settings: Settings, db: Database
) -> None:
    await db.updates.insert_many([{"show": "flash", "text": f"while away {n}", "author": "dba"} for n in range(3)])
    live = LiveServer(gossip.create(settings)).start()
    try:
        async with registered(live.url, "rae") as rae, events(rae, "/events/all", **{"last-event-id": "0"}) as feed:
            received = await feed.updates(3)
    finally:
        live.stop()
    assert sorted(update["text"] for update in received) == [f"while away {n}" for n in range(3)]
    assert [update["seq"] for update in received] == [1, 2, 3]


async def test_a_hostile_foreign_document_reaches_no_feed_and_no_page_beyond_its_bounded_wire_fields(
    alice: httpx.AsyncClient, db: Database, server: str
) -> None:
    """Anyone who can write to MongoDB reaches every feed: an author that is no username is rejected, whether the
    document comes without a seq or with one; a title is the catalogue's, and nothing else a writer adds goes out."""
    await alice.put("/api/me/follows/flash")
    rejected_before, script = gauge(server, REJECTED), "<script>alert(1)</script>"
    async with events(alice) as feed:
        hostile = [{"show": "flash", "text": "x", "author": script}, {"show": "flash", "text": "x", "author": "a" * 33}]
        ids = [(await db.updates.insert_one(document)).inserted_id for document in hostile]
        numbered = {"seq": await next_seq(db), "show": "flash", "text": "x", "author": script, "created_at": utcnow()}
        ids.append((await db.updates.insert_one(numbered)).inserted_id)
        bulky = {"show": "flash", "text": "bulky", "author": "dba", "title": "Free prizes", "blob": "x" * (5 << 20)}
        await db.updates.insert_one(bulky)
        last = await publish(alice, "flash", "after the hostile ones")
        by_text = {update["text"]: update for update in await feed.updates(2)}
    received = by_text["bulky"]  # numbered when adopted, before or after the publish
    assert by_text[last["text"]] == last and received["title"] == "The Flash"
    assert set(received) == {"seq", "show", "title", "text", "author", "created_at"}

    async def all_rejected() -> bool:
        return await db.updates.count_documents({"rejected": {"$exists": True}}) == len(ids)

    await wait_until(all_rejected)
    assert gauge(server, REJECTED) - rejected_before == len(ids)
    await db.updates.update_one({"seq": last["seq"]}, {"$set": {"title": "Free prizes", "extra": "y" * 1000}})
    assert (await alice.get("/api/updates")).json()["items"] == sorted(by_text.values(), key=lambda u: u["seq"])
    newest = max(update["seq"] for update in by_text.values())
    page = (await alice.get("/notifications/all", params={"before": newest + 1})).text
    assert "alert(1)" not in page and "Free prizes" not in page and "xxxxx" not in page and "yyyyy" not in page
    assert "bulky" in page and "after the hostile ones" in page


async def test_a_personal_document_whose_topic_is_no_slug_is_rejected_and_reaches_no_feed_nor_page(
    alice: httpx.AsyncClient, db: Database, server: str
) -> None:
    """Its topic would key her preferences, and go on her pages and in her pushes: another program's personal update
    with a `show` that is not named as a topic is rejected as any document that cannot be an update is, with or
    without a seq, and the feeds carry the updates around it."""
    alice_id, rejected_before = await user_id(db, "alice"), gauge(server, REJECTED)
    topics = ["a.b", "$x", "x.$y", "z" * 500, "émission", "<script>alert(1)</script>"]
    async with events(alice) as feed, events(alice, "/events/all") as everything:
        ids = [(await db.updates.insert_one({"show": t, "text": "hostile", "author": "dba", "recipient": alice_id}))
               .inserted_id for t in topics]  # fmt: skip
        numbered = {**personal_update(await next_seq(db), alice_id, "hostile, numbered"), "show": topics[-1]}
        ids.append((await db.updates.insert_one(numbered)).inserted_id)
        order = wire(await addressed(db, alice_id, "Your order of a cup is shipped."))
        assert await feed.updates(1) == await everything.updates(1) == [order]

    async def all_rejected() -> bool:
        return await db.updates.count_documents({"rejected": {"$exists": True}}) == len(ids)

    await wait_until(all_rejected)
    assert gauge(server, REJECTED) - rejected_before == len(ids)
    assert (await alice.get("/api/updates")).json()["items"] == [order]
    for path in ("/notifications", "/notifications/all"):
        page = (await alice.get(path)).text
        assert "hostile" not in page and "alert(1)" not in page and "Your order of a cup" in page


async def test_a_swept_document_is_completed_and_dated_by_its_object_id_else_by_when_it_is_numbered(
    db: Database,
) -> None:
    """Found by the sweep, a document has no insert event to date it: an ObjectId says when it was made, which is
    when it was inserted unless its writer chose it; any other _id says nothing, so the time it is numbered. A date
    the writer gave stands, and the title is the catalogue's."""
    await prepare(db)
    made, given = datetime(2026, 11, 1, 9, 30, tzinfo=UTC), datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    old, other = ObjectId.from_datetime(made), ObjectId()
    await db.updates.insert_many([
        {"_id": old, "show": "flash", "text": "long ago", "author": "dba", "title": "a title of its own"},
        {"_id": "an-id-of-its-own", "show": "flash", "text": "some time", "author": "dba"},
        {"_id": other, "show": "flash", "text": "dated", "author": "dba", "created_at": given},
    ])  # fmt: skip
    before = utcnow()
    await Adoption(db, Catalogue(db)).sweep()
    after = utcnow()
    stored = {update["_id"]: update for update in await db.updates.find({}).to_list()}
    dated, undated = stored[old], stored["an-id-of-its-own"]
    assert (dated["show"], dated["title"], dated["text"], dated["author"]) == ("flash", "The Flash", "long ago", "dba")
    assert dated["created_at"] == made and stored[other]["created_at"] == given
    assert before - timedelta(milliseconds=1) <= undated["created_at"] <= after  # stored to the millisecond
    assert sorted(update["seq"] for update in stored.values()) == [1, 2, 3]


async def test_an_offered_document_is_dated_by_its_insert_event(db: Database) -> None:
    await prepare(db)
    inserted = (await db.updates.insert_one({"show": "flash", "text": "x", "author": "dba"})).inserted_id
    when = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    await Adoption(db, Catalogue(db)).adopt([(inserted, when)])
    stored = await db.updates.find_one({"_id": inserted})
    assert stored is not None and stored["seq"] == 1 and stored["created_at"] == when


async def test_the_sweep_finds_a_document_without_a_seq_behind_a_batch_of_numbered_ones(db: Database) -> None:
    await prepare(db)
    await db.updates.insert_many([stored_update(seq) for seq in range(1, BATCH + 1)])
    await next_seq(db, count=BATCH)  # as the publishes of those would have left the counter
    late = (await db.updates.insert_one({"show": "flash", "text": "late", "author": "dba"})).inserted_id
    await Adoption(db, Catalogue(db)).sweep()
    stored = await db.updates.find_one({"_id": late})
    assert stored is not None and stored["seq"] == BATCH + 1


async def test_an_offered_document_another_process_claimed_is_left_to_it_however_old_the_claim(db: Database) -> None:
    """Only the sweep takes a stale claim over; numbering what was offered never does, and the documents offered
    with it are numbered all the same."""
    await prepare(db)
    claim = {"by": "another", "at": time.time() - CLAIM_STALE - 1}
    documents = [{"show": "flash", "text": "theirs", "author": "dba", "claim": claim},
                 {"show": "flash", "text": "ours", "author": "dba"}]  # fmt: skip
    ids = (await db.updates.insert_many(documents)).inserted_ids
    await Adoption(db, Catalogue(db)).adopt([(document_id, None) for document_id in ids])
    theirs, ours = [await db.updates.find_one({"_id": document_id}) for document_id in ids]
    assert theirs is not None and "seq" not in theirs and theirs["claim"] == claim
    assert ours is not None and ours["seq"] == 1


async def test_a_batch_that_fails_midway_leaves_its_claims_dated_for_the_sweep(db: Database, refused_port: int) -> None:
    """A claim holds its time: once it is CLAIM_STALE old, the sweep of any process takes the document over."""
    await prepare(db)
    inserted = (await db.updates.insert_one({"show": "flash", "text": "x", "author": "dba"})).inserted_id
    gone = AsyncMongoClient(f"mongodb://127.0.0.1:{refused_port}/?directConnection=true", serverSelectionTimeoutMS=100)
    before = time.time()
    try:
        with pytest.raises(PyMongoError):  # the catalogue cannot be read once the batch is claimed
            await Adoption(db, Catalogue(gone[db.name])).adopt([(inserted, None)])
    finally:
        await gone.close()
    left = await db.updates.find_one({"_id": inserted})
    assert left is not None and "seq" not in left and before <= left["claim"]["at"] <= time.time()
    stale = left["claim"]["at"] - CLAIM_STALE - 1  # as if its process had died that long ago
    await db.updates.update_one({"_id": inserted}, {"$set": {"claim.at": stale}})
    await Adoption(db, Catalogue(db)).sweep()
    finished = await db.updates.find_one({"_id": inserted})
    assert finished is not None and finished["seq"] == 1 and "claim" not in finished


async def test_a_rejected_document_is_looked_at_once_only(db: Database) -> None:
    await prepare(db)
    poison = (await db.updates.insert_one({"show": "flash", "author": "dba"})).inserted_id
    adoption = Adoption(db, Catalogue(db))
    await adoption.sweep()
    rejected = await db.updates.find_one({"_id": poison})
    await adoption.sweep()
    assert rejected is not None and rejected["rejected"] == "text: required" and "claim" not in rejected
    assert await db.updates.find_one({"_id": poison}) == rejected  # not claimed, nor marked, again


async def test_a_document_whose_claim_was_taken_while_it_was_numbered_is_left_to_its_new_claimer(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch that stalls past CLAIM_STALE between its claim and its write can lose a document to a sweep: the
    write, guarded by the claim, leaves that one alone, and the seq it took stays unused, which is logged."""
    caplog.set_level(logging.INFO, logger="gossip.stream.adoption")
    await prepare(db)
    claim = {"by": "this batch", "at": time.time()}
    ids = (await db.updates.insert_many([{"show": "flash", "text": f"t{n}", "author": "dba", "claim": claim}
                                         for n in range(3)])).inserted_ids  # fmt: skip
    adoption = Adoption(db, Catalogue(db))
    finished = [
        update_document(show="flash", title="The Flash", text=f"t{n}", author="dba", created_at=utcnow(), _id=ids[n])
        for n in range(3)
    ]
    await adoption._store(finished[:1], "this batch")
    assert not [record for record in caplog.records if record.name == "gossip.stream.adoption"]  # all written
    await db.updates.update_one({"_id": ids[1]}, {"$set": {"claim.by": "a sweep"}})
    await adoption._store(finished[1:], "this batch")
    stored = {update["_id"]: update for update in await db.updates.find({}).to_list()}
    assert [stored[document_id].get("seq") for document_id in ids] == [1, None, 3]
    assert stored[ids[1]]["claim"]["by"] == "a sweep"
    logged = [record.getMessage() for record in caplog.records if record.name == "gossip.stream.adoption"]
    assert logged == ["1 updates changed while they were numbered; their seqs stay unused"]
