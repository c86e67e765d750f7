"""Every JSON answer ends with one newline (shared/responses.py), its Content-Length counting it, and nothing else of
it changed: walked over each service's answers, successes and errors alike, on a live server. A feed's frames end as
Server-Sent Events do, and no newline more."""

from __future__ import annotations

import json
from typing import Any

import httpx

from shared.body import MAX_BODY
from shared.openapi import PATH
from shared.responses import END, JSONResponse
from tests.support.accounts import PASSWORD, registered
from tests.support.http import async_client


def _one_line(response: httpx.Response) -> Any:
    """The answer is JSON on one line and a newline, as a terminal shows it: its value."""
    body, where = response.content, f"{response.request.method} {response.request.url.path}"
    assert response.headers["content-type"] == "application/json", where
    assert int(response.headers["content-length"]) == len(body), where
    assert body.endswith(END) and body.count(b"\n") == 1, f"{where}: {body!r}"
    return json.loads(body)


def _walked(answers: list[tuple[int, httpx.Response]]) -> None:
    for status, response in answers:
        assert response.status_code == status, f"{response.request.url.path}: {response.text}"
        _one_line(response)


def test_the_body_is_starlettes_compact_json_and_one_newline() -> None:
    assert JSONResponse({"é": [1, None]}).body == '{"é":[1,null]}\n'.encode()


async def test_every_json_answer_of_auth_ends_with_one_newline(server: str) -> None:
    async with async_client(base_url=server, timeout=10) as http:
        credentials = {"username": "alice", "password": PASSWORD}
        _walked([
            (201, await http.post("/api/auth/register", json=credentials)),
            (200, await http.get("/api/me")),
            (200, await http.get("/api/shows")),
            (200, await http.get("/api/me/export")),
            (201, await http.post("/api/me/tokens", json={"name": "script"})),
            (400, await http.post("/api/me/tokens", content=b"{", headers={"content-type": "application/json"})),
            (404, await http.get("/api/shows/no_such_show/presence")),
            (404, await http.get("/api/no/such/path")),
            (405, await http.patch("/api/me", json={})),
            (413, await http.post("/api/me/tokens", json={"name": "x" * MAX_BODY})),
            (415, await http.post("/api/me/tokens", data={"name": "form"})),
            (422, await http.post("/api/me/tokens", json={"name": ""})),
        ])  # fmt: skip
    async with async_client(base_url=server, timeout=10) as http:
        _walked([
            (409, await http.post("/api/auth/register", json=credentials)),
            (401, await http.get("/api/me")),
            *[(401, await http.post("/api/auth/login", json={**credentials, "password": "wrong-guess"}))
              for _ in range(5)],
            (429, await http.post("/api/auth/login", json={**credentials, "password": "wrong-guess"})),
        ])  # fmt: skip


async def test_every_json_answer_of_ingest_ends_with_one_newline(alice: httpx.AsyncClient) -> None:
    published = await alice.post("/api/updates", json={"show": "sherlock", "text": "Series 5"})
    seq = _one_line(published)["seq"]
    _walked([
        (201, published),
        (200, await alice.get("/api/updates", params={"show": "sherlock"})),
        (200, await alice.patch(f"/api/updates/{seq}", json={"text": "Series 5, confirmed"})),
        (422, await alice.post("/api/updates", json={"show": "sherlock", "text": ""})),
        (404, await alice.patch("/api/updates/999999", json={"text": "nothing there"})),
    ])  # fmt: skip
    async with async_client(base_url=str(alice.base_url), timeout=10) as stranger:
        _walked([(401, await stranger.post("/api/updates", json={"show": "sherlock", "text": "x"}))])


async def test_the_stream_services_errors_end_with_one_newline_and_its_frames_as_events_do(server: str) -> None:
    async with async_client(base_url=server, timeout=10) as stranger:
        _walked([(401, await stranger.get("/events")), (401, await stranger.get("/events/all"))])
    async with registered(server, "alice") as alice, alice.stream("GET", "/events/all") as feed:
        assert feed.headers["content-type"].startswith("text/event-stream")
        first = await anext(feed.aiter_raw())
        assert first.endswith(b"\n\n") and not first.endswith(b"\n\n\n"), first


async def test_what_every_service_has_ends_with_one_newline(server: str) -> None:
    """create_app's own routes, the API document among them, encoded once."""
    async with async_client(base_url=server, timeout=10) as http:
        _walked([(200, await http.get("/healthz")), (200, await http.get("/readyz")), (200, await http.get(PATH))])
        assert _one_line(await http.get(PATH))["openapi"] == "3.1.0"
