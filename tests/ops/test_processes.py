"""The three services as three uvicorn processes with the embedded database, talked to only over HTTP: they share
nothing but MongoDB and the session secret. Two stream processes on one database both deliver every update."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Callable

import httpx

from dev.processes import ServiceProcess
from shared.db import Database
from shared.openapi import PATH, document
from shared.settings import Settings
from tests.support.accounts import PASSWORD, api_token, registered
from tests.support.http import async_client, get
from tests.support.servers import access_lines
from tests.support.sse import EventReader, events
from tests.support.updates import publish
from tests.support.waiting import wait_until

Launch = Callable[[str], ServiceProcess]
SESSION = "gossip_session"


async def follower(auth: ServiceProcess, username: str) -> tuple[str, str]:
    """Registers on auth and follows flash there; returns the session cookie and an API token."""
    async with registered(auth.url, username) as http:
        assert (await http.put("/api/me/follows/flash")).status_code == 204
        return http.cookies[SESSION], await api_token(http)


def client(process: ServiceProcess, cookie: str | None = None, token: str | None = None) -> httpx.AsyncClient:
    """A client of one process, carrying a cookie or a token obtained from another."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    cookies = {SESSION: cookie} if cookie else {}
    return async_client(base_url=process.url, cookies=cookies, headers=headers, timeout=10)


async def test_register_on_auth_publish_on_ingest_receive_on_stream(launch: Launch) -> None:
    auth, ingest, stream = launch("auth"), launch("ingest"), launch("stream")
    cookie, token = await follower(auth, "ada")
    async with client(stream, cookie=cookie) as viewer, events(viewer) as feed, client(ingest, token=token) as script:
        published = await publish(script, "flash", "Barry is back")
        (received,) = await feed.updates(1)  # `event: update`, and its `id` is the seq
    assert received == published
    assert (received["show"], received["text"], received["author"]) == ("flash", "Barry is back", "ada")


@contextlib.asynccontextmanager
async def two_streams(
    launch: Launch, streams: list[ServiceProcess]
) -> AsyncIterator[tuple[EventReader, EventReader, httpx.AsyncClient]]:
    """A feed of ada's on the first stream process and one of bob's on the second, both following flash, and a
    script that publishes with ada's token; `streams` gets the two processes."""
    auth, ingest = launch("auth"), launch("ingest")
    streams += [launch("stream"), launch("stream")]
    ada, token = await follower(auth, "ada")
    bob, _ = await follower(auth, "bob")
    async with (
        client(streams[0], cookie=ada) as on_first,
        events(on_first) as first,
        client(streams[1], cookie=bob) as on_second,
        events(on_second) as second,
        client(ingest, token=token) as script,
    ):
        yield first, second, script


async def test_two_stream_processes_each_deliver_every_update_once_in_order(launch: Launch) -> None:
    async with two_streams(launch, []) as (first, second, script):
        published = [await publish(script, "flash", f"update {i}") for i in range(20)]
        assert await first.updates(20) == published
        assert await second.updates(20) == published
        last = await publish(script, "flash", "and nothing twice before this one")
        assert await first.updates(1) == [last]
        assert await second.updates(1) == [last]


async def test_two_stream_processes_number_a_raw_insert_once_and_reject_a_poison_one_once(
    launch: Launch, db: Database
) -> None:
    """Both see every insert and both try to claim it: one wins and takes the only number, and one logs the poison."""
    streams: list[ServiceProcess] = []
    async with two_streams(launch, streams) as (first, second, script):
        before = await publish(script, "flash", "published")
        assert await first.updates(1) == await second.updates(1) == [before]
        poison = (await db.updates.insert_one({"show": "flash", "text": "", "author": "dba"})).inserted_id
        await db.updates.insert_one({"show": "flash", "text": "inserted by hand", "author": "dba"})
        (raw,) = await first.updates(1)
        assert await second.updates(1) == [raw] and raw["seq"] == before["seq"] + 1
        after = await publish(script, "flash", "and nothing twice before this one")
        assert await first.updates(1) == await second.updates(1) == [after]
    assert after["seq"] == raw["seq"] + 1  # no number was taken and left unused
    assert await db.updates.count_documents({"text": "inserted by hand"}) == 1
    logged = [line for stream in streams for line in stream.output().splitlines() if repr(poison) in line]
    assert len(logged) == 1 and "is not an update" in logged[0], logged


def test_each_service_serves_the_document_of_its_own_operations(launch: Launch) -> None:
    for name in ("auth", "ingest", "stream"):
        served = get(launch(name).url + PATH, timeout=10).json()
        assert served == document(name, importlib.import_module(f"services.{name}.app").app.routes), name


async def test_each_request_is_one_json_log_line_without_secrets(launch: Launch, settings: Settings) -> None:
    auth, ingest = launch("auth"), launch("ingest")
    async with async_client(base_url=auth.url, timeout=10) as stranger:
        refused = await stranger.post("/api/auth/login", json={"username": "lee", "password": "not-" + PASSWORD})
        assert refused.status_code == 401
    cookie, token = await follower(auth, "lee")
    async with client(ingest, token=token) as script:
        await publish(script, "flash", "logged")
    await wait_until(lambda: any(line["path"] == "/api/updates" for line in access_lines(ingest)))

    register = [line for line in access_lines(auth) if line["path"] == "/api/auth/register"]
    assert len(register) == 1, auth.output()
    assert '"POST /api/auth/register HTTP/1.1"' not in auth.output()  # uvicorn's own access line is off
    (line,) = register
    assert (line["service"], line["method"], line["status"]) == ("auth", "POST", 201)
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    (publishing,) = [line for line in access_lines(ingest) if line["path"] == "/api/updates"]
    assert (publishing["service"], publishing["method"], publishing["status"]) == ("ingest", "POST", 201)
    for process in (auth, ingest):
        output = process.output()
        for secret in (PASSWORD, "not-" + PASSWORD, cookie, token, settings.secret_key):
            assert secret not in output
