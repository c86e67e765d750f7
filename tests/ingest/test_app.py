"""The ingest API over real HTTP against the embedded server: publishing, every refusal, idempotency, history."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from shared.body import MAX_BODY
from shared.db import Database
from shared.settings import Settings
from shared.updates import MAX_TEXT
from tests.support.accounts import json_error, registered
from tests.support.http import async_client
from tests.support.servers import serving
from tests.support.updates import publish

JSON = {"content-type": "application/json"}
HUGE = 16 * 1024 * 1024  # more than socket buffers hold: a client sending it reads a reset unless it is drained
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


async def new_token(http: httpx.AsyncClient, name: str = "script") -> str:
    response = await http.post("/api/me/tokens", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["token"]


@pytest.fixture
async def bearer(alice: httpx.AsyncClient, server: str) -> AsyncIterator[httpx.AsyncClient]:
    """A script's client: no cookies, alice's API token."""
    headers = {"authorization": f"Bearer {await new_token(alice)}"}
    async with async_client(base_url=server, headers=headers, timeout=10) as http:
        yield http


async def test_publish_with_a_cookie_answers_the_stored_update(alice: httpx.AsyncClient, db: Database) -> None:
    update = await publish(alice, "flash", "Barry is back")
    assert {k: v for k, v in update.items() if k != "created_at"} == {
        "seq": 1, "show": "flash", "title": "The Flash", "text": "Barry is back", "author": "alice",
    }  # fmt: skip
    assert TIMESTAMP.fullmatch(update["created_at"])
    stored = await db.updates.find_one({"seq": 1})
    assert stored is not None and stored["author_id"] and "idempotency_key" not in stored


async def test_publish_with_a_bearer_token(bearer: httpx.AsyncClient, alice: httpx.AsyncClient) -> None:
    first, second = await publish(bearer, "sherlock", "one"), await publish(bearer, "suits", "two")
    assert (first["author"], second["seq"]) == ("alice", first["seq"] + 1)
    edited = await alice.patch(f"/api/updates/{first['seq']}", json={"text": "one, by the page"})
    assert edited.status_code == 200, edited.text  # the token's update is its user's, whichever way they come


async def test_text_is_stored_exactly_as_typed_html_included(alice: httpx.AsyncClient, db: Database) -> None:
    text = "  <img src=x onerror=alert(1)> & <b>bold</b>\n\tüñï 🎬 "
    assert (await publish(alice, "flash", text))["text"] == text
    assert (await db.updates.find_one({}))["text"] == text
    assert (await publish(alice, "flash", "x" * MAX_TEXT))["text"] == "x" * MAX_TEXT


@pytest.mark.parametrize(
    ("body", "field"),
    [({"show": "no_such_show", "text": "hi"}, "show"), ({"text": "hi"}, "show"),
     ({"show": "flash", "text": ""}, "text"), ({"show": "flash", "text": " \n\t "}, "text"),
     ({"show": "flash", "text": "x" * (MAX_TEXT + 1)}, "text"), ({"show": "flash", "text": "\u3000\x1c\u2029"}, "text"),
     ({"show": "flash"}, "text"), ({"show": ["flash"], "text": "hi"}, "show"), ({"show": "flash", "text": 5}, "text")],
)  # fmt: skip
async def test_invalid_updates_are_422_naming_the_field(
    alice: httpx.AsyncClient, db: Database, body: dict, field: str
) -> None:
    status, error, fields = json_error(await alice.post("/api/updates", json=body))
    assert (status, error) == (422, "invalid") and field in fields
    assert await db.updates.count_documents({}) == 0
    assert await db.counters.count_documents({}) == 0  # no seq was taken either


async def test_every_problem_is_named_at_once(alice: httpx.AsyncClient) -> None:
    response = await alice.post(
        "/api/updates", json={"show": "nope", "text": ""}, headers={"idempotency-key": "k" * 201}
    )
    assert set(json_error(response)[2]) == {"show", "text", "Idempotency-Key"}


@pytest.mark.parametrize(
    ("content", "headers", "expected"),
    [(b"{" * (MAX_BODY + 1), JSON, (413, "too_large")),
     (b"show=flash&text=hi", {"content-type": "application/x-www-form-urlencoded"}, (415, "unsupported_media_type")),
     (b'{"show": "flash", "text": "hi"}', {}, (415, "unsupported_media_type")),
     (b'{"show": "flash", "text": ', JSON, (400, "invalid_json")),
     (b'["flash", "hi"]', JSON, (400, "invalid_json")),
     (b'{"show": "flash", "text": "\xff"}', JSON, (400, "bad_encoding")),
     (b'{"show": "flash", "text": "\\ud800"}', JSON, (422, "invalid"))],
)  # fmt: skip
async def test_bodies_that_are_not_an_update_are_refused(
    bearer: httpx.AsyncClient, db: Database, content: bytes, headers: dict, expected: tuple[int, str]
) -> None:
    response = await bearer.post("/api/updates", content=content, headers=headers)
    assert json_error(response)[:2] == expected
    assert await db.updates.count_documents({}) == 0


@pytest.mark.parametrize("authorization", [None, "Bearer gsp_not-a-real-token", "Bearer", "Basic YWxpY2U6eA=="])
async def test_publishing_without_a_valid_caller_is_401(
    client: httpx.AsyncClient, db: Database, authorization: str | None
) -> None:
    headers = {"authorization": authorization} if authorization else {}
    response = await client.post("/api/updates", json={"show": "flash", "text": "hi"}, headers=headers)
    assert json_error(response)[:2] == (401, "unauthorized")
    assert await db.updates.count_documents({}) == 0


@pytest.mark.parametrize("size", [MAX_BODY * 4, HUGE])
async def test_a_large_body_without_auth_gets_its_401_not_a_reset(client: httpx.AsyncClient, size: int) -> None:
    for _ in range(3):  # and the connection stays usable
        response = await client.post("/api/updates", content=b"x" * size, headers=JSON)
        assert response.status_code == 401


@pytest.mark.parametrize("size", [MAX_BODY * 4, HUGE])
async def test_an_oversized_body_sent_anyway_gets_its_413_not_a_reset(bearer: httpx.AsyncClient, size: int) -> None:
    for _ in range(3):
        response = await bearer.post("/api/updates", content=b"x" * size, headers=JSON)
        assert json_error(response)[:2] == (413, "too_large")


async def test_an_oversized_body_sent_in_chunks_gets_its_413_not_a_reset(bearer: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the size is found by reading
        for _ in range(HUGE // 65536):
            yield b"x" * 65536

    response = await bearer.post("/api/updates", content=chunks(), headers=JSON)
    assert json_error(response)[:2] == (413, "too_large")


async def test_a_wrong_token_is_refused_even_with_a_valid_cookie(alice: httpx.AsyncClient, db: Database) -> None:
    response = await alice.post(
        "/api/updates", json={"show": "flash", "text": "hi"}, headers={"authorization": "Bearer x"}
    )
    assert response.status_code == 401
    assert await db.updates.count_documents({}) == 0


async def test_a_retry_with_the_same_key_returns_the_first_update(bearer: httpx.AsyncClient, db: Database) -> None:
    body, key = {"show": "flash", "text": "once"}, {"idempotency-key": "retry-1"}
    first = await bearer.post("/api/updates", json=body, headers=key)
    again = await bearer.post("/api/updates", json=body, headers=key)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert await db.updates.count_documents({}) == 1
    assert (await db.counters.find_one({"_id": "updates"}))["seq"] == 1  # the retry took no seq: no hole


async def test_the_same_key_from_another_author_is_another_update(bearer: httpx.AsyncClient, server: str) -> None:
    body, key = {"show": "flash", "text": "mine"}, {"idempotency-key": "shared"}
    async with registered(server, "bob") as bob:
        seqs = {(await http.post("/api/updates", json=body, headers=key)).json()["seq"] for http in (bearer, bob)}
    assert seqs == {1, 2}


async def test_racing_retries_with_one_key_write_once(bearer: httpx.AsyncClient, db: Database) -> None:
    body, key = {"show": "flash", "text": "raced"}, {"idempotency-key": "race"}
    responses = await asyncio.gather(*(bearer.post("/api/updates", json=body, headers=key) for _ in range(10)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["seq"] for r in responses}) == 1
    assert await db.updates.count_documents({}) == 1


async def test_a_used_key_with_a_different_update_is_422(bearer: httpx.AsyncClient, db: Database) -> None:
    key = {"idempotency-key": "k1"}
    assert (await bearer.post("/api/updates", json={"show": "flash", "text": "a"}, headers=key)).status_code == 201
    for body in ({"show": "flash", "text": "b"}, {"show": "suits", "text": "a"}):
        response = await bearer.post("/api/updates", json=body, headers=key)
        assert json_error(response)[0] == 422 and "Idempotency-Key" in json_error(response)[2]
    assert await db.updates.count_documents({}) == 1


async def test_a_retry_after_an_edit_is_still_the_same_request(bearer: httpx.AsyncClient) -> None:
    """The key remembers what was asked, not the text as edited since: the retry gets the update as it is now."""
    body, key = {"show": "flash", "text": "first"}, {"idempotency-key": "edited-later"}
    first = (await bearer.post("/api/updates", json=body, headers=key)).json()
    assert (await bearer.patch(f"/api/updates/{first['seq']}", json={"text": "second"})).status_code == 200
    again = await bearer.post("/api/updates", json=body, headers=key)
    assert again.status_code == 201 and (again.json()["seq"], again.json()["text"]) == (first["seq"], "second")


async def test_a_retry_after_a_retraction_publishes_nothing(bearer: httpx.AsyncClient, db: Database) -> None:
    body, key = {"show": "flash", "text": "said too soon"}, {"idempotency-key": "retracted-later"}
    first = (await bearer.post("/api/updates", json=body, headers=key)).json()
    assert (await bearer.delete(f"/api/updates/{first['seq']}")).status_code == 204
    again = await bearer.post("/api/updates", json=body, headers=key)
    assert json_error(again) == (409, "retracted", {"Idempotency-Key": "its update was retracted"})
    other = await bearer.post("/api/updates", json={**body, "text": "something else"}, headers=key)
    assert json_error(other)[0] == 422 and "Idempotency-Key" in json_error(other)[2]
    assert await db.updates.count_documents({}) == 0


async def test_history_pages_in_seq_order(bearer: httpx.AsyncClient) -> None:
    sent = [await publish(bearer, show, f"{show} {i}") for i in range(3) for show in ("flash", "suits")]
    everything = (await bearer.get("/api/updates")).json()
    assert everything == {"items": sent, "next_after": sent[-1]["seq"]}
    flash = [update for update in sent if update["show"] == "flash"]
    first = (await bearer.get("/api/updates", params={"show": "flash", "limit": 2})).json()
    assert first == {"items": flash[:2], "next_after": flash[1]["seq"]}
    rest = (await bearer.get("/api/updates", params={"show": "flash", "after": first["next_after"]})).json()
    assert rest == {"items": flash[2:], "next_after": flash[2]["seq"]}
    end = (await bearer.get("/api/updates", params={"show": "flash", "after": rest["next_after"]})).json()
    assert end == {"items": [], "next_after": rest["next_after"]}


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"), ({"limit": "ten"}, "limit"), ({"after": "-1"}, "after"),
     ({"after": "9" * 5000}, "after"), ({"after": "１"}, "after"), ({"show": "nope"}, "show"),
     ({"after": ""}, "after"), ({"limit": ""}, "limit")],
)  # fmt: skip
async def test_history_with_bad_parameters_is_422_naming_them(
    alice: httpx.AsyncClient, params: dict, field: str
) -> None:
    status, _, fields = json_error(await alice.get("/api/updates", params=params))
    assert status == 422 and field in fields


async def test_history_needs_a_caller(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/updates")).status_code == 401


async def test_an_author_edits_their_update_and_history_shows_it_edited(bearer: httpx.AsyncClient) -> None:
    published = await publish(bearer, "flash", "Barry is back")
    response = await bearer.patch(f"/api/updates/{published['seq']}", json={"text": "Barry is back!"})
    assert response.status_code == 200, response.text
    edited = response.json()
    assert {**edited, "edited_at": None} == {**published, "text": "Barry is back!", "edited_at": None}
    assert TIMESTAMP.fullmatch(edited["edited_at"]) and edited["edited_at"] >= published["created_at"]
    assert (await bearer.get("/api/updates")).json()["items"] == [edited]
    unchanged = await bearer.patch(f"/api/updates/{published['seq']}", json={"text": "Barry is back!"})
    assert unchanged.json() == edited  # the same text again is no edit


async def test_an_author_retracts_their_update_and_it_is_gone(alice: httpx.AsyncClient) -> None:
    kept, retracted = await publish(alice, "flash", "kept"), await publish(alice, "flash", "retracted")
    assert (await alice.delete(f"/api/updates/{retracted['seq']}")).status_code == 204
    assert (await alice.get("/api/updates")).json()["items"] == [kept]
    assert json_error(await alice.delete(f"/api/updates/{retracted['seq']}"))[:2] == (404, "not_found")


async def test_nobody_edits_or_retracts_another_authors_update(alice: httpx.AsyncClient, server: str) -> None:
    published = await publish(alice, "flash", "alice's")
    async with registered(server, "mallory") as mallory:
        edit = await mallory.patch(f"/api/updates/{published['seq']}", json={"text": "mallory's now"})
        retract = await mallory.delete(f"/api/updates/{published['seq']}")
    assert json_error(edit)[:2] == json_error(retract)[:2] == (403, "forbidden")
    assert (await alice.get("/api/updates")).json()["items"] == [published]


async def test_an_edit_is_checked_as_a_publish_is(alice: httpx.AsyncClient, db: Database) -> None:
    published = await publish(alice, "flash", "Barry is back")
    too_long = f"at most {MAX_TEXT:,} characters (this is {MAX_TEXT + 1:,})"
    for body, problem in (({"text": " "}, "required"), ({}, "required"), ({"text": "x" * (MAX_TEXT + 1)}, too_long)):
        response = await alice.patch(f"/api/updates/{published['seq']}", json=body)
        assert json_error(response)[0::2] == (422, {"text": problem})
    assert json_error(await alice.patch(f"/api/updates/{published['seq']}", json={"text": 7}))[0] == 422
    for missing in (published["seq"] + 1, 10**30):
        assert json_error(await alice.patch(f"/api/updates/{missing}", json={"text": "hi"}))[:2] == (404, "not_found")
        assert json_error(await alice.delete(f"/api/updates/{missing}"))[:2] == (404, "not_found")
    assert (await db.updates.find_one({"seq": published["seq"]}))["text"] == "Barry is back"


async def test_changing_an_update_needs_a_caller(client: httpx.AsyncClient) -> None:
    assert json_error(await client.patch("/api/updates/1", json={"text": "hi"}))[:2] == (401, "unauthorized")
    assert json_error(await client.delete("/api/updates/1"))[:2] == (401, "unauthorized")


async def test_a_retracted_update_is_no_longer_unread(server: str) -> None:
    async with registered(server, "bob") as bob, registered(server, "alice") as alice:
        await alice.put("/api/me/follows/flash")
        first, _ = await publish(bob, "flash", "one"), await publish(bob, "flash", "two")
        assert (await alice.get("/api/me")).json()["unread"] == 2
        assert (await bob.delete(f"/api/updates/{first['seq']}")).status_code == 204
        assert (await alice.get("/api/me")).json()["unread"] == 1


async def test_an_expect_100_continue_client_gets_its_413_without_sending_the_body(
    alice: httpx.AsyncClient, server: str
) -> None:
    """Decided from Content-Length: the server never says 100 Continue, so curl and the like never send it."""
    port = int(server.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    cookie = f"cookie: gossip_session={alice.cookies['gossip_session']}\r\n".encode()
    writer.write(b"POST /api/updates HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n" + cookie +
                 b"content-length: 104857600\r\nexpect: 100-continue\r\n\r\n")  # fmt: skip
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    assert head.startswith(b"HTTP/1.1 413 ")


@pytest.fixture
def limited(settings: Settings) -> Iterator[str]:
    """A server that lets an author publish 3 updates, then one an hour."""
    with serving(dataclasses.replace(settings, publishes_per_author=3, publish_window=3 * 3600)) as url:
        yield url


async def test_publishing_is_limited_per_author_with_retry_after(limited: str, db: Database) -> None:
    async with registered(limited, "ann") as ann, registered(limited, "ben") as ben:
        responses = await asyncio.gather(*(ann.post("/api/updates", json={"show": "flash", "text": f"{n}"})
                                           for n in range(10)))  # fmt: skip
        assert sorted(response.status_code for response in responses) == [201] * 3 + [429] * 7
        refused = next(response for response in responses if response.status_code == 429)
        assert json_error(refused)[:2] == (429, "throttled") and 3000 <= int(refused.headers["retry-after"]) <= 3600
        assert (await ben.post("/api/updates", json={"show": "flash", "text": "mine"})).status_code == 201
    assert await db.updates.count_documents({"author": "ann"}) == 3


async def test_a_retry_of_a_stored_key_is_never_refused(limited: str) -> None:
    async with registered(limited, "ann") as ann:
        key = {"idempotency-key": "first"}
        first = await ann.post("/api/updates", json={"show": "flash", "text": "kept"}, headers=key)
        for n in range(2):
            await publish(ann, "flash", f"more {n}")
        assert (await ann.post("/api/updates", json={"show": "flash", "text": "new"})).status_code == 429
        again = await ann.post("/api/updates", json={"show": "flash", "text": "kept"}, headers=key)
        assert (again.status_code, again.json()) == (201, first.json())


async def test_edits_count_against_the_same_limit(limited: str) -> None:
    """An edit goes out to every feed as a publish does; an edit that changes nothing takes nothing."""
    async with registered(limited, "ann") as ann:
        seq = (await publish(ann, "flash", "first"))["seq"]
        for text in ("second", "third", "third"):
            assert (await ann.patch(f"/api/updates/{seq}", json={"text": text})).status_code == 200
        refused = await ann.patch(f"/api/updates/{seq}", json={"text": "fourth"})
        assert json_error(refused)[:2] == (429, "throttled") and "retry-after" in refused.headers
