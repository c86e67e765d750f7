"""Who is calling (shared/auth.py): the signing and shapes as pure logic, the cookie, token and CSRF checks over real
HTTP against the embedded server."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from starlette.requests import Request

from shared.auth import (
    CSRF_COOKIE,
    CSRF_MAX_AGE,
    csrf_ok,
    csrf_token,
    session_cookie,
    session_cookie_name,
    session_document,
    token_digest,
)
from shared.db import Database, utcnow
from shared.settings import Settings
from tests.support.accounts import PASSWORD, api_token, csrf_of, json_error, registered

JSON = {"content-type": "application/json"}


def request(settings: Settings, cookies: dict[str, str] | None = None, scheme: str = "http") -> Request:
    """A request as Starlette builds it from what a browser sent, with a service's state."""
    cookie = "; ".join(f"{name}={value}" for name, value in (cookies or {}).items())
    headers = [(b"cookie", cookie.encode())] if cookie else []
    scope = {"type": "http", "scheme": scheme, "method": "GET", "path": "/", "query_string": b"",
             "headers": headers, "server": ("testserver", 80), "state": {"settings": settings}}  # fmt: skip
    return Request(scope)


class Aged(TimestampSigner):
    """Signs as if long ago: what a cookie kept for weeks looks like."""

    def get_timestamp(self) -> int:
        return int(time.time()) - 30 * 24 * 3600


def test_a_token_is_stored_as_its_sha256() -> None:
    assert token_digest("gsp_abc") == hashlib.sha256(b"gsp_abc").hexdigest()


def test_a_session_document_has_a_fresh_random_id_and_expires_after_the_session_age(settings: Settings) -> None:
    first, second = (session_document(settings, "u1", "una") for _ in range(2))
    assert first["_id"] != second["_id"] and len(first["_id"]) >= 40
    assert (first["user_id"], first["username"]) == ("u1", "una")
    assert first["expires_at"] - first["created_at"] == timedelta(seconds=settings.session_max_age)


def test_over_https_the_session_cookie_takes_the_host_prefix(settings: Settings) -> None:
    assert session_cookie_name(request(settings)) == "gossip_session"
    assert session_cookie_name(request(settings, scheme="https")) == "__Host-gossip_session"


def test_a_csrf_token_is_the_browsers_cookie_signed(settings: Settings) -> None:
    token, browser = csrf_token(request(settings, {CSRF_COOKIE: "browser-one"}))
    assert browser == "browser-one"
    assert csrf_ok(request(settings, {CSRF_COOKIE: "browser-one"}), token)
    fresh_token, fresh = csrf_token(request(settings))
    assert fresh != "browser-one" and len(fresh) >= 20  # a browser without one gets a new random one
    assert csrf_ok(request(settings, {CSRF_COOKIE: fresh}), fresh_token)


@pytest.mark.parametrize("case", ["another browser", "no cookie", "no token", "unsigned", "a session cookie", "aged"])
def test_a_csrf_token_is_refused_unless_signed_for_csrf_and_this_browser_lately(settings: Settings, case: str) -> None:
    mine = {CSRF_COOKIE: "browser-one"}
    token, _ = csrf_token(request(settings, mine))
    signer = URLSafeTimedSerializer(settings.secret_key, salt="gossip.csrf", signer=Aged)
    cookies, sent = {
        "another browser": ({CSRF_COOKIE: "browser-two"}, token),
        "no cookie": ({}, token),
        "no token": (mine, ""),
        "unsigned": (mine, "browser-one"),
        "a session cookie": (mine, session_cookie(settings, "browser-one")),  # signed, but for another purpose
        "aged": (mine, signer.dumps("browser-one")),
    }[case]
    assert not csrf_ok(request(settings, cookies), sent)


async def test_a_form_with_a_valid_token_from_another_browser_is_refused(server: str) -> None:
    """The token is tied to the browser's own CSRF cookie: one page's token cannot be replayed from another browser,
    even one with a CSRF cookie of its own."""
    async with httpx.AsyncClient(base_url=server) as attacker, httpx.AsyncClient(base_url=server) as victim:
        token = await csrf_of(attacker, "/register")  # valid, signed, for the attacker's own cookie
        await csrf_of(victim, "/register")  # the victim's browser has a CSRF cookie of its own
        form = {"username": "victim", "password": PASSWORD, "csrf_token": token}
        assert (await victim.post("/register", data=form)).status_code == 403
        assert (await attacker.post("/register", data=form)).status_code == 303  # the same token, its own browser


async def test_a_session_cookie_past_its_age_is_refused_though_the_session_lives(
    alice: httpx.AsyncClient, server: str, settings: Settings, db: Database
) -> None:
    session = await db.sessions.find_one({})
    assert session is not None
    aged = URLSafeTimedSerializer(settings.secret_key, salt="gossip.session", signer=Aged).dumps(session["_id"])
    fresh = URLSafeTimedSerializer(settings.secret_key, salt="gossip.session").dumps(session["_id"])
    for cookie, status in ((aged, 401), (fresh, 200)):
        async with httpx.AsyncClient(base_url=server, cookies={"gossip_session": cookie}) as browser:
            assert (await browser.get("/api/me")).status_code == status


async def test_a_session_id_signed_for_another_purpose_or_with_another_key_is_no_session(
    alice: httpx.AsyncClient, server: str, settings: Settings, db: Database
) -> None:
    session = await db.sessions.find_one({})
    assert session is not None
    for secret, salt in ((settings.secret_key, "gossip.csrf"), ("another key", "gossip.session")):
        forged = URLSafeTimedSerializer(secret, salt=salt).dumps(session["_id"])
        async with httpx.AsyncClient(base_url=server, cookies={"gossip_session": forged}) as browser:
            assert (await browser.get("/api/me")).status_code == 401, salt


async def test_a_bearer_token_wins_over_the_cookie_and_its_scheme_is_case_blind(
    alice: httpx.AsyncClient, server: str
) -> None:
    token = await api_token(alice)
    async with registered(server, "bob") as bob:
        for scheme in ("Bearer", "bearer", "BEARER"):
            update = (await bob.post("/api/updates", json={"show": "flash", "text": "hi"},
                                     headers={"authorization": f"{scheme}  {token}"})).json()  # fmt: skip
            assert update["author"] == "alice", scheme
        for authorization in ("Bearer", "Bearer  ,", "Token " + token):
            response = await bob.post("/api/updates", json={"show": "flash", "text": "hi"},
                                      headers={"authorization": authorization})  # fmt: skip
            expected = 201 if authorization.startswith("Token") else 401  # another scheme: the cookie decides
            assert response.status_code == expected, authorization


async def test_a_cookie_post_to_the_api_must_say_json_a_get_need_not(alice: httpx.AsyncClient) -> None:
    assert (await alice.get("/api/me")).status_code == 200
    text = {"content-type": "text/plain"}
    assert json_error(await alice.post("/api/me/read", content=b'{"seq": 0}', headers=text))[0] == 415
    charset = {"content-type": "Application/JSON; charset=utf-8"}
    assert (await alice.post("/api/me/read", content=b'{"seq": 0}', headers=charset)).status_code == 204


async def test_a_renewed_sessions_new_cookie_is_the_one_that_works_from_then_on(
    alice: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    session = await db.sessions.find_one({})
    assert session is not None
    session["expires_at"] = utcnow() + timedelta(seconds=settings.session_max_age / 4)  # past half its life
    await db.sessions.replace_one({"_id": session["_id"]}, session)
    response = await alice.get("/api/me")
    assert response.status_code == 200 and "gossip_session=" in response.headers["set-cookie"]
    signer = URLSafeTimedSerializer(settings.secret_key, salt="gossip.session")
    assert signer.loads(alice.cookies["gossip_session"]) == session["_id"]  # the cookie the answer set
    assert (await alice.get("/api/me")).json()["username"] == "alice"  # with the new cookie alone


async def test_a_browser_gets_its_csrf_cookie_once_for_a_day(client: httpx.AsyncClient) -> None:
    first = (await client.get("/register")).headers.get_list("set-cookie")
    (csrf,) = [cookie for cookie in first if cookie.startswith(f"{CSRF_COOKIE}=")]
    assert f"Max-Age={CSRF_MAX_AGE}" in csrf
    again = (await client.get("/register")).headers.get_list("set-cookie")
    assert not [cookie for cookie in again if cookie.startswith(f"{CSRF_COOKIE}=")]  # it has one: kept as it is
