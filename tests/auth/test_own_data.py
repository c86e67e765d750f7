"""A user's own data over real HTTP against the embedded MongoDB server: the export holds everything about them and
no hash, and deleting the account needs the password, removes their data, ends their feeds, and leaves their updates
as by a deleted user."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import timedelta

import httpx
import pytest

from services.auth.own_data import OWN_DATA
from shared.auth import token_digest
from shared.db import Database, utcnow
from shared.settings import Settings
from shared.updates import DELETED_AUTHOR
from tests.support.accounts import PASSWORD, api_token, json_error, registered
from tests.support.sse import events
from tests.support.updates import publish

KEPT = timedelta(days=30)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A login window long enough that no failure is forgiven while a test runs."""
    return dataclasses.replace(settings, login_window=3600)


async def delete_account(http: httpx.AsyncClient, body: dict[str, object]) -> httpx.Response:
    return await http.request("DELETE", "/api/me", json=body)


async def stored_elsewhere(db: Database, user_id: str) -> None:
    """What the push and mail parts keep of a user, written as they write it."""
    now = utcnow()
    await db.devices.insert_one({"_id": "d1", "user_id": user_id, "endpoint": "https://push.example/abc",
                                 "keys": {"p256dh": "public-key", "auth": "auth-secret"}, "name": "Laptop",
                                 "added_at": now})  # fmt: skip
    await db.sends.insert_many(
        [
            {"_id": f"digest:{user_id}:2026-12-07", "user_id": user_id, "sent_at": now, "expires_at": now + KEPT},
            {"_id": f"digest:{user_id}:2026-10-01", "user_id": user_id, "sent_at": now - KEPT, "expires_at": now},
        ]
    )  # the older one has expired, and is as good as gone even before a chore deletes it
    email = {"address": "alice@example.org", "added_at": now, "verified_at": now}
    await db.users.update_one({"_id": user_id}, {"$set": {"email": email}})


async def test_the_export_holds_everything_about_the_user_and_no_hash(
    alice: httpx.AsyncClient, server: str, db: Database
) -> None:
    await alice.put("/api/me/follows/flash")
    await alice.put("/api/me/preferences", json={"shows": {"flash": "push"}, "time_zone": "Europe/Paris"})
    token = await api_token(alice, "laptop")
    update = await publish(alice, "flash", "mine")
    user = await db.users.find_one({"username": "alice"})
    assert user is not None
    await stored_elsewhere(db, user["_id"])
    await db.sessions.insert_one({"_id": "ended", "user_id": user["_id"], "username": "alice", "expires_at": utcnow()})
    async with registered(server, "bob") as bob:
        await publish(bob, "flash", "not hers")
        response = await alice.get("/api/me/export")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="gossip-alice.json"'
    assert response.headers["cache-control"] == "no-store"
    found = response.json()
    assert {"username": "alice", "follows": ["flash"], "last_read_seq": 0}.items() <= found["user"].items()
    assert found["user"]["preferences"] == {"shows": {"flash": "push"}, "time_zone": "Europe/Paris"}
    assert found["user"]["email"]["address"] == "alice@example.org"
    assert [set(session) for session in found["sessions"]] == [{"created_at", "expires_at"}]
    assert [token["name"] for token in found["tokens"]] == ["laptop"]
    assert {"name", "created_at"} <= set(found["tokens"][0]) <= {"name", "created_at", "expires_at", "last_used_at"}
    assert found["devices"] == [{"_id": "d1", "endpoint": "https://push.example/abc", "name": "Laptop",
                                 "added_at": found["devices"][0]["added_at"]}]  # fmt: skip
    assert [send["_id"] for send in found["sends"]] == [f"digest:{user['_id']}:2026-12-07"]
    assert found["updates"] == [update]
    text = response.text
    for secret in (user["password_hash"], token_digest(token), token, "auth-secret", "argon2"):
        assert secret not in text
    session = await db.sessions.find_one({"user_id": user["_id"]})
    assert session is not None and session["_id"] not in text
    assert set(found) == {"exported_at", "user", *OWN_DATA, "updates"}


async def test_the_export_needs_a_session(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/me/export")).status_code == 401


async def test_deletion_needs_the_right_password_and_changes_nothing_without_it(
    alice: httpx.AsyncClient, db: Database
) -> None:
    for body, status, field in [({}, 422, "password"), ({"password": ""}, 422, "password"),
                                ({"password": "not-her-password"}, 401, "password")]:  # fmt: skip
        response = await delete_account(alice, body)
        assert (response.status_code, set(response.json()["fields"])) == (status, {field})
    assert (await alice.request("DELETE", "/api/me", content=json.dumps({"password": PASSWORD}))).status_code == 415
    assert await db.users.count_documents({"username": "alice"}) == 1
    assert (await alice.get("/api/me")).status_code == 200


async def test_deletion_is_throttled_as_a_login_is(alice: httpx.AsyncClient, settings: Settings) -> None:
    """Else it would be a way to guess the password without the login's limits."""
    statuses = [(await delete_account(alice, {"password": f"guess-{n}"})).status_code
                for n in range(settings.login_failures_per_user_address + 1)]  # fmt: skip
    assert statuses == [401] * settings.login_failures_per_user_address + [429]
    refused = await delete_account(alice, {"password": PASSWORD})
    assert json_error(refused)[0] == 429 and "retry-after" in refused.headers  # the good one waits too, as at login
    login = await alice.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert login.status_code == 429  # the same buckets as the login's


async def test_deletion_removes_the_users_data_ends_feeds_and_keeps_updates_by_a_deleted_user(
    server: str, db: Database
) -> None:
    async with registered(server, "alice") as alice, registered(server, "alice-phone") as other:
        await alice.put("/api/me/follows/flash")
        token = await api_token(alice)
        update = await publish(alice, "flash", "published before leaving")
        user = await db.users.find_one({"username": "alice"})
        assert user is not None
        await stored_elsewhere(db, user["_id"])
        async with events(alice) as feed:
            response = await delete_account(alice, {"password": PASSWORD})
            assert response.status_code == 204 and "gossip_session=" in response.headers["set-cookie"]
            async with asyncio.timeout(5):
                while True:  # the feed ends: the stream heard the sessions go
                    try:
                        await feed.next()
                    except EOFError:
                        break
        for name in ("users", *OWN_DATA):
            assert await db[name].count_documents({"user_id": user["_id"]}) == 0, name
        assert await db.users.count_documents({"_id": user["_id"]}) == 0
        assert (await alice.get("/api/me")).status_code == 401
        bearer = {"authorization": f"Bearer {token}"}
        assert (
            await other.post("/api/updates", json={"show": "flash", "text": "x"}, headers=bearer)
        ).status_code == 401
        history = (await other.get("/api/updates?show=flash")).json()["items"]
        assert history == [{**update, "author": DELETED_AUTHOR}]
        stored = await db.updates.find_one({"seq": update["seq"]})
        assert stored is not None and "author_id" not in stored
    async with registered(server, "alice") as again:  # the name is free, and its updates are not the new owner's
        edit = await again.patch(f"/api/updates/{update['seq']}", json={"text": "taken over"})
        assert edit.status_code == 403
        assert (await again.get("/api/me/export")).json()["updates"] == []
