"""The stream service reports who has feeds open: a feed opened shows its user as looking, with the shows it
carries, within a report interval; closed, the user drops out; a stopped process withdraws its report."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import httpx

from dev.processes import ServiceProcess
from services.stream.hub import Hub
from services.stream.presence import reported
from shared import presence
from shared.db import Database, utcnow
from shared.presence import EVERY_SHOW
from shared.settings import Settings
from tests.support.accounts import registered
from tests.support.clock import Clock
from tests.support.http import async_client
from tests.support.servers import gossip_server
from tests.support.sse import events
from tests.support.waiting import wait_until


async def _carried(db: Database) -> dict[str, list[str]]:
    carried: dict[str, list[str]] = {}
    for report in await presence.current(db, utcnow()):  # as the services read it (shared/reports.py `live`)
        carried.update(report["users"])
    return carried


async def test_a_report_holds_for_three_intervals_of_the_injected_clock_and_is_withdrawn(db: Database) -> None:
    """Written at once, then once a minute: the test reads its lease on the clock it was written by."""
    clock = Clock(utcnow().replace(microsecond=0))
    async with reported(db, Hub(), 60, clock):
        report = await wait_until(lambda: db.presence.find_one({}))
        assert (report["reported_at"], report["expires_at"]) == (clock.at, clock.at + timedelta(seconds=180))
        assert await presence.current(db, clock.advance(179.999)) == [report]
        assert await presence.current(db, clock.advance(0.001)) == []
    assert await db.presence.count_documents({}) == 0


async def test_open_feeds_are_reported_and_closed_ones_drop_out(settings: Settings, db: Database) -> None:
    live = gossip_server(replace(settings, presence_interval=0.2))
    try:
        async with registered(live.url, "alice") as alice:
            assert (await alice.put("/api/me/follows/sherlock")).status_code == 204
            user = await db.users.find_one({"username": "alice"})
            assert user is not None
            user_id = user["_id"]
            async with events(alice, "/events"), events(alice, "/events/all"):
                assert await wait_until(lambda: _has(db, user_id, [EVERY_SHOW, "sherlock"]))
                assert await presence.looking(db, [user_id], utcnow()) == {user_id}
            await wait_until(lambda: _gone(db, user_id))
            assert await presence.looking(db, [user_id], utcnow()) == set()
    finally:
        live.stop()
    assert await db.presence.count_documents({}) == 0  # withdrawn at shutdown, not left to expire


async def _has(db: Database, user_id: str, shows: list[str]) -> bool:
    return sorted((await _carried(db)).get(user_id, [])) == sorted(shows)


async def _gone(db: Database, user_id: str) -> bool:
    return user_id not in await _carried(db)


@contextlib.asynccontextmanager
async def _feed(http: httpx.AsyncClient, stream: ServiceProcess, path: str) -> AsyncIterator[None]:
    """A feed of `http`'s user opened on another stream process, with the same session cookie."""
    async with async_client(base_url=stream.url, cookies=http.cookies) as there, events(there, path):
        yield


async def _watching(auth: str, slug: str) -> int:
    async with async_client(base_url=auth) as http:
        response = await http.get(f"/api/shows/{slug}/presence")
        assert response.status_code == 200, response.text
        (key,) = response.json()  # a count and nothing else: never who
        assert key == "watching"
        return int(response.json()["watching"])


async def test_watching_counts_people_across_stream_processes_and_drops_the_gone(settings: Settings) -> None:
    """At the default PRESENCE_INTERVAL, as deployed. Alice follows sherlock and watches her followed shows on both
    processes; Bob watches every show on the second: sherlock has two watching, each counted once. Alice's feeds
    close: one, within 5 s. Bob's process is killed, so it withdraws nothing: none, within 15 s."""
    assert "PRESENCE_INTERVAL" not in os.environ  # the processes run with the default
    with (
        ServiceProcess("services.auth.app", settings) as auth,
        ServiceProcess("services.stream.app", settings) as first,
        ServiceProcess("services.stream.app", settings) as second,
    ):
        async with registered(auth.url, "alice") as alice, registered(auth.url, "bob") as bob:
            assert (await alice.put("/api/me/follows/sherlock")).status_code == 204
            async with _feed(bob, second, "/events/all"):
                async with _feed(alice, first, "/events"), _feed(alice, second, "/events"):
                    assert await wait_until(lambda: _counted(auth.url, "sherlock", 2), timeout=5)
                    assert await _watching(auth.url, "flash") == 1  # Bob's feed of every show; Alice follows sherlock
                assert await wait_until(lambda: _counted(auth.url, "sherlock", 1), timeout=5)
                assert second.process is not None
                second.process.kill()
                assert await wait_until(lambda: _counted(auth.url, "sherlock", 0), timeout=15)


async def _counted(auth: str, slug: str, count: int) -> bool:
    return await _watching(auth, slug) == count
