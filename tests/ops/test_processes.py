"""The three services as three uvicorn processes with the embedded database, talked to only over HTTP: they share
nothing but MongoDB and the session secret. Two stream processes on one database both deliver every update."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx

from dev.processes import ServiceProcess
from services.auth import links
from services.auth.webpush import dev_vapid_key
from shared.db import Database
from shared.openapi import PATH, document
from shared.settings import Settings
from tests.support.accounts import PASSWORD, api_token, registered
from tests.support.http import async_client, get
from tests.support.mail import follow, link, smtp_server
from tests.support.push_receiver import PushReceiver
from tests.support.servers import access_lines
from tests.support.sse import EventReader, events
from tests.support.updates import publish
from tests.support.waiting import wait_until

Launch = Callable[..., ServiceProcess]
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


def holds_the_lease(process: ServiceProcess) -> bool:
    """Whether the scheduler's lease was this process's, the last it said of it."""
    said = process.output()
    return said.rfind("this process holds the scheduler's lease") > said.rfind("no longer holds the scheduler's lease")


async def test_two_auth_processes_push_each_batch_once_and_mail_one_digest(
    launch: Launch, db: Database, tmp_path: Path
) -> None:
    """Two auth processes, each with its own scheduler on the real clock, a real push receiver and a real SMTP
    server: every batch reaches the device once and the day's digest goes once; when the lease holder stops, the
    other takes the lease over and the next batch still goes, once."""
    public = "http://gossip.test"  # the links in mail name the site as people reach it, a gateway in front
    async with smtp_server() as (smtp_url, inbox):
        env = {
            "VAPID_PRIVATE_KEY": dev_vapid_key(tmp_path), "SMTP_URL": smtp_url, "PUBLIC_URL": public,
            "SCHEDULER_INTERVAL": "0.25", "PUSH_DELAY": "0.25", "PUSH_ALLOW_HTTP_LOOPBACK": "1",
        }  # fmt: skip
        auths, ingest = [launch("auth", **env), launch("auth", **env)], launch("ingest")
        async with async_client(timeout=10) as anyone:
            answer = await anyone.get(f"{auths[1].url}/api/push/key")
            assert answer.status_code == 200, answer.text
            key = answer.json()["key"]
        with PushReceiver(key) as receiver:
            device = receiver.subscription()
            async with registered(auths[0].url, "ada") as ada, registered(auths[1].url, "bob") as bob:
                for show in ("sherlock", "flash"):
                    assert (await ada.put(f"/api/me/follows/{show}")).status_code == 204
                chosen = {"shows": {"sherlock": "push", "flash": "digest"}, "time_zone": "UTC", "digest_hour": 0}
                assert (await ada.put("/api/me/preferences", json=chosen)).status_code == 200
                assert (await ada.post("/api/me/push", json=device.to_json())).status_code == 201
                assert (await ada.put("/api/me/email", json={"email": "ada@example.com"})).status_code == 200
                await wait_until(lambda: inbox.to("ada@example.com"), timeout=10)
                verify = link(inbox.to("ada@example.com")[0], links.VERIFY_PATH).replace(public, auths[1].url)
                assert "Your address is verified" in (await follow(bob, verify)).text  # any browser may follow it
                script = client(ingest, token=await api_token(bob))
            async with script:
                await publish(script, "flash", "Barry runs")
                await publish(script, "sherlock", "Filming starts")
                await wait_until(lambda: len(receiver.to(device)) == 1 and len(inbox.messages) == 2, timeout=10)
                await publish(script, "sherlock", "A new villain")
                await wait_until(lambda: len(receiver.to(device)) == 2, timeout=10)
                holder, other = sorted(auths, key=holds_the_lease, reverse=True)
                holder.stop()
                await publish(script, "sherlock", "The season finale is on Sunday")
                await wait_until(lambda: len(receiver.to(device)) == 3, timeout=10)
            await wait_until(lambda: _all_sent(db, 4), timeout=10)  # three batches and one digest, each recorded
            assert holds_the_lease(other)
            assert receiver.problems == []
        texts = [(m.status, m.payload["count"], m.payload["text"]) for m in receiver.to(device)]
        assert texts == [(201, 1, "Filming starts"), (201, 1, "A new villain"),
                         (201, 1, "The season finale is on Sunday")]  # fmt: skip
        check, digest = inbox.to("ada@example.com")
        assert check["Subject"] == "Confirm your address for Gossip" and digest["Subject"] == "Gossip: 1 unread update"


async def _all_sent(db: Database, count: int) -> bool:
    states = [send.get("state", send.get("status")) for send in await db.sends.find({}).to_list()]
    return states == ["sent"] * count
