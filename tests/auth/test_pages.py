"""The auth pages: forms with CSRF tokens, the login redirect and its way back, follow buttons, the unread badge."""

from __future__ import annotations

import dataclasses

import httpx
from markupsafe import escape

from services.auth import tokens
from shared.db import Database
from shared.settings import RULES, Settings
from shared.updates import COUNT_CAP
from tests.support.accounts import PASSWORD, csrf_of
from tests.support.http import async_client
from tests.support.servers import serving
from tests.support.updates import stored_update


async def test_pages_that_need_a_login_redirect_there_and_back(client: httpx.AsyncClient) -> None:
    response = await client.get("/shows?sort=title")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fshows%3Fsort%3Dtitle"
    token = await csrf_of(client, "/register")
    registered = await client.post(
        "/register?next=%2Fshows%3Fsort%3Dtitle", data={"username": "erin", "password": PASSWORD, "csrf_token": token}
    )
    assert (registered.status_code, registered.headers["location"]) == (303, "/shows?sort=title")
    assert "Unfollow" not in (await client.get("/shows")).text


async def test_login_form_round_trip_and_error_keeps_what_was_typed(client: httpx.AsyncClient) -> None:
    await client.post("/api/auth/register", json={"username": "fay", "password": PASSWORD})
    client.cookies.delete("gossip_session")
    token = await csrf_of(client, "/login")
    wrong = await client.post("/login", data={"username": "fay", "password": "wrong-password", "csrf_token": token})
    assert wrong.status_code == 401
    assert "Wrong username or password" in wrong.text and 'value="fay"' in wrong.text
    right = await client.post(
        "/login?next=//evil.example", data={"username": "fay", "password": PASSWORD, "csrf_token": token}
    )
    assert (right.status_code, right.headers["location"]) == (303, "/")  # never an open redirect
    assert (await client.get("/api/me")).json()["username"] == "fay"


async def test_form_post_without_valid_csrf_token_is_rejected(client: httpx.AsyncClient) -> None:
    await csrf_of(client, "/register")  # the browser has its CSRF cookie, but the form lacks the token
    for token in ("", "forged"):
        response = await client.post("/register", data={"username": "gus", "password": PASSWORD, "csrf_token": token})
        assert response.status_code == 403
        assert "did not come from this site" in response.text
    assert (await client.post("/api/auth/login", json={"username": "gus", "password": PASSWORD})).status_code == 401


async def test_the_register_page_says_a_watch_rules_name_is_taken(settings: Settings, db: Database) -> None:
    with serving(dataclasses.replace(settings, watch_rules=RULES)) as server:
        async with async_client(base_url=server) as http:
            token = await csrf_of(http, "/register")
            form = {"username": "orders", "password": PASSWORD, "csrf_token": token}
            response = await http.post("/register", data=form)
    assert response.status_code == 409
    assert "Username: already taken" in response.text and 'value="orders"' in response.text
    assert await db.users.count_documents({}) == 0


async def test_follow_buttons_change_follows(alice: httpx.AsyncClient) -> None:
    token = await csrf_of(alice, "/shows")
    response = await alice.post("/shows", data={"show": "sherlock", "action": "follow", "csrf_token": token})
    assert response.status_code == 303
    assert (await alice.get("/api/me")).json()["follows"] == ["sherlock"]
    await alice.post("/shows", data={"show": "sherlock", "action": "unfollow", "csrf_token": token})
    assert (await alice.get("/api/me")).json()["follows"] == []


async def test_a_username_echoed_on_a_form_is_escaped(client: httpx.AsyncClient) -> None:
    """Update text on the pages: tests/stream/test_pages.py and tests/ingest/test_pages.py."""
    token = await csrf_of(client, "/register")
    response = await client.post("/register", data={"username": "<b>", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 422
    assert 'value="&lt;b&gt;"' in response.text


async def test_a_bad_follow_form_is_answered_on_the_page(alice: httpx.AsyncClient) -> None:
    token = await csrf_of(alice, "/shows")
    for form, status, message in [
        ({"show": "sherlock", "action": "subscribe"}, 422, "Choose to follow or unfollow."),
        ({"show": "no_such_show", "action": "follow"}, 404, "There is no show &#39;no_such_show&#39;: a show is one"),
    ]:
        response = await alice.post("/shows", data={**form, "csrf_token": token})
        assert response.status_code == status
        assert response.headers["content-type"].startswith("text/html") and message in response.text
        assert 'data-show="sherlock"' in response.text  # the list is still there to choose from
    assert (await alice.get("/api/me")).json()["follows"] == []


async def test_the_home_page_says_what_a_token_name_may_be_as_the_api_checks_it(alice: httpx.AsyncClient) -> None:
    page = (await alice.get("/")).text
    assert f'maxlength="{tokens.NAME_MAX}"' in page and str(escape(tokens.RULE)) in page


async def test_unread_counts_stop_at_the_cap_and_pages_say_so(alice: httpx.AsyncClient, db: Database) -> None:
    await alice.put("/api/me/follows/flash")
    await db.updates.insert_many([stored_update(seq, author="bob") for seq in range(1, COUNT_CAP + 51)])
    assert (await alice.get("/api/me")).json()["unread"] == COUNT_CAP
    home = (await alice.get("/")).text
    assert f'title="unread">{COUNT_CAP}+</span>' in home and f'<strong id="unread">{COUNT_CAP}+</strong>' in home
    await db.users.update_one({"username": "alice"}, {"$set": {"last_read_seq": 51}})
    home = (await alice.get("/")).text
    assert f'title="unread">{COUNT_CAP - 1}</span>' in home  # below the cap, the count itself
