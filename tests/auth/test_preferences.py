"""GET and PUT /api/me/preferences, and the Preferences page, over real HTTP against the embedded MongoDB server."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from services.auth import preferences as auth_preferences
from services.auth.endpoints import preferences as preferences_endpoints
from shared.db import Database, next_seq
from shared.preferences import LEVELS
from shared.updates import personal_topics
from tests.support.accounts import PASSWORD, csrf_of, json_error, user_id
from tests.support.updates import TopicReads, addressed, personal_update

DEFAULTS = {"shows": {}, "time_zone": "UTC", "quiet_hours": None, "digest_hour": 8}


async def test_a_new_user_has_the_defaults(alice: httpx.AsyncClient) -> None:
    response = await alice.get("/api/me/preferences")
    assert (response.status_code, response.json()) == (200, DEFAULTS)


async def test_preferences_need_a_session(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/me/preferences")).status_code == 401
    assert (await client.put("/api/me/preferences", json={"digest_hour": 9})).status_code == 401


async def test_a_change_is_answered_in_full_and_kept(alice: httpx.AsyncClient, db: Database) -> None:
    change = {"shows": {"sherlock": "push", "flash": "muted"}, "time_zone": "Europe/Paris",
              "quiet_hours": {"start": "22:00", "end": "07:00"}, "digest_hour": 7}  # fmt: skip
    response = await alice.put("/api/me/preferences", json=change)
    assert (response.status_code, response.json()) == (200, change)
    assert (await alice.get("/api/me/preferences")).json() == change
    stored = await db.users.find_one({"username": "alice"})
    assert stored is not None and stored["preferences"]["shows"] == {"sherlock": "push", "flash": "muted"}


async def test_every_key_is_optional_and_a_show_not_named_keeps_its_level(alice: httpx.AsyncClient) -> None:
    await alice.put("/api/me/preferences", json={"shows": {"sherlock": "push", "flash": "muted"}, "digest_hour": 20})
    response = await alice.put("/api/me/preferences", json={"shows": {"flash": "live"}})
    assert response.json() == {**DEFAULTS, "shows": {"sherlock": "push"}, "digest_hour": 20}
    quiet = await alice.put("/api/me/preferences", json={"quiet_hours": {"start": "23:30", "end": "06:15"}})
    assert quiet.json()["quiet_hours"] == {"start": "23:30", "end": "06:15"}
    off = await alice.put("/api/me/preferences", json={"quiet_hours": None})
    assert off.json() == {**DEFAULTS, "shows": {"sherlock": "push"}, "digest_hour": 20}
    assert (await alice.put("/api/me/preferences", json={})).json() == off.json()


@pytest.mark.parametrize(
    ("body", "fields"),
    [({"shows": {"no_such_show": "push"}}, {"shows.no_such_show"}),
     ({"shows": {"sherlock": "loud"}}, {"shows.sherlock"}),
     ({"shows": ["sherlock"]}, {"shows"}),
     ({"time_zone": "Mars/Olympus_Mons"}, {"time_zone"}),
     ({"time_zone": 7}, {"time_zone"}),
     ({"digest_hour": 24}, {"digest_hour"}),
     ({"digest_hour": -1}, {"digest_hour"}),
     ({"digest_hour": "8"}, {"digest_hour"}),
     ({"quiet_hours": {"start": "24:00", "end": "07:00"}}, {"quiet_hours.start"}),
     ({"quiet_hours": {"start": "22:00", "end": "7:00"}}, {"quiet_hours.end"}),
     ({"quiet_hours": {"start": "22:00"}}, {"quiet_hours"}),
     ({"volume": 11}, {"volume"})],
)  # fmt: skip
async def test_bad_input_is_a_422_naming_the_field(
    alice: httpx.AsyncClient, body: dict[str, Any], fields: set[str]
) -> None:
    response = await alice.put("/api/me/preferences", json=body)
    status, error, named = json_error(response)
    assert (status, error, set(named)) == (422, "invalid", fields)


async def test_nothing_is_half_written(alice: httpx.AsyncClient) -> None:
    """One bad field refuses the whole change: the good ones beside it are not kept either."""
    body = {"shows": {"sherlock": "push"}, "time_zone": "Europe/Paris", "digest_hour": 99}
    assert (await alice.put("/api/me/preferences", json=body)).status_code == 422
    assert (await alice.get("/api/me/preferences")).json() == DEFAULTS


async def test_a_change_must_be_json(alice: httpx.AsyncClient) -> None:
    response = await alice.put("/api/me/preferences", data={"digest_hour": "9"})
    assert response.status_code == 415


async def test_a_personal_topic_takes_a_level_once_an_update_of_it_was_addressed_to_the_user(
    alice: httpx.AsyncClient, db: Database
) -> None:
    refused = await alice.put("/api/me/preferences", json={"shows": {"orders": "push"}})
    assert json_error(refused)[0] == 422 and set(json_error(refused)[2]) == {"shows.orders"}
    await addressed(db, "someone_else", "Your order of a teapot is placed.")
    assert (await alice.put("/api/me/preferences", json={"shows": {"orders": "push"}})).status_code == 422
    await addressed(db, await user_id(db, "alice"), "Your order of a cup is shipped.")
    for level in ("push", "digest", "muted"):
        response = await alice.put("/api/me/preferences", json={"shows": {"orders": level}})
        assert (response.status_code, response.json()["shows"]) == (200, {"orders": level})
    loud = await alice.put("/api/me/preferences", json={"shows": {"orders": "loud", "flash": "push"}})
    assert json_error(loud)[:2] == (422, "invalid") and set(json_error(loud)[2]) == {"shows.orders"}
    assert (await alice.get("/api/me/preferences")).json()["shows"] == {"orders": "muted"}


def form(token: str, **fields: str) -> dict[str, str]:
    """The page's form as a browser sends it with quiet hours off: every field, the unticked box left out."""
    sent = {"csrf_token": token, "time_zone": "UTC", "quiet_hours.start": "22:00", "quiet_hours.end": "07:00",
            "digest_hour": "8"}  # fmt: skip
    return {**sent, **fields}


async def test_the_page_is_linked_from_the_header_and_lists_each_followed_show(alice: httpx.AsyncClient) -> None:
    await alice.put("/api/me/follows/sherlock")
    await alice.put("/api/me/preferences", json={"shows": {"sherlock": "digest"}})
    page = (await alice.get("/preferences")).text
    assert '<a href="/preferences">Preferences</a>' in (await alice.get("/")).text
    assert '<option value="digest" selected>' in page and 'name="shows.sherlock"' in page
    assert 'name="shows.flash"' not in page  # not followed
    assert "data-from-browser" in page  # no time zone chosen yet: the script fills in the browser's


async def test_the_page_lists_personal_topics_in_their_own_group_and_saves_them(
    alice: httpx.AsyncClient, db: Database
) -> None:
    assert "Personal notifications" not in (await alice.get("/preferences")).text
    await addressed(db, await user_id(db, "alice"), "Your order of a cup is shipped.")
    page = (await alice.get("/preferences")).text
    group = page[page.index('<fieldset id="personal">') : page.index("</fieldset>", page.index('id="personal"'))]
    assert "<legend>Personal notifications</legend>" in group and "Your orders" in group
    assert 'name="shows.orders"' in group and re.findall('<option value="([a-z]+)"', group) == list(LEVELS)
    token = await csrf_of(alice, "/preferences")
    response = await alice.post("/preferences", data=form(token, **{"shows.orders": "muted"}))
    assert response.status_code == 303
    assert (await alice.get("/api/me/preferences")).json()["shows"] == {"orders": "muted"}
    assert '<option value="muted" selected>' in (await alice.get("/preferences")).text


async def test_the_form_saves_as_the_api_does(alice: httpx.AsyncClient) -> None:
    await alice.put("/api/me/follows/sherlock")
    token = await csrf_of(alice, "/preferences")
    sent = form(token, **{"shows.sherlock": "muted", "time_zone": "Asia/Tokyo", "quiet_hours": "on",
                          "quiet_hours.start": "23:00", "quiet_hours.end": "06:30", "digest_hour": "19"})  # fmt: skip
    response = await alice.post("/preferences", data=sent)
    assert (response.status_code, response.headers["location"]) == (303, "/preferences")
    assert (await alice.get("/api/me/preferences")).json() == {
        "shows": {"sherlock": "muted"}, "time_zone": "Asia/Tokyo",
        "quiet_hours": {"start": "23:00", "end": "06:30"}, "digest_hour": 19,
    }  # fmt: skip
    page = (await alice.get("/preferences")).text
    assert "Your preferences are saved." in page and "data-from-browser" not in page
    assert (await alice.post("/preferences", data=form(token))).status_code == 303
    assert (await alice.get("/api/me/preferences")).json()["quiet_hours"] is None  # unticked: none


@pytest.mark.parametrize(
    ("fields", "name"),
    [({"time_zone": "Atlantis/Capital"}, "time_zone"), ({"digest_hour": "25"}, "digest_hour"),
     ({"digest_hour": "eight"}, "digest_hour"), ({"shows.sherlock": "loud"}, "shows.sherlock"),
     ({"quiet_hours": "on", "quiet_hours.start": "25:00"}, "quiet_hours.start")],
)  # fmt: skip
async def test_a_refused_form_marks_the_field_and_keeps_what_was_typed(
    alice: httpx.AsyncClient, fields: dict[str, str], name: str
) -> None:
    await alice.put("/api/me/follows/sherlock")
    token = await csrf_of(alice, "/preferences")
    response = await alice.post("/preferences", data=form(token, **fields))
    assert response.status_code == 422 and response.headers["content-type"].startswith("text/html")
    note = name.replace(".", "-") + "-note"
    assert f'aria-describedby="{note}" aria-invalid="true"' in response.text and f'id="{note}"' in response.text
    assert response.text.count('aria-invalid="true"') == 1
    if name == "time_zone":
        assert 'value="Atlantis/Capital"' in response.text
    assert (await alice.get("/api/me/preferences")).json() == DEFAULTS


async def test_the_form_needs_its_csrf_token(alice: httpx.AsyncClient) -> None:
    await csrf_of(alice, "/preferences")
    response = await alice.post("/preferences", data=form("forged", digest_hour="3"))
    assert response.status_code == 403
    assert (await alice.get("/api/me/preferences")).json() == DEFAULTS


async def test_the_page_offers_the_export_and_deletes_the_account_with_the_password(
    alice: httpx.AsyncClient, db: Database
) -> None:
    page = (await alice.get("/preferences")).text
    assert '<a href="/api/me/export" download>Download my data</a>' in page and 'value="delete"' in page
    token = await csrf_of(alice, "/preferences")
    wrong = await alice.post("/preferences", data={"csrf_token": token, "action": "delete", "password": "nope-nope"})
    assert wrong.status_code == 401 and "Password: wrong password" in wrong.text
    assert 'aria-describedby="password-note delete-effect" aria-invalid="true"' in wrong.text
    assert await db.users.count_documents({"username": "alice"}) == 1
    deleted = await alice.post("/preferences", data={"csrf_token": token, "action": "delete", "password": PASSWORD})
    assert (deleted.status_code, deleted.headers["location"]) == (303, "/")
    assert await db.users.count_documents({"username": "alice"}) == 0
    home = await alice.get("/")
    assert "Your account is deleted." in home.text and 'href="/login"' in home.text


HOSTILE_TOPICS = ["a.b", "$x", "x.$y", "", "z" * 500, "émission", "<script>alert(1)</script>"]


@pytest.mark.parametrize("topic", HOSTILE_TOPICS)
async def test_a_topic_another_program_wrote_that_is_no_slug_is_never_offered_nor_taken(
    alice: httpx.AsyncClient, db: Database, topic: str
) -> None:
    """A personal update written straight into MongoDB with any `show`: its topic would be the stored path
    `preferences.shows.<topic>`, which a '.' nests and a '$' breaks. The page and the API offer only her real topic,
    a level for the other is a 422 naming it, and nothing beside it is written."""
    alice_id = await user_id(db, "alice")
    await addressed(db, alice_id, "Your order of a cup is shipped.")
    await db.updates.insert_one({"show": topic, "text": "hi", "author": "orders", "recipient": alice_id})
    await db.updates.insert_one({**personal_update(await next_seq(db), alice_id), "show": topic})
    page = await alice.get("/preferences")
    assert page.status_code == 200 and re.findall(r'name="shows\.([^"]*)"', page.text) == ["orders"]
    refused = await alice.put("/api/me/preferences", json={"shows": {topic: "push", "orders": "digest"}})
    assert json_error(refused)[:2] == (422, "invalid") and set(json_error(refused)[2]) == {f"shows.{topic}"}
    token = await csrf_of(alice, "/preferences")
    sent = await alice.post("/preferences", data=form(token, **{f"shows.{topic}": "push", "digest_hour": "9"}))
    assert sent.status_code == 303  # the page reads its own fields: the topic's is none of them
    assert (await alice.get("/api/me/preferences")).json() == {**DEFAULTS, "digest_hour": 9}
    stored = await db.users.find_one({"_id": alice_id})
    assert stored is not None and "shows" not in stored["preferences"]
    assert (await alice.put("/api/me/preferences", json={"shows": {"orders": "push"}})).status_code == 200


@pytest.fixture
def topic_reads(monkeypatch: pytest.MonkeyPatch) -> TopicReads:
    reads = TopicReads(personal_topics)
    monkeypatch.setattr(auth_preferences, "personal_topics", reads)
    monkeypatch.setattr(preferences_endpoints, "personal_topics", reads)
    return reads


@pytest.mark.parametrize(
    ("fields", "status"),
    [({"digest_hour": "9"}, 303), ({"digest_hour": "25"}, 422), ({"action": "delete", "password": "nope-nope"}, 401)],
)
async def test_a_post_of_the_form_reads_her_personal_topics_once(
    topic_reads: TopicReads, alice: httpx.AsyncClient, db: Database, fields: dict[str, str], status: int
) -> None:
    """The form's fields, the change's check and a refusal's page all need them: one read, passed on."""
    await addressed(db, await user_id(db, "alice"), "Your order of a cup is shipped.")
    token = await csrf_of(alice, "/preferences")
    topic_reads.count = 0
    response = await alice.post("/preferences", data=form(token, **{"shows.orders": "muted", **fields}))
    assert response.status_code == status and topic_reads.count == 1
    if status != 303:
        assert 'name="shows.orders"' in response.text


async def test_a_level_written_by_hand_for_no_followed_show_nor_topic_is_not_echoed(
    alice: httpx.AsyncClient, db: Database
) -> None:
    """A level means something for a show of the catalogue (while followed, to push and the digest) or a personal
    topic: the API shows no other key of `users` (written by hand, or left by a show gone from the catalogue), the
    page offers only the followed shows of the catalogue and the topics, and its POST is never refused for a field
    it did not offer."""
    alice_id = await user_id(db, "alice")
    await addressed(db, alice_id, "Your order of a cup is shipped.")
    hostile = {"sherlock": "push", "orders": "digest", "gone": "digest", "flash": "push", "<b>x</b>": "push",
               "a\uff0eb": "muted", "z" * 500: "push"}  # fmt: skip
    await db.users.update_one({"_id": alice_id}, {"$set": {"follows": ["sherlock", "gone", "a.b", "$x"],
                                                            "preferences.shows": hostile}})  # fmt: skip
    expected = {**DEFAULTS, "shows": {"sherlock": "push", "orders": "digest", "flash": "push"}}
    assert (await alice.get("/api/me/preferences")).json() == expected
    assert (await alice.put("/api/me/preferences", json={})).json() == expected
    page = await alice.get("/preferences")
    assert page.status_code == 200 and re.findall(r'name="shows\.([^"]*)"', page.text) == ["sherlock", "orders"]
    token = await csrf_of(alice, "/preferences")
    sent = {"shows.sherlock": "digest", "shows.orders": "push", "shows.gone": "push", "shows.a.b": "push"}
    assert (await alice.post("/preferences", data=form(token, **sent))).status_code == 303
    after = {**DEFAULTS, "shows": {"sherlock": "digest", "orders": "push", "flash": "push"}}
    assert (await alice.get("/api/me/preferences")).json() == after
