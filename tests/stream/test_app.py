"""The stream service over real sockets: a live uvicorn, the embedded database, updates published over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import psutil
import pytest

from services.all import app as gossip
from services.stream import audience
from services.stream.feed import OVERFLOW, STALLED, Feed
from shared.db import Database, as_datetime, next_seq, utcnow
from shared.settings import Settings
from shared.updates import COUNT_CAP, personal_topics
from tests.support.accounts import PASSWORD, json_error, registered, user_id
from tests.support.http import async_client
from tests.support.memory import alive, collector_off
from tests.support.servers import LiveServer, gauge, serving
from tests.support.sse import events
from tests.support.updates import TopicReads, addressed, publish, stored_update
from tests.support.waiting import wait_until


async def insert_update(db: Database, seq: int, show: str = "flash", text: str = "") -> None:
    """Straight into MongoDB with a chosen seq: how a late commit or a failed publish looks to the watcher."""
    await db.updates.insert_one(stored_update(seq, show, text))


async def test_events_need_a_session(client: httpx.AsyncClient) -> None:
    for path in ("/events", "/events/all"):
        assert json_error(await client.get(path))[:2] == (401, "unauthorized")


async def test_a_feed_for_a_page_of_another_user_is_refused_as_signed_out(alice: httpx.AsyncClient) -> None:
    for path in ("/events?user=bob", "/events/all?after=0&user=bob"):
        assert json_error(await alice.get(path)) == (403, "other_user", {"user": "not the signed-in user"})
    async with alice.stream("GET", "/events?user=alice") as response:
        assert response.status_code == 200


async def test_stream_headers_and_retry_on_connect(alice: httpx.AsyncClient) -> None:
    async with alice.stream("GET", "/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        first = await anext(response.aiter_lines())
        assert first == "retry: 2000"


async def test_an_idle_stream_is_pinged(alice: httpx.AsyncClient) -> None:
    async with alice.stream("GET", "/events") as response:
        lines = response.aiter_lines()

        async def ping() -> None:
            while await anext(lines) != ": ping":
                pass

        await asyncio.wait_for(ping(), 5)  # the test settings ping every second


async def test_followed_show_is_delivered_unfollowed_is_not_and_all_gets_both(alice: httpx.AsyncClient) -> None:
    await alice.put("/api/me/follows/flash")
    async with events(alice, "/events") as followed, events(alice, "/events/all") as everything:
        sent = [await publish(alice, show, f"{show} news") for show in ("flash", "game_of_thrones", "flash")]
        assert await followed.updates(2) == [sent[0], sent[2]]
        assert await everything.updates(3) == sent


async def test_last_event_id_replays_what_was_missed_once_in_order(alice: httpx.AsyncClient) -> None:
    await alice.put("/api/me/follows/flash")
    async with events(alice) as feed:
        first = await publish(alice, "flash", "before the drop")
        assert await feed.updates(1) == [first]
    missed = []
    for i in range(20):
        missed.append(await publish(alice, "flash", f"missed {i}"))
        await publish(alice, "sherlock", f"not followed {i}")
    async with events(alice, **{"last-event-id": str(first["seq"])}) as feed:
        assert await feed.updates(20) == missed
        live = await publish(alice, "flash", "after the seam")
        assert await feed.updates(1) == [live]


async def test_after_parameter_replays_for_a_page(alice: httpx.AsyncClient) -> None:
    await alice.put("/api/me/follows/flash")
    shown = await publish(alice, "flash", "on the page")
    later = await publish(alice, "flash", "published before the page connected")
    async with events(alice, f"/events?after={shown['seq']}") as feed:
        assert await feed.updates(1) == [later]
    assert json_error(await alice.get("/events?after=abc"))[0:3:2] == (422, {"after": "a non-negative integer"})


async def test_last_event_id_wins_over_after(alice: httpx.AsyncClient) -> None:
    """A browser reconnecting to a page's `?after=` URL sends the newer Last-Event-ID: that one counts."""
    await alice.put("/api/me/follows/flash")
    sent = [await publish(alice, "flash", f"update {i}") for i in range(3)]
    resumed = {"last-event-id": str(sent[1]["seq"])}
    async with events(alice, f"/events?after={sent[0]['seq']}", **resumed) as feed:
        assert await feed.updates(1) == [sent[2]]
        live = await publish(alice, "flash", "live")
        assert await feed.updates(1) == [live]  # and nothing of the older range came before it


async def test_a_resume_point_beyond_every_issued_seq_still_gets_the_live_updates(alice: httpx.AsyncClient) -> None:
    """Made up, or left from a database since wiped: it must not hold back what comes next."""
    await alice.put("/api/me/follows/flash")
    async with events(alice, **{"last-event-id": "1000000"}) as feed:
        live = await publish(alice, "flash", "after a made-up resume point")
        assert await feed.updates(1) == [live]


async def test_a_bad_resume_point_is_422_even_beside_a_good_one(alice: httpx.AsyncClient) -> None:
    for path, last_event_id in (("/events?after=" + "9" * 20, "1"), ("/events?after=1", ""), ("/events?after=", "1")):
        status, _, fields = json_error(await alice.get(path, headers={"last-event-id": last_event_id}))
        assert status == 422 and set(fields) <= {"after", "Last-Event-ID"}, (path, last_event_id)


async def test_follow_change_takes_effect_on_an_open_stream(alice: httpx.AsyncClient) -> None:
    async with events(alice) as feed:
        await alice.put("/api/me/follows/flash")
        assert (await feed.named("follows")).json() == {"follows": ["flash"]}
        flash = await publish(alice, "flash", "now followed")
        assert await feed.updates(1) == [flash]
        await alice.delete("/api/me/follows/flash")
        assert (await feed.named("follows")).json() == {"follows": []}
        await publish(alice, "flash", "no longer followed")
        await alice.put("/api/me/follows/sherlock")
        assert (await feed.named("follows")).json() == {"follows": ["sherlock"]}
        sherlock = await publish(alice, "sherlock", "the next one she gets")
        assert await feed.updates(1) == [sherlock]


async def test_logout_ends_the_sessions_open_streams(server: str) -> None:
    async with (
        registered(server, "bob") as bob,
        registered(server, "carol") as carol,
        events(bob) as bobs,
        events(carol) as carols,
    ):
        await bob.post("/api/auth/logout", headers={"content-type": "application/json"})
        try:
            await asyncio.wait_for(bobs.updates(1), 5)
            raise AssertionError("the stream should have ended")
        except EOFError:
            pass
        await carol.put("/api/me/follows/flash")
        assert (await carols.named("follows")).json() == {"follows": ["flash"]}
        update = await publish(carol, "flash", "carol is still connected")
        assert await carols.updates(1) == [update]


async def test_late_commit_is_delivered_in_seq_order(alice: httpx.AsyncClient, db: Database) -> None:
    await alice.put("/api/me/follows/flash")
    async with events(alice) as feed:
        first, second = await next_seq(db), await next_seq(db)
        await insert_update(db, second)
        await insert_update(db, first)
        assert [u["seq"] for u in await feed.updates(2)] == [first, second]


async def test_an_update_deleted_while_held_for_its_turn_never_goes_out(alice: httpx.AsyncClient, db: Database) -> None:
    await alice.put("/api/me/follows/flash")
    async with events(alice) as feed:
        first, deleted = await next_seq(db), await next_seq(db)
        await insert_update(db, deleted)  # held: `first` has not committed yet
        await db.updates.delete_one({"seq": deleted})
        await insert_update(db, first)
        after = await publish(alice, "flash", "after both")
        assert [u["seq"] for u in await feed.updates(2)] == [first, after["seq"]]


async def test_an_update_that_commits_below_a_pages_after_still_reaches_its_feed(
    alice: httpx.AsyncClient, db: Database
) -> None:
    """A page's ?after= is the newest update stored when it was made: one below it may still be committing."""
    await alice.put("/api/me/follows/flash")
    late, stored = await next_seq(db), await next_seq(db)
    await insert_update(db, stored)
    async with events(alice, f"/events?after={stored}") as feed:
        await insert_update(db, late)
        assert [u["seq"] for u in await feed.updates(1)] == [late]


async def test_a_hole_is_skipped_after_the_wait(alice: httpx.AsyncClient, db: Database) -> None:
    await alice.put("/api/me/follows/flash")
    async with events(alice) as feed:
        hole, present = await next_seq(db), await next_seq(db)  # `hole` never commits: a failed publish
        await insert_update(db, present)
        assert [u["seq"] for u in await feed.updates(1, timeout=5)] == [present]
        after = await publish(alice, "flash", "after the hole")
        assert await feed.updates(1) == [after]
        assert await db.updates.count_documents({"seq": hole}) == 0


@pytest.fixture
def patient(settings: Settings, db: Database) -> Iterator[str]:
    """The app with a send timeout no test waits out: only an overflow can end a feed for its client there. After
    `db`, so stopped before its database is dropped: a large one dropped under open change streams broke the
    embedded server for the tests after."""
    app = gossip.create(dataclasses.replace(settings, send_timeout=60))
    live = LiveServer(app).start()
    yield live.url
    live.stop()


async def test_a_client_that_does_not_read_overflows_its_queue_while_others_keep_receiving(
    patient: str, db: Database
) -> None:
    """Its feed ends once its queue is full; its response, once it has sent what the queue held: here, when the
    client reads again (a client that never does is dropped after the send timeout: tests/stream/test_feed.py)."""
    async with registered(patient, "alice") as alice:
        await alice.put("/api/me/follows/flash")
        before = await _slow_consumers(alice)
        with socket.socket() as stalled:
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: the window it offers
            stalled.connect(("127.0.0.1", int(patient.rsplit(":", 1)[1])))
            cookie = f"gossip_session={alice.cookies['gossip_session']}"
            stalled.sendall(f"GET /events HTTP/1.1\r\nhost: x\r\ncookie: {cookie}\r\n\r\n".encode())
            text = "€" * 1000  # 3 KB a frame: 12 MB in all, far beyond socket buffers (4 MB here) and the 1 MiB queue
            async with events(alice) as reader:
                for _ in range(20):  # in steps the reading client keeps up with
                    last = await next_seq(db, count=200)
                    batch = range(last - 199, last + 1)
                    await db.updates.insert_many([stored_update(seq, text=text, author="load") for seq in batch])
                    assert [u["seq"] for u in await reader.updates(200)] == list(batch)
            stalled.settimeout(5)
            received, deadline = b"", time.monotonic() + 20  # had its feed not ended, its pings would go on
            while (chunk := stalled.recv(1 << 20)) and time.monotonic() < deadline:
                received += chunk
        assert received.count(b"event: update") < 4000  # it ended instead of growing,
        assert received.endswith(b"\r\n0\r\n\r\n")  # cleanly, after what its queue held,
        expected = {OVERFLOW: before[OVERFLOW] + 1, STALLED: before[STALLED]}  # and for its overflow
        await wait_until(lambda: _slow_consumers(alice, expected))


async def stalled_feed(server: str, alice: httpx.AsyncClient) -> socket.socket:
    """A feed of alice's, following flash, on a socket that takes a few KB and is then never read."""
    await alice.put("/api/me/follows/flash")
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", int(server.rsplit(":", 1)[1])))
    cookie = f"gossip_session={alice.cookies['gossip_session']}"
    stalled.sendall(f"GET /events HTTP/1.1\r\nhost: x\r\ncookie: {cookie}\r\n\r\n".encode())
    return stalled


def server_side(port: int, client: socket.socket) -> list[object]:
    """The server's end of `client`'s connection, while this process (which runs the server) holds it open."""
    peer = client.getsockname()[1]
    return [c for c in psutil.Process().net_connections("tcp") if c.laddr.port == port and c.raddr and
            c.raddr.port == peer]  # fmt: skip


async def test_a_dropped_feed_releases_its_socket_though_its_client_never_reads(
    server: str, alice: httpx.AsyncClient, db: Database
) -> None:
    """A graceful close waits for the client to read what is buffered: for ever, from one that never does."""
    stalled, port = await stalled_feed(server, alice), int(server.rsplit(":", 1)[1])
    await wait_until(lambda: server_side(port, stalled))
    text = "€" * 1000
    for _ in range(5):  # 3 MB: more than the socket buffers hold, less than the feed's queue
        last = await next_seq(db, count=200)
        await db.updates.insert_many(
            [stored_update(seq, text=text, author="load") for seq in range(last - 199, last + 1)]
        )
    await wait_until(lambda: not server_side(port, stalled), timeout=15)  # SEND_TIMEOUT is 2 s here
    stalled.close()


async def test_a_user_has_at_most_feeds_per_user_open(settings: Settings) -> None:
    """Refused before the stream starts, with the JSON error and Retry-After; another user is not affected."""
    with serving(dataclasses.replace(settings, feeds_per_user=3)) as server:
        async with registered(server, "ann") as ann, contextlib.AsyncExitStack() as open_feeds:
            for path in ("/events", "/events/all", "/events"):
                await open_feeds.enter_async_context(events(ann, path))
            refused = await ann.get("/events/all")
            assert json_error(refused)[:2] == (429, "throttled") and "3 live feeds" in refused.json()["detail"]
            assert int(refused.headers["retry-after"]) >= 1
            async with registered(server, "ben") as ben, events(ben):
                pass
            await open_feeds.aclose()
            await wait_until(lambda: gauge(server, "gossip_stream_connections") == 0)  # the server has seen them go
            async with events(ann):  # closed ones no longer count
                pass


async def test_a_user_opens_at_most_feed_opens_per_user_feeds_per_window(settings: Settings) -> None:
    """Feeds closed at once still count: each opening costs a replay read. Refused before the stream starts."""
    with serving(dataclasses.replace(settings, feed_opens_per_user=3, feed_open_window=600)) as server:
        async with registered(server, "ann") as ann, registered(server, "ben") as ben:
            for path in ("/events", "/events/all", "/events"):
                async with events(ann, path):
                    pass
            refused = await ann.get("/events")
            assert json_error(refused)[:2] == (429, "throttled") and "faster" in refused.json()["detail"]
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.headers["content-type"] == "application/json"
            async with events(ben):  # another user is not affected
                pass


async def test_a_feed_the_hub_refuses_takes_no_opening_and_writes_nothing(settings: Settings, db: Database) -> None:
    """The hub's limits are asked before the opening limit: however often a user at FEEDS_PER_USER (or a full
    server) is refused, each answer is the hub's, no bucket or session changes, and the openings stay theirs."""
    limits = dataclasses.replace(settings, feeds_per_user=1, feed_opens_per_user=3, feed_open_window=600)
    with serving(limits) as server:
        async with registered(server, "ann") as ann:
            async with events(ann):
                before = [await db[name].find().sort("_id").to_list() for name in ("buckets", "sessions", "users")]
                for _ in range(5):
                    refused = await ann.get("/events")
                    assert json_error(refused)[:2] == (429, "throttled") and "1 live feeds" in refused.json()["detail"]
                    assert int(refused.headers["retry-after"]) >= 1
                after = [await db[name].find().sort("_id").to_list() for name in ("buckets", "sessions", "users")]
                assert after == before
            await wait_until(lambda: gauge(server, "gossip_stream_connections") == 0)
            for _ in range(2):  # the two openings left of three
                async with events(ann):
                    pass
            assert "faster" in (await ann.get("/events")).json()["detail"]


async def test_a_process_holds_at_most_max_feeds(settings: Settings) -> None:
    with serving(dataclasses.replace(settings, max_feeds=2)) as server:
        async with registered(server, "ann") as ann, registered(server, "ben") as ben, events(ann), events(ben):
            refused = await ann.get("/events/all")
            assert json_error(refused)[:2] == (503, "unavailable") and int(refused.headers["retry-after"]) >= 1


async def _slow_consumers(http: httpx.AsyncClient, expected: dict[str, float] | None = None) -> Any:
    """Feeds ended for their clients so far, by reason (the counter is process-wide, so a test compares); with
    `expected`, whether they are that."""
    text = (await http.get("/metrics")).text
    found = re.findall(r'^gossip_stream_slow_consumer_disconnects_total\{reason="(\w+)"\} (\S+)$', text, re.MULTILINE)
    counts = {reason: float(value) for reason, value in found}
    return counts if expected is None else counts == expected


async def test_metrics_name_the_stream_figures(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    for name in (
        "gossip_stream_connections",
        "gossip_stream_events_delivered_total",
        "gossip_stream_change_stream_restarts_total",
        "gossip_stream_slow_consumer_disconnects_total",
    ):
        assert name in text


async def test_a_read_in_one_place_reaches_every_feed_of_the_user_with_the_unread_count(server: str) -> None:
    async with registered(server, "bob") as bob, registered(server, "alice") as alice:
        await alice.put("/api/me/follows/flash")
        async with (
            registered(server, "alice2") as _,  # someone else's feed hears nothing of alice's reads
            events(alice) as followed,
            events(alice, "/events/all") as everything,
            async_client(base_url=server, cookies=await _logged_in(server, "alice")) as laptop,
            events(laptop) as other_device,
        ):
            sent = [await publish(bob, "flash", f"news {i}") for i in range(3)]
            for feed in (followed, everything, other_device):
                assert await feed.updates(3) == sent
            await alice.post("/api/me/read", json={"seq": sent[1]["seq"]})
            for feed in (followed, everything, other_device):
                read = await feed.next()  # no id: Last-Event-ID stays put
                assert (read.event, read.id, read.json()) == (
                    "read",
                    None,
                    {"last_read_seq": sent[1]["seq"], "unread": 1},
                )
            assert (await alice.get("/api/me")).json()["unread"] == 1


async def test_a_read_made_before_the_feed_opened_comes_first_when_the_page_shows_another(server: str) -> None:
    """The trial's race: the last page sends its read mark as the next page is made, so that mark reaches no feed of
    the next page. Its feed names the mark the page shows (?read=) and is told the newer one before anything else,
    with the count as of the last update the page has; a page that shows the user's mark is told nothing."""
    async with registered(server, "bob") as bob, registered(server, "alice") as alice:
        await alice.put("/api/me/follows/flash")
        sent = [await publish(bob, "flash", f"news {i}") for i in range(4)]
        await alice.post("/api/me/read", json={"seq": sent[0]["seq"]})
        shown, page = sent[0]["seq"], sent[2]["seq"]  # the page was made with this mark and these updates
        async with events(alice) as other_tab:
            assert (await alice.post("/api/me/read", json={"seq": sent[1]["seq"]})).status_code == 204
            assert (await other_tab.named("read")).json()["last_read_seq"] == sent[1]["seq"]  # the audience is past it
        async with events(alice, f"/events?after={page}&read={shown}") as feed:
            read = await feed.next()
            assert (read.event, read.json()) == ("read", {"last_read_seq": sent[1]["seq"], "unread": 1})
            assert await feed.updates(1) == [sent[3]]  # the history after it, counted on by the page
        async with events(alice, f"/events?after={sent[3]['seq']}&read={sent[1]['seq']}") as feed:
            live = await publish(bob, "flash", "live")
            assert (await feed.next()).json() == live  # no read event before it


async def test_a_malformed_read_mark_is_422_naming_it(alice: httpx.AsyncClient) -> None:
    for path in ("/events?read=x", "/events/all?after=0&read=-1", "/events?read="):
        assert json_error(await alice.get(path))[0:3:2] == (422, {"read": "a non-negative integer"}), path


async def _logged_in(server: str, username: str) -> dict[str, str]:
    """A second session of the user: another device."""
    async with async_client(base_url=server) as http:
        response = await http.post("/api/auth/login", json={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return {"gossip_session": response.cookies["gossip_session"]}


async def test_a_follow_change_reaches_the_every_show_feed_too(alice: httpx.AsyncClient) -> None:
    async with events(alice, "/events/all") as everything:
        await alice.put("/api/me/follows/flash")
        assert (await everything.named("follows")).json() == {"follows": ["flash"]}
        assert (await everything.next()).json() == {"last_read_seq": 0, "unread": 0}  # the count with its follows


async def test_a_resume_far_back_gets_resync_then_the_newest_updates(alice: httpx.AsyncClient, db: Database) -> None:
    await alice.put("/api/me/follows/flash")
    last = await next_seq(db, count=1000)
    async with events(alice, "/events/all") as live:  # once it has all 1000, the watcher has delivered them
        await db.updates.insert_many([stored_update(seq) for seq in range(last - 999, last + 1)])
        await live.updates(1000)
    async with events(alice, **{"last-event-id": str(last - 1000)}) as feed:
        resync = await feed.next()
        assert (resync.event, resync.id) == ("resync", None)
        assert resync.json() == {"after": last - 1000, "resume": last - 500, "missed": COUNT_CAP}  # 500: that or more
        assert [update["seq"] for update in await feed.updates(500)] == list(range(last - 499, last + 1))


async def test_a_session_expired_on_the_server_ends_its_stream(alice: httpx.AsyncClient, db: Database) -> None:
    async with events(alice) as feed:
        await db.sessions.update_many({}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}})  # as in mongosh
        expired = await feed.next()
        assert (expired.event, expired.id, expired.json()) == ("expired", None, {})
        with pytest.raises(EOFError):
            await feed.next()
    assert json_error(await alice.get("/events"))[:2] == (401, "unauthorized")


async def test_a_renewal_past_the_absolute_age_does_not_keep_a_stream_open(
    alice: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    """A session renewed by a process that knows no absolute age (or by hand) still ends its feeds on time."""
    async with events(alice) as feed:
        session = await db.sessions.find_one({})
        assert session is not None
        session.update(created_at=utcnow() - timedelta(seconds=settings.session_absolute_age - 1),
                       expires_at=utcnow() + timedelta(days=7))  # fmt: skip
        await db.sessions.replace_one({"_id": session["_id"]}, session)
        expired = await feed.named("expired", timeout=5)
        assert (expired.id, expired.json()) == (None, {})


async def test_a_session_whose_time_runs_out_ends_its_stream_with_expired(settings: Settings) -> None:
    live = LiveServer(gossip.create(replace(settings, session_max_age=3)))
    try:
        async with registered(live.start().url, "tia") as tia, events(tia) as feed:
            expired = await feed.named("expired", timeout=5)  # no change event: the heartbeat sees the time is up
            assert (expired.id, expired.json()) == (None, {})
    finally:
        live.stop()


async def test_a_feed_lives_on_through_its_sessions_renewal(settings: Settings, db: Database) -> None:
    """A sliding session renewed by any request while its feed is open moves the feed's end with it: the page's feed
    is not cut off with `expired` at the end the session had when the feed opened. Time passing is what is tested:
    the waits are for the session's own clock, at most a few seconds."""
    max_age = 6
    live = LiveServer(gossip.create(replace(settings, session_max_age=max_age)))
    try:
        async with registered(live.start().url, "uma") as uma, events(uma, "/events/all") as feed:
            session = await db.sessions.find_one({})
            assert session is not None
            first_end = as_datetime(session["expires_at"])
            half_life = first_end - timedelta(seconds=max_age / 2)
            await wait_until(lambda: utcnow() > half_life, timeout=max_age)  # from now on, a request renews it
            renewed = await uma.get("/api/me")
            assert renewed.status_code == 200 and "gossip_session=" in renewed.headers["set-cookie"]
            past = first_end + timedelta(seconds=2 * settings.ping_interval)  # a heartbeat that would end it, too
            await wait_until(lambda: utcnow() > past, timeout=3 * max_age)
            update = await publish(uma, "flash", "still here")
            assert await feed.updates(1) == [update]
    finally:
        live.stop()


async def test_muting_a_show_takes_it_off_open_feeds_and_out_of_the_count_at_once(server: str) -> None:
    """A change made in one tab (here a PUT) reaches the other tabs' feeds: the followed feed stops carrying the show
    and its unread count drops; /events/all carries the show still."""
    async with (
        registered(server, "mia") as mia,
        registered(server, "ned") as ned,
    ):
        for show in ("flash", "sherlock"):
            await mia.put(f"/api/me/follows/{show}")
        async with events(mia) as followed, events(mia, "/events/all") as everything:
            first = await publish(ned, "flash", "before the mute")
            assert await followed.updates(1) == [first] and await everything.updates(1) == [first]
            muted = await mia.put("/api/me/preferences", json={"shows": {"flash": "muted"}})
            for feed in (followed, everything):
                assert (await feed.named("preferences")).json() == muted.json()
                assert (await feed.named("read")).json() == {"last_read_seq": 0, "unread": 0}
            assert (await mia.get("/api/me")).json()["unread"] == 0
            hidden, shown = await publish(ned, "flash", "while muted"), await publish(ned, "sherlock", "heard")
            assert await followed.updates(1) == [shown]  # the muted show's update never came before it
            assert await everything.updates(2) == [hidden, shown]
            await mia.put("/api/me/preferences", json={"shows": {"flash": "push"}})
            assert (await followed.named("read")).json() == {"last_read_seq": 0, "unread": 3}
            again = await publish(ned, "flash", "heard again")
            assert await followed.updates(1) == [again]
        assert (await mia.get("/api/me")).json() == {"username": "mia", "follows": ["flash", "sherlock"], "unread": 4}


async def test_a_muted_personal_topic_stays_off_notifications_but_all_notifs_shows_it(
    server: str, db: Database
) -> None:
    """Mia mutes her orders, a topic of the updates addressed to her alone: her open Notifications feed is not sent
    her next order, nor is it counted, listed on the Notifications page or replayed to that feed as it reconnects;
    her All Notifs feed and page have it. Back at live, her next order reaches the feed."""
    async with registered(server, "mia") as mia, registered(server, "ned") as ned:
        await mia.put("/api/me/follows/flash")
        mias = await user_id(db, "mia")
        await addressed(db, mias, "Your order of a cup is placed.")
        async with events(mia) as followed, events(mia, "/events/all") as everything:
            assert (await mia.get("/api/me")).json()["unread"] == 1
            muted = await mia.put("/api/me/preferences", json={"shows": {"orders": "muted"}})
            assert (muted.status_code, muted.json()["shows"]) == (200, {"orders": "muted"})
            for feed in (followed, everything):
                assert (await feed.named("read")).json() == {"last_read_seq": 0, "unread": 0}
            hidden = await addressed(db, mias, "Your order of a teapot is shipped.")
            heard = await publish(ned, "flash", "Barry runs")
            assert await followed.updates(1) == [heard]  # the muted order never came before it
            assert [u["text"] for u in await everything.updates(2)] == [hidden["text"], heard["text"]]
            assert (await mia.get("/api/me")).json()["unread"] == 1
            notifications, every = (await mia.get("/notifications")).text, (await mia.get("/notifications/all")).text
            assert "Barry runs" in notifications and "teapot" not in notifications and "a cup" not in notifications
            assert "teapot" in every and "a cup" in every
            async with (
                events(mia, **{"last-event-id": "0"}) as again,
                events(mia, "/events/all", **{"last-event-id": "0"}) as all_again,
            ):
                assert await again.updates(1) == [heard]
                assert [u["text"] for u in await all_again.updates(3)] == [
                    "Your order of a cup is placed.",
                    hidden["text"],
                    heard["text"],
                ]
            await mia.put("/api/me/preferences", json={"shows": {"orders": "live"}})
            assert (await followed.named("read")).json() == {"last_read_seq": 0, "unread": 3}
            later = await addressed(db, mias, "Your order of a cup is shipped.")
            assert [u["text"] for u in await followed.updates(1)] == [later["text"]]


async def test_the_preferences_event_tells_a_level_only_where_get_answers_one(
    server: str, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One rule for both (`Preferences.meaningful`): a level for a show of the catalogue or one of her personal
    topics, never a key written by hand into `users` nor one of a show gone from the catalogue. Her topics are read
    for a change of preferences with a level beyond the catalogue's shows, never for a read mark nor a follow."""
    reads = TopicReads(personal_topics)
    monkeypatch.setattr(audience, "personal_topics", reads)
    async with registered(server, "mia") as mia, registered(server, "ned") as ned:
        mias = await user_id(db, "mia")
        await mia.put("/api/me/follows/flash")
        await addressed(db, mias, "Your order of a cup is placed.")
        async with events(mia) as feed, events(mia, "/events/all") as everything:
            hostile = {"flash": "push", "sherlock": "digest", "orders": "muted", "gone": "push", "<b>x</b>": "push"}
            await db.users.update_one({"_id": mias}, {"$set": {"preferences.shows": hostile}})
            levels = {"flash": "push", "sherlock": "digest", "orders": "muted"}
            answer = (await mia.get("/api/me/preferences")).json()
            assert answer["shows"] == levels
            for one in (feed, everything):
                assert (await one.named("preferences")).json() == answer
            assert reads.count == 1
            update = await publish(ned, "flash", "Barry runs")
            assert (await mia.put("/api/me/follows/sherlock")).status_code == 204
            assert (await mia.post("/api/me/read", json={"seq": update["seq"]})).status_code == 204
            while (await feed.named("read")).json()["last_read_seq"] != update["seq"]:
                pass
            assert reads.count == 1
            await db.shows.update_one({"_id": "sherlock"}, {"$set": {"title": " "}})  # no usable show now

            async def sherlock_gone() -> bool:  # once the server's catalogue, read at most once a second, says so
                return "sherlock" not in (await mia.get("/api/me/preferences")).json()["shows"]

            await wait_until(sherlock_gone)
            changed = await mia.put("/api/me/preferences", json={"time_zone": "Europe/Paris"})
            assert changed.json()["shows"] == {"flash": "push", "orders": "muted"}
            assert (await feed.named("preferences")).json() == changed.json()


async def test_closed_feeds_are_freed_as_their_responses_end_not_left_for_the_collector(
    alice: httpx.AsyncClient, server: str
) -> None:
    """A feed, the task that sends it and its connection refer to one another: unless the feed lets go of them as it
    closes, a feed that was open for a while waits for a full collection, and under churn the process grows."""
    with collector_off():
        for _ in range(10):
            async with events(alice):  # open once it answered 200
                pass
        await wait_until(lambda: gauge(server, "gossip_stream_connections") == 0)
        await wait_until(lambda: alive(Feed) == 0, timeout=5, interval=0.2)
