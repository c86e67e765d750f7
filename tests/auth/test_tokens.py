"""API tokens over real HTTP: created by a logged-in owner, listed without secrets, refused within a second of their
revocation."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import pytest

from services.auth.tokens import RULE, TOKEN_PREFIX
from shared.auth import token_digest
from shared.db import Database, as_datetime, iso_utc, utcnow
from shared.settings import Settings
from tests.support.accounts import api_token, json_error, registered
from tests.support.http import async_client
from tests.support.servers import serving
from tests.support.waiting import wait_until


async def test_a_token_is_shown_once_and_stored_only_as_its_hash(alice: httpx.AsyncClient, db: Database) -> None:
    response = await alice.post("/api/me/tokens", json={"name": "laptop"})
    assert response.status_code == 201
    created = response.json()
    assert created["name"] == "laptop" and created["token"].startswith(TOKEN_PREFIX) and len(created["token"]) > 40
    stored = await db.tokens.find_one({})
    assert stored is not None and stored["_id"] == token_digest(created["token"])
    assert created["token"] not in str(stored)
    listed = (await alice.get("/api/me/tokens")).json()
    assert [token["name"] for token in listed] == ["laptop"]
    assert set(listed[0]) == {"name", "created_at", "expires_at", "last_used_at"}
    assert (listed[0]["expires_at"], listed[0]["last_used_at"]) == (None, None)  # never expires, never used yet
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", listed[0]["created_at"])


async def test_tokens_are_listed_per_owner_in_creation_order(alice: httpx.AsyncClient, server: str) -> None:
    for name in ("first", "second name", "ci@build-7"):
        assert (await alice.post("/api/me/tokens", json={"name": name})).status_code == 201
    async with registered(server, "bob") as bob:
        assert (await bob.post("/api/me/tokens", json={"name": "first"})).status_code == 201  # names are per user
        assert [token["name"] for token in (await bob.get("/api/me/tokens")).json()] == ["first"]
    assert [token["name"] for token in (await alice.get("/api/me/tokens")).json()] == [
        "first",
        "second name",
        "ci@build-7",
    ]


async def test_a_name_may_hold_any_character_but_controls_and_slashes(alice: httpx.AsyncClient) -> None:
    """What the API document says, whatever Python's Unicode tables think printable: the unassigned U+7C4A8 too."""
    for name in ("café ☕", "L\U0007c4a8", " padded "):
        created = await alice.post("/api/me/tokens", json={"name": name})
        assert created.status_code == 201, created.text
        assert (await alice.delete(f"/api/me/tokens/{quote(name)}")).status_code == 204


async def test_a_duplicate_name_is_409_naming_it(alice: httpx.AsyncClient, db: Database) -> None:
    await alice.post("/api/me/tokens", json={"name": "laptop"})
    response = await alice.post("/api/me/tokens", json={"name": "laptop"})
    assert json_error(response)[0] == 409 and "name" in json_error(response)[2]
    assert await db.tokens.count_documents({}) == 1


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 65},
        {"name": "a/b"},
        {"name": 3},
        {"name": "."},
        {"name": ".."},
        {"name": "bell\x07"},
        {"name": "\x85next line"},
        {"name": "\u3000\u2003"},
    ],
)
async def test_an_invalid_name_is_422_naming_it(alice: httpx.AsyncClient, db: Database, body: dict) -> None:
    status, _, fields = json_error(await alice.post("/api/me/tokens", json=body))
    assert status == 422 and "name" in fields
    assert await db.tokens.count_documents({}) == 0


@pytest.mark.parametrize("name", ["x" * 65, "a/b", "..", "bell\x07"])
async def test_a_name_given_but_not_allowed_is_told_the_rule_not_asked_for(alice: httpx.AsyncClient, name: str) -> None:
    """The detail is what a page shows: someone who typed a name must read what is wrong with it."""
    response = await alice.post("/api/me/tokens", json={"name": name})
    assert response.status_code == 422 and response.json()["detail"] == f"Invalid name: {RULE}"


async def test_a_revoked_token_is_refused_within_a_second(alice: httpx.AsyncClient, server: str) -> None:
    """A found token is trusted for half a second, so that a script publishing in a loop is not looked up each time."""
    token = (await alice.post("/api/me/tokens", json={"name": "ci build"})).json()["token"]
    headers = {"authorization": f"Bearer {token}"}
    async with async_client(base_url=server, headers=headers) as script:
        assert (await script.post("/api/updates", json={"show": "flash", "text": "before"})).status_code == 201
        assert (await alice.delete("/api/me/tokens/ci%20build")).status_code == 204

        async def refused() -> bool:
            return (await script.post("/api/updates", json={"show": "flash", "text": "after"})).status_code == 401

        await wait_until(refused, interval=0.1)
        assert (await script.get("/api/updates")).status_code == 401
    assert (await alice.get("/api/me/tokens")).json() == []


async def test_a_token_is_refused_once_its_expiry_has_passed(alice: httpx.AsyncClient, server: str) -> None:
    """Checked on every use, the found token's cached half second included."""
    soon = utcnow() + timedelta(seconds=2)
    created = await alice.post("/api/me/tokens", json={"name": "brief", "expires_at": soon.isoformat()})
    assert created.status_code == 201 and created.json()["expires_at"] == iso_utc(soon)
    headers = {"authorization": f"Bearer {created.json()['token']}"}
    async with async_client(base_url=server, headers=headers) as script:
        assert (await script.post("/api/updates", json={"show": "flash", "text": "in time"})).status_code == 201

        async def refused() -> bool:
            return (await script.get("/api/updates")).status_code == 401

        await wait_until(refused, timeout=5, interval=0.1)
        assert utcnow() >= soon and "expired" in (await script.get("/api/updates")).json()["detail"]
    assert [token["expires_at"] for token in (await alice.get("/api/me/tokens")).json()] == [iso_utc(soon)]


async def test_a_token_may_expire_in_a_whole_number_of_days(alice: httpx.AsyncClient, db: Database) -> None:
    created = (await alice.post("/api/me/tokens", json={"name": "week", "expires_in_days": 7})).json()
    stored = await db.tokens.find_one({})
    assert stored is not None and isinstance(stored["expires_at"], datetime)  # a date, so that it compares as one
    assert abs(as_datetime(stored["expires_at"]) - utcnow() - timedelta(days=7)) < timedelta(seconds=5)
    assert created["expires_at"] == iso_utc(stored["expires_at"])


@pytest.mark.parametrize(
    ("expiry", "field"),
    [
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"expires_in_days": 3651}, "expires_in_days"),
        ({"expires_in_days": "7"}, "expires_in_days"),
        ({"expires_in_days": True}, "expires_in_days"),
        ({"expires_in_days": 1.5}, "expires_in_days"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),  # past
        ({"expires_at": "2099-01-01T00:00:00Z"}, "expires_at"),  # beyond ten years
        ({"expires_at": "2030-01-01T00:00:00"}, "expires_at"),  # no time zone
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"expires_at": 1893456000}, "expires_at"),
        ({"expires_in_days": 7, "expires_at": "2030-01-01T00:00:00Z"}, "expires_at"),
    ],
)
async def test_a_bad_expiry_is_422_naming_it(alice: httpx.AsyncClient, db: Database, expiry: dict, field: str) -> None:
    status, _, fields = json_error(await alice.post("/api/me/tokens", json={"name": "laptop", **expiry}))
    assert status == 422 and field in fields
    assert await db.tokens.count_documents({}) == 0


async def test_a_tokens_last_use_is_noted_once_a_minute_not_per_publish(
    alice: httpx.AsyncClient, server: str, db: Database, settings: Settings
) -> None:
    """Publishes in a row share the found token; another process looks it up afresh and sees the recent note."""
    token = await api_token(alice)
    headers = {"authorization": f"Bearer {token}"}
    async with async_client(base_url=server, headers=headers) as script:
        assert (await script.post("/api/updates", json={"show": "flash", "text": "one"})).status_code == 201
        first = await db.tokens.find_one({})
        assert first is not None and time.time() - first["last_used"] < 5
        for n in range(3):
            assert (await script.post("/api/updates", json={"show": "flash", "text": f"more {n}"})).status_code == 201
    with serving(settings) as other:
        async with async_client(base_url=other, headers=headers) as elsewhere:
            assert (await elsewhere.post("/api/updates", json={"show": "flash", "text": "there"})).status_code == 201
    again = await db.tokens.find_one({})
    assert again is not None and again["last_used"] == first["last_used"]  # no write for the four after
    (listed,) = (await alice.get("/api/me/tokens")).json()
    assert listed["last_used_at"] == iso_utc(datetime.fromtimestamp(first["last_used"], UTC))


async def test_revoking_an_unknown_or_someone_elses_token_is_404(alice: httpx.AsyncClient, server: str) -> None:
    await alice.post("/api/me/tokens", json={"name": "laptop"})
    async with registered(server, "bob") as bob:
        assert json_error(await bob.delete("/api/me/tokens/laptop"))[:2] == (404, "not_found")
    assert json_error(await alice.delete("/api/me/tokens/desktop"))[0] == 404
    assert len((await alice.get("/api/me/tokens")).json()) == 1


async def test_tokens_need_a_session_and_a_token_cannot_mint_tokens(alice: httpx.AsyncClient, server: str) -> None:
    token = (await alice.post("/api/me/tokens", json={"name": "laptop"})).json()["token"]
    async with async_client(base_url=server, headers={"authorization": f"Bearer {token}"}) as script:
        assert (await script.post("/api/me/tokens", json={"name": "another"})).status_code == 401
        assert (await script.get("/api/me/tokens")).status_code == 401
        assert (await script.delete("/api/me/tokens/laptop")).status_code == 401
    form = await alice.post("/api/me/tokens", data={"name": "from a form"})  # what a cross-site form could send
    assert form.status_code == 415
    assert [token["name"] for token in (await alice.get("/api/me/tokens")).json()] == ["laptop"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, tokens_per_user=3)


async def test_a_user_holds_at_most_tokens_per_user(alice: httpx.AsyncClient, db: Database) -> None:
    responses = await asyncio.gather(*(alice.post("/api/me/tokens", json={"name": f"t{n}"}) for n in range(8)))
    assert sorted(response.status_code for response in responses) == [201] * 3 + [409] * 5
    refused = next(response for response in responses if response.status_code == 409)
    assert json_error(refused)[:2] == (409, "too_many_tokens") and "name" in json_error(refused)[2]
    assert await db.tokens.count_documents({}) == 3
    kept = (await alice.get("/api/me/tokens")).json()[0]["name"]
    assert (await alice.delete(f"/api/me/tokens/{kept}")).status_code == 204
    assert (await alice.post("/api/me/tokens", json={"name": "after a revoke"})).status_code == 201
