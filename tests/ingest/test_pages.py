"""The publish page: a form with a CSRF token, the flash after the redirect, errors that keep what was typed."""

from __future__ import annotations

import html

import httpx

from shared.db import Database
from shared.updates import MAX_TEXT
from tests.support.accounts import csrf_of


async def test_the_publish_page_needs_a_login(client: httpx.AsyncClient) -> None:
    response = await client.get("/publish")
    assert (response.status_code, response.headers["location"]) == (303, "/login?next=%2Fpublish")


async def test_the_form_offers_every_show(alice: httpx.AsyncClient) -> None:
    page = (await alice.get("/publish")).text
    assert '<option value="game_of_thrones">Game of Thrones</option>' in page
    assert '<textarea name="text"' in page


async def test_publishing_from_the_form_flashes_and_stores_the_text(alice: httpx.AsyncClient, db: Database) -> None:
    token = await csrf_of(alice, "/publish")
    text = "Winter <b>came</b>\nat last"
    response = await alice.post("/publish", data={"csrf_token": token, "show": "game_of_thrones", "text": text})
    assert (response.status_code, response.headers["location"]) == (303, "/publish")
    page = (await alice.get("/publish")).text
    assert "Published update #1 for Game of Thrones." in page
    assert "Published update" not in (await alice.get("/publish")).text  # the flash is shown once
    stored = await db.updates.find_one({"seq": 1})
    assert stored is not None and (stored["show"], stored["text"], stored["author"]) == (
        "game_of_thrones",
        text,
        "alice",
    )


async def test_form_errors_are_shown_with_what_was_typed(alice: httpx.AsyncClient, db: Database) -> None:
    token = await csrf_of(alice, "/publish")
    typed = "<script>alert(1)</script> " + "x" * MAX_TEXT
    response = await alice.post("/publish", data={"csrf_token": token, "show": "sherlock", "text": typed})
    assert response.status_code == 422
    assert "Update: at most 1000 characters" in response.text
    assert f'<textarea name="text" required>{html.escape(typed)}</textarea>' in response.text
    assert '<option value="sherlock" selected>' in response.text
    unknown = await alice.post("/publish", data={"csrf_token": token, "show": "nope", "text": "kept"})
    assert (
        unknown.status_code == 422
        and "Show: choose one of the shows" in unknown.text
        and ">kept</textarea>" in unknown.text
    )
    assert await db.updates.count_documents({}) == 0


async def test_a_form_without_a_valid_csrf_token_publishes_nothing(alice: httpx.AsyncClient, db: Database) -> None:
    await csrf_of(alice, "/publish")
    for token in ("", "forged"):
        response = await alice.post("/publish", data={"csrf_token": token, "show": "flash", "text": "hi"})
        assert response.status_code == 403
    assert await db.updates.count_documents({}) == 0
