"""The publish page: a form with a CSRF token, the flash after the redirect, errors that keep what was typed, and
one's own recent updates to edit or retract."""

from __future__ import annotations

import html

import httpx

from shared.db import Database
from shared.updates import MAX_TEXT
from tests.support.accounts import csrf_of, registered
from tests.support.updates import publish


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
    assert (response.status_code, response.headers["location"]) == (
        303,
        "/publish?show=game_of_thrones",
    )  # the show stays chosen
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
    assert "Update: at most 1,000 characters" in response.text
    marked = 'aria-invalid="true" aria-describedby="text-note"'
    assert f'<textarea name="text" required {marked}>{html.escape(typed)}</textarea>' in response.text
    assert '<option value="sherlock" selected>' in response.text
    unknown = await alice.post("/publish", data={"csrf_token": token, "show": "nope", "text": "kept"})
    assert (
        unknown.status_code == 422
        and "Show: one of flash, game_of_thrones, gossip_girl," in unknown.text
        and ">kept</textarea>" in unknown.text
    )
    assert await db.updates.count_documents({}) == 0


async def test_a_form_without_a_valid_csrf_token_publishes_nothing(alice: httpx.AsyncClient, db: Database) -> None:
    await csrf_of(alice, "/publish")
    for token in ("", "forged"):
        response = await alice.post("/publish", data={"csrf_token": token, "show": "flash", "text": "hi"})
        assert response.status_code == 403
    assert await db.updates.count_documents({}) == 0


async def test_the_publish_page_edits_and_retracts_ones_own_updates(alice: httpx.AsyncClient, server: str) -> None:
    async with registered(server, "bob") as bob:
        theirs = await publish(bob, "flash", "bob's")
    mine = await publish(alice, "flash", "Barry is back")
    page = await alice.get("/publish")
    assert f'name="seq" value="{mine["seq"]}"' in page.text and f'value="{theirs["seq"]}"' not in page.text
    token = await csrf_of(alice, "/publish")
    edit = {"csrf_token": token, "action": "edit", "seq": str(mine["seq"]), "text": "Barry is back!"}
    response = await alice.post("/publish", data=edit)
    assert (response.status_code, response.headers["location"]) == (303, "/publish")
    page = await alice.get("/publish")
    assert f"Update #{mine['seq']} is edited." in page.text and ">Barry is back!</textarea>" in page.text
    assert ">edited</span>" in page.text
    refused = await alice.post("/publish", data={**edit, "action": "retract", "seq": str(theirs["seq"])})
    assert refused.status_code == 403 and "is not yours" in refused.text
    too_long = await alice.post("/publish", data={**edit, "text": "x" * (MAX_TEXT + 1)})
    assert too_long.status_code == 422 and "Update: at most 1,000 characters" in too_long.text
    for wrong in ({"action": "forget"}, {"seq": ""}, {"seq": "x"}):
        assert (await alice.post("/publish", data={**edit, **wrong})).status_code in (404, 422)
    response = await alice.post("/publish", data={**edit, "action": "retract"})
    assert response.status_code == 303
    assert [item["seq"] for item in (await alice.get("/api/updates")).json()["items"]] == [theirs["seq"]]
