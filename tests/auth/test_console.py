"""The operator console (services/auth/console.py): only the users named in ADMIN_USERS find it; an admin sees real
figures, releases a fixed rejected document (then delivered to an open feed), retracts an update and ends a user's
sessions, and every action is in the audit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from shared.db import Database
from shared.settings import Settings
from tests.support.accounts import json_error, registered
from tests.support.http import async_client
from tests.support.servers import serving
from tests.support.sse import events
from tests.support.updates import publish
from tests.support.waiting import wait_until

ADMIN_ROUTES = [
    ("GET", "/admin"),
    ("GET", "/api/admin/console"),
    ("POST", "/api/admin/rejected/x/release"),
    ("DELETE", "/api/admin/updates/1"),
    ("DELETE", "/api/admin/users/alice/sessions"),
]


@pytest.fixture
def site(settings: Settings) -> Iterator[str]:
    """The all-in-one server with `root` as its one admin, and presence reported often."""
    with serving(replace(settings, admin_users=("Root",), presence_interval=0.3)) as url:
        yield url


@pytest.fixture
async def root(site: str) -> AsyncIterator[httpx.AsyncClient]:
    async with registered(site, "root") as http:
        yield http


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
@pytest.mark.parametrize("who", ["nobody", "alice"])
async def test_anyone_but_an_admin_finds_nothing_there(site: str, method: str, path: str, who: str) -> None:
    """Signed in or not, a page or JSON asked for, a body or none: 404, as for no such path."""
    async with async_client(base_url=site) as anonymous, registered(site, "alice") as alice:
        http = alice if who == "alice" else anonymous
        for accept in ("text/html", "application/json"):
            response = await http.request(method, path, json={}, headers={"accept": accept})
            assert response.status_code == 404, response.text
            assert "Operator console" not in response.text


async def _console(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/api/admin/console")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _rejected(http: httpx.AsyncClient, document_id: str) -> dict[str, Any] | None:
    return next((item for item in (await _console(http))["rejected"] if item["_id"] == document_id), None)


async def _feeds(http: httpx.AsyncClient, per_show: dict[str, int]) -> bool:
    overview = await _console(http)
    return overview["feeds_per_show"] == per_show and [process["feeds"] for process in overview["processes"]] == [1]


async def test_an_admin_releases_a_fixed_rejected_document_and_it_is_delivered(
    root: httpx.AsyncClient, site: str, db: Database
) -> None:
    page = await root.get("/admin", headers={"accept": "text/html"})
    assert page.status_code == 200 and "Operator console" in page.text
    async with registered(site, "alice") as alice:
        assert (await alice.put("/api/me/follows/sherlock")).status_code == 204
        async with events(alice, "/events") as feed:
            inserted = await db.updates.insert_one(
                {"show": "no_such_show", "text": "Fixed in mongosh", "author": "ops"}
            )
            document_id = str(inserted.inserted_id)
            shown = await wait_until(lambda: _rejected(root, document_id))
            assert shown["show"] == "no_such_show" and "show" in shown["reason"]
            assert await wait_until(lambda: _feeds(root, {"sherlock": 1}))  # alice's feed, reported
            await db.updates.update_one({"_id": inserted.inserted_id}, {"$set": {"show": "sherlock"}})
            response = await root.post(f"/api/admin/rejected/{document_id}/release", json={})
            assert response.status_code == 204, response.text
            (update,) = await feed.updates(1)
            assert (update["show"], update["text"]) == ("sherlock", "Fixed in mongosh")
    overview = await _console(root)
    assert await _rejected(root, document_id) is None
    assert overview["audit"][0] | {"at": None} == {
        "at": None,
        "who": "root",
        "what": "release",
        "target": f"update {document_id}",
    }
    assert sum(minute["count"] for minute in overview["publishes"]["per_minute"]) == 1
    again = await root.post(f"/api/admin/rejected/{document_id}/release", json={})
    assert json_error(again)[:2] == (404, "not_found")  # no longer rejected: nothing to release, nothing audited
    assert len((await _console(root))["audit"]) == 1


async def test_an_admin_retracts_an_update_and_ends_a_users_sessions(root: httpx.AsyncClient, site: str) -> None:
    async with registered(site, "alice") as alice:
        async with events(alice, "/events/all") as feed:
            update = await publish(alice, "flash", "to be retracted")
            await feed.updates(1)
            assert (await root.delete(f"/api/admin/updates/{update['seq']}")).status_code == 204
            assert (await feed.named("retract")).json() == {"seq": update["seq"]}
            assert json_error(await root.delete(f"/api/admin/updates/{update['seq']}"))[:2] == (404, "not_found")
            assert json_error(await root.delete("/api/admin/updates/x"))[:3] == (
                422,
                "invalid",
                {"seq": "a whole number"},
            )
            ended = await root.delete("/api/admin/users/ALICE/sessions")
            assert (ended.status_code, ended.json()) == (200, {"ended": 1})
            with pytest.raises(EOFError):
                await feed.named("update")  # the feed ends with the session
        assert (await alice.get("/api/me")).status_code == 401
    assert json_error(await root.delete("/api/admin/users/nobody/sessions"))[:2] == (404, "not_found")
    audit = [(entry["who"], entry["what"], entry["target"]) for entry in (await _console(root))["audit"]]
    assert audit == [
        ("root", "end_sessions", "user alice (1 sessions)"), ("root", "retract", f"update seq {update['seq']}")
    ]  # fmt: skip


async def test_an_admin_write_from_another_site_or_as_a_form_is_refused(root: httpx.AsyncClient, db: Database) -> None:
    """JSON only with the cookie, and from this site: the API's own CSRF defence."""
    inserted = await db.updates.insert_one({"show": "no_such_show", "text": "stays rejected"})
    await wait_until(lambda: _rejected(root, str(inserted.inserted_id)))
    path = f"/api/admin/rejected/{inserted.inserted_id}/release"
    form = await root.post(path, data={"x": "1"})
    foreign = await root.post(path, json={}, headers={"origin": "https://evil.example"})
    assert (form.status_code, json_error(foreign)[:2]) == (415, (403, "cross_site"))
    assert await _rejected(root, str(inserted.inserted_id)) is not None
    assert (await _console(root))["audit"] == []


async def test_the_console_shows_a_publish_limit_refusing_now(settings: Settings) -> None:
    with serving(replace(settings, admin_users=("root",), publishes_per_author=2)) as site:
        async with registered(site, "root") as root:
            assert (await _console(root))["empty_buckets"] == {"login": 0, "registration": 0, "publish": 0}
            for number in range(2):
                await publish(root, "flash", f"update {number}")
            refused = await root.post("/api/updates", json={"show": "flash", "text": "one too many"})
            assert refused.status_code == 429
            assert (await _console(root))["empty_buckets"] == {"login": 0, "registration": 0, "publish": 1}
