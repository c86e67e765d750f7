"""Accounts over real HTTP: registering, logging in and out, and the session a login starts."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.db import Database, utcnow
from shared.settings import RULES, Settings
from tests.support.accounts import PASSWORD, json_error, registered
from tests.support.http import async_client
from tests.support.servers import serving

# A rule of the shape the stream service runs, added to the rules file while the services run.
HEADLINES = """
[[rules]]
name = "headlines"
collection = "headlines"
on = ["insert"]
show = "flash"
text = "{text}"
"""


async def test_register_sets_a_strict_session_cookie(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/register", json={"username": "akul", "password": PASSWORD})
    assert response.status_code == 201
    assert response.json() == {"username": "akul"}
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert (await client.get("/api/me")).json() == {"username": "akul", "follows": [], "unread": 0}


async def test_register_login_logout_round_trip(server: str) -> None:
    async with async_client(base_url=server) as first, async_client(base_url=server) as second:
        assert (
            await first.post("/api/auth/register", json={"username": "bob", "password": PASSWORD})
        ).status_code == 201
        login = await second.post("/api/auth/login", json={"username": "BOB", "password": PASSWORD})
        assert (login.status_code, login.json()) == (200, {"username": "bob"})
        assert (await second.get("/api/me")).json()["username"] == "bob"
        logout = await second.post("/api/auth/logout", headers={"content-type": "application/json"})
        assert logout.status_code == 204
        assert (await second.get("/api/me")).status_code == 401
        assert (await first.get("/api/me")).status_code == 200  # only that session was revoked


async def test_username_taken_in_another_case_is_409(alice: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/register", json={"username": "ALICE", "password": PASSWORD})
    assert json_error(response)[:2] == (409, "taken")
    assert "username" in response.json()["fields"]


async def test_a_watch_rules_name_is_taken_in_any_case_and_nothing_is_written(settings: Settings, db: Database) -> None:
    """A rule's name is the author of its updates: its holder would take them for their own. The answer is a taken
    name's, word for word, so it tells nobody more."""
    with serving(dataclasses.replace(settings, watch_rules=RULES)) as server:
        async with registered(server, "alice"), async_client(base_url=server) as http:
            taken = await http.post("/api/auth/register", json={"username": "alice", "password": PASSWORD})
            for name in ("orders", "Episodes"):
                response = await http.post("/api/auth/register", json={"username": name, "password": PASSWORD})
                assert (response.status_code, response.json()) == (taken.status_code, taken.json())
    assert json_error(taken)[:2] == (409, "taken") and "username" in json_error(taken)[2]
    assert [user["username"] async for user in db.users.find()] == ["alice"]


async def test_a_rule_added_while_auth_runs_has_its_name_taken_at_once(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """Not only as of auth's start: the name would otherwise be free until a restart, and its holder would stop the
    stream service's next start. A file broken later leaves the names it had reserved."""
    rules = tmp_path / "gossip.toml"
    rules.write_text(RULES.read_text())
    with serving(dataclasses.replace(settings, watch_rules=rules)) as server:
        async with async_client(base_url=server) as http:
            rules.write_text(rules.read_text() + HEADLINES)
            response = await http.post("/api/auth/register", json={"username": "headlines", "password": PASSWORD})
            assert json_error(response)[:3] == (409, "taken", {"username": "already taken"})
            rules.write_text("[[rules]\n")
            response = await http.post("/api/auth/register", json={"username": "Headlines", "password": PASSWORD})
            assert json_error(response)[:2] == (409, "taken")
    assert await db.users.count_documents({}) == 0


async def test_a_name_no_watch_rule_has_registers(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/register", json={"username": "orders", "password": PASSWORD})
    assert (response.status_code, response.json()) == (201, {"username": "orders"})


@pytest.mark.parametrize(
    ("body", "field"),
    [({"username": "x", "password": PASSWORD}, "username"), ({"username": "carol", "password": "short"}, "password"),
     ({"username": 7, "password": PASSWORD}, "username"), ({"password": PASSWORD}, "username")],
)  # fmt: skip
async def test_invalid_registration_names_the_field(
    client: httpx.AsyncClient, db: Database, body: dict, field: str
) -> None:
    response = await client.post("/api/auth/register", json=body)
    status, _, fields = json_error(response)
    assert status == 422 and field in fields
    assert await db.users.count_documents({}) == 0


async def test_wrong_password_and_unknown_user_get_the_same_401(
    alice: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    wrong = await client.post("/api/auth/login", json={"username": "alice", "password": "not-the-password"})
    unknown = await client.post("/api/auth/login", json={"username": "nobody", "password": "not-the-password"})
    assert json_error(wrong) == json_error(unknown) == (401, "wrong_credentials", {})
    assert "set-cookie" not in wrong.headers


async def test_a_login_left_blank_names_the_fields_instead_of_guessing(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/login", json={"username": "", "password": ""})
    assert json_error(response) == (422, "invalid", {"username": "required", "password": "required"})


async def test_tampered_cookie_is_logged_out_not_an_error(alice: httpx.AsyncClient) -> None:
    value = alice.cookies["gossip_session"]
    alice.cookies.set("gossip_session", value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert json_error(await alice.get("/api/me"))[:2] == (401, "unauthorized")
    page = await alice.get("/shows")
    assert (page.status_code, page.headers["location"]) == (303, "/login?next=%2Fshows")


async def test_revoked_session_cookie_no_longer_works(server: str, db: Database) -> None:
    async with registered(server, "dave") as dave:
        stolen = dave.cookies["gossip_session"]
        await dave.post("/logout", data={"csrf_token": await _csrf(dave)})
        async with async_client(base_url=server, cookies={"gossip_session": stolen}) as thief:
            assert (await thief.get("/api/me")).status_code == 401
            assert (await thief.get("/shows")).status_code == 303
    assert await db.sessions.count_documents({}) == 0


async def test_expired_session_is_logged_out(alice: httpx.AsyncClient, db: Database) -> None:
    session = await db.sessions.find_one({})
    session["expires_at"] = utcnow() - timedelta(seconds=1)
    await db.sessions.replace_one({"_id": session["_id"]}, session)  # replace_one keeps a date a date
    assert (await alice.get("/api/me")).status_code == 401


@pytest.mark.embedded
async def test_an_expired_session_is_refused_while_it_is_still_stored(alice: httpx.AsyncClient, db: Database) -> None:
    """No TTL index removes it there, and the chore may not have run yet: the session's own date refuses it."""
    session = await db.sessions.find_one({})
    await db.sessions.replace_one({"_id": session["_id"]}, {**session, "expires_at": utcnow() - timedelta(seconds=1)})
    assert (await alice.get("/api/me")).status_code == 401
    assert await db.sessions.find_one({"_id": session["_id"]}) is not None


async def _expiring_in(db: Database, left: timedelta) -> dict[str, Any]:
    session = await db.sessions.find_one({})
    session["expires_at"] = utcnow() + left
    await db.sessions.replace_one({"_id": session["_id"]}, session)
    return session


async def test_a_session_used_past_half_its_life_is_renewed_with_its_cookie(
    alice: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    session = await _expiring_in(db, timedelta(hours=1))
    response = await alice.get("/api/me")
    assert response.status_code == 200  # signed anew: the signature's age is checked too
    assert "gossip_session=" in response.headers["set-cookie"] and "Max-Age=" in response.headers["set-cookie"]
    renewed = (await db.sessions.find_one({"_id": session["_id"]}))["expires_at"]
    assert isinstance(renewed, datetime)  # written with replace_one: still a date on the embedded server
    assert renewed > utcnow() + timedelta(seconds=settings.session_max_age - 60)
    assert "set-cookie" not in (await alice.get("/api/me")).headers  # renewed once, not at every request


async def test_a_young_session_is_left_alone_and_a_logout_is_not_undone(alice: httpx.AsyncClient, db: Database) -> None:
    assert "set-cookie" not in (await alice.get("/api/me")).headers
    await _expiring_in(db, timedelta(hours=1))
    response = await alice.post("/api/auth/logout", headers={"content-type": "application/json"})
    assert response.headers.get_list("set-cookie") == [response.headers["set-cookie"]]  # the clearing one alone
    assert (await alice.get("/api/me")).status_code == 401


@pytest.mark.parametrize(
    ("content", "headers", "status", "error"),
    [(b"{not json", {"content-type": "application/json"}, 400, "invalid_json"),
     (b"[1, 2]", {"content-type": "application/json"}, 400, "invalid_json"),
     (b"[" * 1500, {"content-type": "application/json"}, 400, "invalid_json"),
     (b'{"username": ' + b"[" * 1500, {"content-type": "application/json"}, 400, "invalid_json"),
     (b"\xff\xfe", {"content-type": "application/json"}, 400, "bad_encoding"),
     (b"username=x&password=y", {"content-type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
     (b"hello", {"content-type": "text/plain"}, 415, "unsupported_media_type"),
     (b'{"username": "' + b"x" * 100_000 + b'"}', {"content-type": "application/json"}, 413, "too_large")],
)  # fmt: skip
async def test_bad_bodies_get_a_clear_4xx(
    client: httpx.AsyncClient, db: Database, content: bytes, headers: dict, status: int, error: str
) -> None:
    response = await client.post("/api/auth/register", content=content, headers=headers)
    assert json_error(response)[:2] == (status, error)
    assert await db.users.count_documents({}) == 0


async def test_logging_out_twice_is_fine_and_clears_the_cookie_each_time(alice: httpx.AsyncClient) -> None:
    for _ in range(2):
        response = await alice.post("/api/auth/logout", headers={"content-type": "application/json"})
        cleared = response.headers["set-cookie"].lower()
        assert response.status_code == 204 and "gossip_session=" in cleared and "max-age=0" in cleared
    assert (await alice.post("/api/auth/logout")).status_code == 415  # JSON only, with a session or without
    assert (await alice.get("/api/me")).status_code == 401


async def _csrf(http: httpx.AsyncClient, path: str = "/") -> str:
    page = await http.get(path)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)
