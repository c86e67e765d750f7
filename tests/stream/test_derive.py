"""Watch rules on live servers and the embedded MongoDB, with the shipped gossip.toml: another program's writes to
`episodes` and `orders` become updates on real feeds, written once, edited, retracted, and kept to their recipient."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pymongo.errors import OperationFailure

from dev.processes import ServiceProcess
from services.all import app as gossip
from services.auth.accounts import user_document
from services.stream.changes import Change, ChangeStream, ChangeStreams, next_change, token_epoch
from services.stream.derive import Derivation, RuleStream, document_key
from services.stream.rulebook import load
from services.stream.rules import replay
from shared.catalogue import Catalogue
from shared.db import Database, prepare, put
from shared.settings import RULES, Settings
from tests.support.accounts import registered
from tests.support.http import async_client
from tests.support.servers import LiveServer, gossip_server
from tests.support.sse import events
from tests.support.updates import publish
from tests.support.waiting import wait_until

AIRS = datetime(2026, 12, 8, 20, 0, tzinfo=UTC)  # a Tuesday
SKIPPED = "gossip_stream_rule_documents_skipped_total"
LOST = "gossip_stream_rule_history_lost_total"
HISTORY_LOST_CODE = 286
KEPT = {"_data": "nx:999999"}  # a place in a change stream, kept in rule_tokens


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test's database, with the rules `make run` uses."""
    return dataclasses.replace(settings, watch_rules=RULES)


@pytest.fixture
async def bob(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with registered(server, "bob") as http:
        yield http


def episode(title: str, show: str = "flash", **more: Any) -> dict[str, Any]:
    return {"show": show, "title": title, "airs_at": AIRS, **more}


def counted(name: str) -> float:
    """A watch rule's counter as this process's services (in-thread servers) have counted it: 0 before the first."""
    return REGISTRY.get_sample_value(name, {"rule": "episodes"}) or 0.0


async def test_an_insert_into_episodes_reaches_the_shows_followers_within_2_s_with_its_text(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient, db: Database
) -> None:
    await alice.put("/api/me/follows/flash")
    await bob.put("/api/me/follows/sherlock")
    async with events(alice) as followed, events(bob) as other:
        await db.episodes.insert_one(episode("Pilot"))
        (received,) = await followed.updates(1, timeout=2)
        marker = await publish(bob, "sherlock", "a marker after the episode")
        assert await other.updates(1) == [marker]  # the episode's update went to flash's followers only
    assert received["text"] == "New episode of The Flash: Pilot, on Tue 08 Dec"
    assert (received["show"], received["title"], received["author"]) == ("flash", "The Flash", "episodes")
    assert "personal" not in received
    history = (await alice.get("/api/updates", params={"show": "flash"})).json()["items"]
    assert history == [received]


async def test_an_edit_to_the_episode_edits_its_update_and_a_delete_retracts_it(
    alice: httpx.AsyncClient, db: Database
) -> None:
    await alice.put("/api/me/follows/flash")
    async with events(alice) as feed:
        inserted = (await db.episodes.insert_one(episode("Pilot"))).inserted_id
        (received,) = await feed.updates(1)
        await db.episodes.update_one({"_id": inserted}, {"$set": {"title": "The Pilot"}})
        edit = (await feed.named("edit")).json()
        await db.episodes.update_one({"_id": inserted}, {"$set": {"rating": 5}})  # not a field the rule hears
        await db.episodes.delete_one({"_id": inserted})
        retract = (await feed.named("retract")).json()
    assert (edit["seq"], edit["text"]) == (received["seq"], "New episode of The Flash: The Pilot, on Tue 08 Dec")
    assert retract == {"seq": received["seq"]}
    assert (await alice.get("/api/updates")).json()["items"] == []
    assert await db.updates.count_documents({}) == 0


async def test_two_stream_services_on_one_database_write_one_update(settings: Settings, db: Database) -> None:
    first, second = gossip_server(settings), gossip_server(settings)
    try:
        async with (
            registered(first.url, "ada") as ada,
            registered(second.url, "bob") as bob,
        ):
            await ada.put("/api/me/follows/flash")
            await bob.put("/api/me/follows/flash")
            async with events(ada) as on_first, events(bob) as on_second:
                for number in range(5):
                    await db.episodes.insert_one(episode(f"Episode {number}"))
                got_first, got_second = await on_first.updates(5), await on_second.updates(5)
                after = await publish(ada, "flash", "and nothing twice before this one")
                assert await on_first.updates(1) == await on_second.updates(1) == [after]
    finally:
        first.stop()
        second.stop()
    assert got_first == got_second
    assert [update["text"].split(": ")[1] for update in got_first] == [f"Episode {n}, on Tue 08 Dec" for n in range(5)]
    assert await db.updates.count_documents({"author": "episodes"}) == 5
    assert [update["seq"] for update in got_first] == [after["seq"] - 5 + n for n in range(5)]  # one deriver: no holes


async def heard(
    db: Database, collection: str, write: Callable[[Database], Awaitable[None]], count: int
) -> list[Change]:
    """The change events `write` (a coroutine function of the database) makes in the collection, as a rule's
    stream reads them: the first `count`, within 5 s."""
    found: list[Change] = []
    deadline = time.monotonic() + 5
    async with await db[collection].watch(full_document="updateLookup") as stream:
        await write(db)
        while len(found) < count and time.monotonic() < deadline:
            if (change := await next_change(stream, 0.01)) is not None:
                found.append(change)
    assert len(found) == count, found
    return found


async def test_changes_two_processes_both_derive_are_stored_once(db: Database) -> None:
    """What a lease handover can let happen: two processes derive the same changes. Fresh inserts are written with
    no look at what was told, so the unique source key alone stores each once (the loser's seqs are holes); a later
    change is told once by what the first wrote."""
    await prepare(db)
    rule = next(rule for rule in load(RULES) if rule.name == "orders")
    first, second = Derivation(db, rule, Catalogue(db)), Derivation(db, rule, Catalogue(db))
    await db.users.insert_one(user_document("alice", "not-a-hash"))

    async def place(db: Database) -> None:
        await db.orders.insert_many([{"user": "alice", "item": f"cup {n}", "status": "placed"} for n in range(3)])

    placed = await heard(db, "orders", place, 3)
    assert (await first.derive(placed), await second.derive(placed)) == (3, 0)
    order = placed[0]["documentKey"]["_id"]

    async def ship(db: Database) -> None:
        await db.orders.update_one({"_id": order}, {"$set": {"status": "shipped"}})

    shipped = await heard(db, "orders", ship, 1)
    assert (await first.derive(shipped), await second.derive(shipped)) == (1, 0)
    texts = [update["text"] async for update in db.updates.find().sort("seq", 1)]
    assert texts == [*(f"Your order of cup {n} is placed." for n in range(3)), "Your order of cup 0 is shipped."]


async def test_a_filter_takes_each_change_as_it_left_the_document_not_as_it_is_now(db: Database) -> None:
    """The orders rule tells the statuses its filter names, each as its change left the order: one saved as
    "pending" and placed within a batch tells "placed" alone; one placed and then returned still tells "placed"."""
    await prepare(db)
    rule = next(rule for rule in load(RULES) if rule.name == "orders")
    derivation = Derivation(db, rule, Catalogue(db))
    await db.users.insert_one(user_document("alice", "not-a-hash"))

    async def shop(db: Database) -> None:
        cup = (await db.orders.insert_one({"user": "alice", "item": "a cup", "status": "pending"})).inserted_id
        await db.orders.update_one({"_id": cup}, {"$set": {"status": "placed"}})
        pot = (await db.orders.insert_one({"user": "alice", "item": "a pot", "status": "placed"})).inserted_id
        await db.orders.update_one({"_id": pot}, {"$set": {"status": "returned"}})

    assert await derivation.derive(await heard(db, "orders", shop, 4)) == 2
    texts = [update["text"] async for update in db.updates.find().sort("seq", 1)]
    assert texts == ["Your order of a cup is placed.", "Your order of a pot is placed."]


async def leased(db: Database) -> dict[str, str] | None:
    """Each rule's holder (a stream process's id per rule), once every rule's lease is held and not lapsed."""
    now = time.time()
    held = {lease["_id"]: lease["holder"] async for lease in db.rule_leases.find() if lease["until"] > now}
    return held if held.keys() == {"episodes", "orders"} else None


async def holder(db: Database, rule: str) -> str | None:
    lease = await db.rule_leases.find_one({"_id": rule})
    return None if lease is None else lease["holder"]


async def test_when_the_deriving_service_stops_another_takes_over_at_once_from_where_it_stopped(
    settings: Settings, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """The first to start holds the leases. Stopped, it keeps its position and frees them, so that the second takes
    over at its next ask (a tenth of RULE_LEASE), well within half a lease: not when the lease would have lapsed."""
    first, second = gossip_server(settings), gossip_server(settings)
    try:
        held = await wait_until(lambda: leased(db))
        async with registered(second.url, "bob") as bob:
            await bob.put("/api/me/follows/flash")
            async with events(bob) as feed:
                await db.episodes.insert_one(episode("Before"))
                (before,) = await feed.updates(1)
                await db.episodes.insert_one(episode("Racing"))  # derived by either, as the stop comes
                first.stop()
                await db.episodes.insert_one(episode("After"))
                racing, after = await feed.updates(2, timeout=settings.rule_lease / 2)
                marker = await publish(bob, "flash", "and nothing twice before this one")
                assert await feed.updates(1) == [marker]
        taken = await holder(db, "episodes")
    finally:
        second.stop()
        if first.thread.is_alive():
            first.stop()
    assert [update["text"].split(": ")[1] for update in (before, racing, after)] == [
        f"{title}, on Tue 08 Dec" for title in ("Before", "Racing", "After")
    ]
    assert after["seq"] == racing["seq"] + 1  # the stop kept what it had derived: the second derived none again
    assert "failed; reopening" not in caplog.text  # a takeover is no failure of the stream
    assert await db.updates.count_documents({"author": "episodes"}) == 3
    assert taken not in (None, held["episodes"])  # a takeover: the second derived After


async def test_when_the_deriving_process_is_killed_another_takes_over_within_the_lease(
    settings: Settings, db: Database
) -> None:
    """SIGKILL: nothing freed, nothing kept at the end. The other process takes each lease once it lapses (RULE_LEASE,
    short here, after the last renewal), derives again from the kept position, and each episode is notified once."""
    lease = 2.0
    with ServiceProcess("services.stream.app", settings, RULE_LEASE=str(lease)) as doomed:
        held = await wait_until(lambda: leased(db), timeout=10)  # it started alone: both rules are its
        live = gossip_server(dataclasses.replace(settings, rule_lease=lease))
        try:
            async with registered(live.url, "bob") as bob:
                await bob.put("/api/me/follows/flash")
                async with events(bob) as feed:
                    await db.episodes.insert_many([episode(f"Before {n}") for n in range(3)])
                    before = await feed.updates(3)
                    await db.episodes.insert_one(episode("Racing"))  # derived, kept, or neither, as the kill comes
                    assert doomed.process is not None
                    doomed.process.kill()
                    await db.episodes.insert_one(episode("After"))
                    after = await feed.updates(2, timeout=lease + 3)
                    marker = await publish(bob, "flash", "and nothing twice before this one")
                    assert await feed.updates(1) == [marker]
            taken = await holder(db, "episodes")
        finally:
            live.stop()
    titles = [f"Before {n}" for n in range(3)] + ["Racing", "After"]
    assert [update["text"].split(": ")[1] for update in before + after] == [f"{t}, on Tue 08 Dec" for t in titles]
    assert await db.updates.count_documents({"author": "episodes"}) == 5
    assert taken not in (None, held["episodes"])


async def test_an_order_is_its_users_alone_in_every_reader(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient, db: Database
) -> None:
    await bob.put("/api/me/follows/flash")
    async with (
        events(alice) as alices,
        events(bob) as bobs,
        events(bob, "/events/all") as bobs_all,
    ):
        await db.orders.insert_one({"user": "Alice", "item": "a teapot", "status": "placed"})  # any case, as a login
        (placed,) = await alices.updates(1, timeout=2)
        marker = await publish(bob, "flash", "a marker after the order")
        assert await bobs.updates(1) == [marker]  # the order, earlier, went to neither of bob's feeds
        assert await bobs_all.updates(1) == [marker]
    assert placed["text"] == "Your order of a teapot is placed." and placed["personal"] is True
    assert (placed["show"], placed["title"], placed["author"]) == ("orders", "Your orders", "orders")
    mine, theirs = (await alice.get("/api/updates")).json()["items"], (await bob.get("/api/updates")).json()["items"]
    assert [update["seq"] for update in mine] == [placed["seq"], marker["seq"]]
    assert [update["seq"] for update in theirs] == [marker["seq"]]
    assert (await alice.get("/api/me")).json()["unread"] == 1  # her order; the marker is of a show she does not follow
    assert (await bob.get("/api/me")).json()["unread"] == 0
    for path in ("/notifications", "/notifications/all"):
        assert "teapot" not in (await bob.get(path)).text
    page = (await alice.get("/notifications")).text
    assert "a teapot is placed" in page and "for you" in page
    async with events(bob, "/events/all", **{"last-event-id": "0"}) as replayed:
        assert await replayed.updates(1) == [marker]  # history replays it to nobody else either
    async with events(alice, **{"last-event-id": "0"}) as replayed:
        assert await replayed.updates(1) == [placed]


async def test_an_order_notifies_each_change_of_status_and_nothing_else(alice: httpx.AsyncClient, db: Database) -> None:
    async with events(alice) as feed:
        order = (await db.orders.insert_one({"user": "alice", "item": "a kettle", "status": "placed"})).inserted_id
        await db.orders.update_one({"_id": order}, {"$set": {"note": "gift wrap"}})  # status unchanged: nothing
        await db.orders.update_one({"_id": order}, {"$set": {"item": "a copper kettle"}})  # in the text, not heard
        await db.orders.update_one({"_id": order}, {"$set": {"status": "shipped"}})
        texts = [update["text"] for update in await feed.updates(2)]
        await db.orders.insert_one({"user": "nobody_here", "item": "a ghost", "status": "placed"})  # no such user
        await db.orders.delete_one({"_id": order})  # the rule hears no deletes: what it told stays told
        last = (await db.orders.insert_one({"user": "alice", "item": "a cup", "status": "placed"})).inserted_id
        (after,) = await feed.updates(1)
    assert texts == ["Your order of a kettle is placed.", "Your order of a copper kettle is shipped."]
    assert after["text"] == "Your order of a cup is placed." and last is not None
    history = (await alice.get("/api/updates")).json()["items"]
    assert [update["text"] for update in history] == [*texts, after["text"]]


async def test_a_document_a_rule_cannot_render_is_logged_once_and_costs_nothing_else(
    alice: httpx.AsyncClient, db: Database, server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gossip")
    await alice.put("/api/me/follows/flash")
    skipped = counted(SKIPPED)
    async with events(alice) as feed:
        await db.episodes.insert_one(episode("Before"))
        bad = [
            (await db.episodes.insert_one(episode("Nowhere", show="no_such_show"))).inserted_id,
            (await db.episodes.insert_one({"show": "flash", "title": "When?", "airs_at": "next week"})).inserted_id,
        ]
        await db.episodes.insert_one({"show": "flash", "title": "Untimed"})  # a missing field renders as ""
        texts = [update["text"] for update in await feed.updates(2)]
        await db.episodes.insert_one(episode("After"))
        (after,) = await feed.updates(1)
    assert texts == ["New episode of The Flash: Before, on Tue 08 Dec", "New episode of The Flash: Untimed, on "]
    assert after["text"].startswith("New episode of The Flash: After")
    assert counted(SKIPPED) - skipped == 2
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    for document_id in bad:
        assert sum(repr(document_id) in warning for warning in warnings) == 1, warnings
    assert "reopening" not in caplog.text


async def test_episodes_inserted_while_the_stream_service_was_down_are_notified_once_in_order(
    settings: Settings, db: Database
) -> None:
    live = gossip_server(settings)
    async with registered(live.url, "rae") as rae:
        await rae.put("/api/me/follows/flash")
    live.stop()
    for number in range(3):
        await db.episodes.insert_one(episode(f"Missed {number}"))
    live = LiveServer(gossip.create(settings), port=live.port).start()
    try:
        async with (
            async_client(base_url=live.url, timeout=10) as again,
        ):
            login = await again.post("/api/auth/login", json={"username": "rae", "password": "a-long-pass"})
            assert login.status_code == 200
            async with events(again, **{"last-event-id": "0"}) as feed:
                received = await feed.updates(3)
                later = await publish(again, "flash", "and nothing twice before this one")
                assert await feed.updates(1) == [later]
    finally:
        live.stop()
    assert [update["text"].split(": ")[1] for update in received] == [f"Missed {n}, on Tue 08 Dec" for n in range(3)]
    assert await db.updates.count_documents({"author": "episodes"}) == 3


async def earlier_process(db: Database) -> str:
    """The epoch of a token an earlier process of the embedded server gave: this host and this pid (as a container's
    server has at every start), started in 1970."""
    epoch = await token_epoch(db)
    assert epoch is not None
    return epoch.partition("@")[0] + "@0"


@pytest.mark.embedded
async def test_a_token_an_earlier_embedded_server_forgot_is_said_as_information_and_counted_then_now_goes_on(
    settings: Settings, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """As at each `make run` but the first: by design of the embedded server, so one INFO line, no warning, saying
    what happens, with the replay command as it is pasted into a shell beside it (the database's address and this
    Python), since the shell knows neither."""
    caplog.set_level(logging.INFO, logger="gossip")
    await prepare(db)
    await put(db.rule_tokens, {"_id": "episodes", "token": KEPT, "epoch": await earlier_process(db),
                               "at": datetime(2026, 12, 1, tzinfo=UTC)})  # fmt: skip
    lost = counted(LOST)
    live = gossip_server(settings)
    try:
        async with registered(live.url, "rae") as rae:
            await rae.put("/api/me/follows/flash")
            async with events(rae) as feed:
                await db.episodes.insert_one(episode("From now"))
                (received,) = await feed.updates(1, timeout=2)
    finally:
        live.stop()
    assert received["text"].startswith("New episode of The Flash: From now")
    assert counted(LOST) - lost == 1
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
    (record,) = [record for record in caplog.records if "starts from now" in record.getMessage()]
    said = record.getMessage()
    assert record.levelno == logging.INFO
    assert said.startswith(
        "watch rule 'episodes' starts from now: the embedded database server forgets its change stream positions "
        "when it stops, so the one an earlier run of it kept is gone, as at every `make run` but the first. A change "
        "made to episodes after 2026-12-01T00:00:00.000Z while no Gossip watched (none if the database ran only with "
        "Gossip) is not notified; to notify any: "
    ), said
    command = said.rpartition("; to notify any: ")[2]
    replay = "-m services.stream.rules replay episodes --since 2026-12-01T00:00:00.000Z"
    assert command.endswith(f"{sys.executable} {replay}")
    shell = {name: value for name, value in os.environ.items() if not name.startswith("MONGO_")}
    pasted = await asyncio.create_subprocess_exec("bash", "-c", command, env={**shell, "SECRET_KEY": "s"},
                                                  stderr=asyncio.subprocess.PIPE)  # fmt: skip
    _, told = await asyncio.wait_for(pasted.communicate(), 60)
    assert pasted.returncode == 0 and "went over 1 documents and wrote 0 updates" in told.decode(), told


async def episodes_kept(settings: Settings, db: Database, epoch: str | None) -> RuleStream:
    """The `episodes` rule's stream, its position kept on 1 December with the server of `epoch`."""
    await prepare(db)
    rule = next(rule for rule in load(RULES) if rule.name == "episodes")
    await put(db.rule_tokens, {"_id": "episodes", "token": KEPT, "epoch": epoch,
                               "at": datetime(2026, 12, 1, tzinfo=UTC)})  # fmt: skip
    return RuleStream(db, rule, Catalogue(db), await token_epoch(db), lease=settings.rule_lease)


@pytest.mark.embedded
@pytest.mark.parametrize("kept", ["another-host:1", None], ids=["another host", "mongodb"])
async def test_a_token_kept_with_another_database_server_is_warned_of_and_dropped(
    settings: Settings, db: Database, caplog: pytest.LogCaptureFixture, kept: str | None
) -> None:
    """Data moved from another server (another host's embedded one, or MongoDB) brings a token this server never
    gave: not the embedded server's way at a restart, so a warning naming where it came from."""
    caplog.set_level(logging.INFO, logger="gossip")
    stream = await episodes_kept(settings, db, kept)
    assert await stream.options() == {}
    assert await db.rule_tokens.find_one({"_id": "episodes"}) is None
    (record,) = [record for record in caplog.records if "starts from now" in record.getMessage()]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(
        f"watch rule 'episodes' starts from now: its position was kept with another database server "
        f"({kept or 'MongoDB'}), which this one cannot resume. A change made to episodes after "
        "2026-12-01T00:00:00.000Z is not notified; to notify any: "
    )


@pytest.mark.embedded
async def test_a_token_this_embedded_server_gave_is_resumed_from_in_silence(
    settings: Settings, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gossip")
    stream = await episodes_kept(settings, db, await token_epoch(db))
    assert await stream.options() == {"resume_after": KEPT}
    assert not [record for record in caplog.records if "starts from now" in record.getMessage()]


async def test_replay_notifies_what_was_missed_since_a_time_and_nothing_twice(settings: Settings, db: Database) -> None:
    await prepare(db)
    rule = next(rule for rule in load(RULES) if rule.name == "episodes")
    ids = (await db.episodes.insert_many([episode(f"Missed {n}") for n in range(3)])).inserted_ids
    since = datetime.now(UTC) - timedelta(minutes=1)
    assert await replay(db, rule, since) == (3, 3)
    assert await replay(db, rule, since) == (3, 0)  # told already
    assert await replay(db, rule, since + timedelta(hours=1)) == (0, 0)  # nothing inserted since then
    stored = await db.updates.find({}, {"source_doc": 1, "seq": 1}).sort("seq", 1).to_list()
    assert [update["source_doc"] for update in stored] == [document_key(rule, document_id) for document_id in ids]


async def rules_command(settings: Settings, *arguments: str, rules: Path = RULES) -> tuple[int, str]:
    """`python -m services.stream.rules ...` as docs/watch-rules.md has it, against the test's database: its status
    and log."""
    environment = {**os.environ, "MONGO_URL": settings.mongo_url, "MONGO_DB": settings.mongo_db,
                   "WATCH_RULES": str(rules), "SECRET_KEY": settings.secret_key}  # fmt: skip
    command = [sys.executable, "-m", "services.stream.rules", *arguments]
    ran = await asyncio.create_subprocess_exec(*command, env=environment, stderr=asyncio.subprocess.PIPE)
    _, said = await asyncio.wait_for(ran.communicate(), 60)
    return ran.returncode or 0, said.decode()


async def test_the_check_command_passes_the_shipped_rules_and_names_a_wrong_one(
    settings: Settings, tmp_path: Path
) -> None:
    status, said = await rules_command(settings, "check")
    assert status == 0 and "2 watch rules" in said, said
    wrong = tmp_path / "gossip.toml"
    wrong.write_text(RULES.read_text().replace("{show_title}", "{show_title.upper}"))
    status, said = await rules_command(settings, "check", rules=wrong)
    assert status != 0 and "watch rule 'episodes', text: {show_title.upper} is not a field's name" in said


async def test_the_documented_replay_command_notifies_what_no_stream_heard(settings: Settings, db: Database) -> None:
    await db.episodes.insert_many([episode(f"Missed {n}") for n in range(3)])
    since = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status, said = await rules_command(settings, "replay", "episodes", "--since", since)
    assert status == 0, said
    assert "went over 3 documents and wrote 3 updates" in said
    texts = [update["text"] for update in await db.updates.find().sort("seq", 1).to_list()]
    assert texts == [f"New episode of The Flash: Missed {n}, on Tue 08 Dec" for n in range(3)]


async def test_a_token_mongodb_says_has_left_the_oplog_is_dropped_loudly_and_the_stream_starts_from_now(
    settings: Settings, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """ChangeStreamHistoryLost (code 286) as PyMongo raises it when MongoDB cannot resume from a kept token. The
    embedded server never answers it, so the stream's `on_open` raises it, inside the attempt to open where
    MongoDB's answer would come. A network blip before it keeps the place; the lost history is said once, with the
    command to run, and counted, and the stream opens from now and hears what comes next."""
    caplog.set_level(logging.ERROR, logger="gossip")
    stream = await episodes_kept(settings, db, await token_epoch(db))
    failures = [OperationFailure("Resume of change stream was not possible", HISTORY_LOST_CODE),
                OperationFailure("a network blip", 6)]  # fmt: skip
    kept_at_open: list[dict[str, Any] | None] = []
    changes: list[Change] = []

    async def on_open() -> None:
        kept_at_open.append(await db.rule_tokens.find_one({"_id": "episodes"}))
        if failures:
            raise failures.pop()

    async def on_change(change: Change) -> None:
        changes.append(change)

    lost, streams = counted(LOST), ChangeStreams()
    await streams.start([ChangeStream(db.episodes, [], on_open, on_change, resume=stream)])
    try:
        await db.episodes.insert_one(episode("From now"))
        await wait_until(lambda: changes)
    finally:
        await streams.stop()
    tokens = [None if kept is None else kept["token"] for kept in kept_at_open]
    assert tokens[:2] == [KEPT] * 2  # the blip reopened from the kept place
    assert len(tokens) == 3 and tokens[2] not in (None, KEPT)  # lost: from now, kept at once
    assert counted(LOST) - lost == 1
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len([error for error in errors if "LOST ITS PLACE" in error]) == 1, errors
    assert "replay episodes --since 2026-12-01T00:00:00.000Z" in caplog.text
    assert [change["fullDocument"]["title"] for change in changes] == ["From now"]
