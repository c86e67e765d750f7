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
from shared.db import Database, as_datetime, utcnow
from shared.settings import Settings
from tests.support.accounts import PASSWORD, api_token, csrf_of, json_error, registered
from tests.support.http import async_client

JSON = {"content-type": "application/json"}
SESSION = "gossip_session"


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


def test_a_session_document_has_a_fresh_random_id_stored_by_digest_and_expires_after_the_session_age(
    settings: Settings,
) -> None:
    (first_cookie, first), (second_cookie, second) = (session_document(settings, "u1", "una") for _ in range(2))
    assert first["_id"] != second["_id"] and first_cookie != second_cookie
    session_id = URLSafeTimedSerializer(settings.secret_key, salt="gossip.session").loads(first_cookie)
    assert len(session_id) >= 40 and first["_id"] == token_digest(session_id)  # the id itself is never stored
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
    async with async_client(base_url=server) as attacker, async_client(base_url=server) as victim:
        token = await csrf_of(attacker, "/register")  # valid, signed, for the attacker's own cookie
        await csrf_of(victim, "/register")  # the victim's browser has a CSRF cookie of its own
        form = {"username": "victim", "password": PASSWORD, "csrf_token": token}
        assert (await victim.post("/register", data=form)).status_code == 403
        assert (await attacker.post("/register", data=form)).status_code == 303  # the same token, its own browser


def session_id(settings: Settings, http: httpx.AsyncClient) -> str:
    """The session id a client's cookie carries (only its digest is stored)."""
    return str(URLSafeTimedSerializer(settings.secret_key, salt="gossip.session").loads(http.cookies["gossip_session"]))


async def test_a_session_cookie_past_its_age_is_refused_though_the_session_lives(
    alice: httpx.AsyncClient, server: str, settings: Settings
) -> None:
    mine = session_id(settings, alice)
    aged = URLSafeTimedSerializer(settings.secret_key, salt="gossip.session", signer=Aged).dumps(mine)
    fresh = URLSafeTimedSerializer(settings.secret_key, salt="gossip.session").dumps(mine)
    for cookie, status in ((aged, 401), (fresh, 200)):
        async with async_client(base_url=server, cookies={"gossip_session": cookie}) as browser:
            assert (await browser.get("/api/me")).status_code == status


async def test_a_session_id_signed_for_another_purpose_or_with_another_key_is_no_session(
    alice: httpx.AsyncClient, server: str, settings: Settings
) -> None:
    mine = session_id(settings, alice)
    for secret, salt in ((settings.secret_key, "gossip.csrf"), ("another key", "gossip.session")):
        forged = URLSafeTimedSerializer(secret, salt=salt).dumps(mine)
        async with async_client(base_url=server, cookies={"gossip_session": forged}) as browser:
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
    mine, session = session_id(settings, alice), await db.sessions.find_one({})
    assert session is not None and session["_id"] == token_digest(mine)
    session["expires_at"] = utcnow() + timedelta(seconds=settings.session_max_age / 4)  # past half its life
    await db.sessions.replace_one({"_id": session["_id"]}, session)
    response = await alice.get("/api/me")
    assert response.status_code == 200 and "gossip_session=" in response.headers["set-cookie"]
    assert session_id(settings, alice) == mine  # the cookie the answer set, signed anew
    assert (await alice.get("/api/me")).json()["username"] == "alice"  # with the new cookie alone


async def test_renewal_never_takes_a_session_past_its_absolute_age(
    alice: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    """Renewed, the session lasts until SESSION_ABSOLUTE_AGE after its login and no longer; past that, it is over."""
    session = await db.sessions.find_one({})
    assert session is not None
    left = settings.session_max_age / 2  # of its absolute age: less than a renewal would give
    login = utcnow() - timedelta(seconds=settings.session_absolute_age - left)
    session.update(created_at=login, expires_at=utcnow() + timedelta(seconds=settings.session_max_age / 4))
    await db.sessions.replace_one({"_id": session["_id"]}, session)
    response = await alice.get("/api/me")
    assert response.status_code == 200
    renewed = await db.sessions.find_one({})
    last = login + timedelta(seconds=settings.session_absolute_age)
    assert renewed is not None and abs(as_datetime(renewed["expires_at"]) - last) < timedelta(milliseconds=1)  # stored
    assert left - 60 <= int(response.headers["set-cookie"].split("Max-Age=")[1].split(";")[0]) <= left  # the cookie
    session.update(created_at=utcnow() - timedelta(seconds=settings.session_absolute_age + 1),
                   expires_at=utcnow() + timedelta(days=7))  # fmt: skip
    await db.sessions.replace_one({"_id": session["_id"]}, session)  # as a process of before wrote it
    assert (await alice.get("/api/me")).status_code == 401


async def test_signing_in_revokes_the_browsers_previous_session(alice: httpx.AsyncClient, db: Database) -> None:
    """The cookie the login request carried names a session that a copy of the cookie must not keep alive."""
    before = alice.cookies[SESSION]
    response = await alice.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200 and alice.cookies[SESSION] != before
    assert await db.sessions.count_documents({}) == 1
    assert (await alice.get("/api/me")).status_code == 200
    alice.cookies.set(SESSION, before)
    assert (await alice.get("/api/me")).status_code == 401


async def test_a_browser_gets_its_csrf_cookie_once_for_a_day(client: httpx.AsyncClient) -> None:
    first = (await client.get("/register")).headers.get_list("set-cookie")
    (csrf,) = [cookie for cookie in first if cookie.startswith(f"{CSRF_COOKIE}=")]
    assert f"Max-Age={CSRF_MAX_AGE}" in csrf
    again = (await client.get("/register")).headers.get_list("set-cookie")
    assert not [cookie for cookie in again if cookie.startswith(f"{CSRF_COOKIE}=")]  # it has one: kept as it is


async def test_a_copy_of_the_database_holds_no_session_anyone_could_use(
    alice: httpx.AsyncClient, server: str, db: Database, settings: Settings
) -> None:
    cookie = alice.cookies[SESSION]
    session_id = URLSafeTimedSerializer(settings.secret_key, salt="gossip.session").loads(cookie)
    (stored,) = await db.sessions.find().to_list()
    assert stored["_id"] == token_digest(session_id) and session_id not in str(stored)
    # Even with the secret key, a cookie made from what is stored is no session.
    forged = URLSafeTimedSerializer(settings.secret_key, salt="gossip.session").dumps(stored["_id"])
    async with async_client(base_url=server, cookies={SESSION: forged}) as thief:
        assert (await thief.get("/api/me")).status_code == 401
    assert (await alice.get("/api/me")).status_code == 200


async def test_logging_out_deletes_the_stored_session(alice: httpx.AsyncClient, db: Database) -> None:
    assert (await alice.post("/api/auth/logout", headers={"content-type": "application/json"})).status_code == 204
    assert await db.sessions.count_documents({}) == 0


@pytest.mark.parametrize(
    "headers",
    [{"origin": "https://evil.example"}, {"origin": "null"}, {"sec-fetch-site": "cross-site"},
     {"origin": "https://evil.example", "sec-fetch-site": "same-origin"}],
)  # fmt: skip
async def test_a_change_with_the_session_from_another_site_is_403(
    alice: httpx.AsyncClient, db: Database, headers: dict[str, str]
) -> None:
    """SameSite and the JSON content type stop browsers today; this is the line behind them."""
    response = await alice.post("/api/updates", json={"show": "flash", "text": "forged"}, headers=headers)
    assert json_error(response)[:2] == (403, "cross_site")
    assert json_error(await alice.put("/api/me/follows/flash", headers=headers))[:2] == (403, "cross_site")
    assert await db.updates.count_documents({}) == 0


@pytest.mark.parametrize(("path", "status"), [("/publish", 403), ("/shows", 403), ("/logout", 403), ("/nowhere", 404)])
async def test_a_form_posted_from_another_site_gets_an_error_page(
    alice: httpx.AsyncClient, db: Database, path: str, status: int
) -> None:
    """The error page shows the signed-out header: the session it would read is the one refused."""
    headers = {"origin": "https://evil.example", "accept": "text/html"}
    response = await alice.post(path, data={"show": "flash", "text": "forged"}, headers=headers)
    assert response.status_code == status and response.headers["content-type"].startswith("text/html")
    assert await db.updates.count_documents({}) == 0 and await db.sessions.count_documents({}) == 1


async def test_the_same_site_a_safe_request_and_a_script_are_not_refused(alice: httpx.AsyncClient, server: str) -> None:
    own = {"origin": server, "sec-fetch-site": "same-origin"}
    assert (await alice.post("/api/updates", json={"show": "flash", "text": "mine"}, headers=own)).status_code == 201
    assert (await alice.get("/api/me", headers={"origin": "https://evil.example"})).status_code == 200
    token = await api_token(alice)
    async with async_client(base_url=server, headers={"authorization": f"Bearer {token}"}) as script:
        foreign = {"origin": "https://evil.example"}  # no cookie: nothing of the user's rides along
        assert (
            await script.post("/api/updates", json={"show": "flash", "text": "x"}, headers=foreign)
        ).status_code == 201
