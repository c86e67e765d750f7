"""The operator console (services/auth/console.py): only the users named in ADMIN_USERS find it; an admin sees real
figures, releases a fixed rejected document (then delivered to an open feed), retracts an update and ends a user's
sessions, every action in the audit and none from another site; refusals are summed over every process."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from dev.processes import ServiceProcess
from services.all.app import app as whole
from services.auth.endpoints import admin
from shared.db import Database
from shared.limits import LIMITS
from shared.settings import Settings
from tests.support.accounts import json_error, registered
from tests.support.http import async_client
from tests.support.servers import serving
from tests.support.sse import events
from tests.support.updates import publish
from tests.support.waiting import wait_until

ADMIN_PREFIXES = ("/admin", "/api/admin/")


def _admin_routes() -> list[tuple[str, str]]:
    """Every route of the whole app under /admin or /api/admin, with each of its methods, read from the app itself:
    an admin route added later is checked with no change here. Path parameters are filled in."""
    routes = [route for route in whole.routes if isinstance(route, Route) and route.path.startswith(ADMIN_PREFIXES)]
    console = {id(route) for route in admin.routes if isinstance(route, Route)}
    assert console <= {id(route) for route in routes}  # the console's, all under them
    return sorted(
        (method, re.sub(r"\{[^}]+\}", "1", route.path))
        for route in routes
        for method in route.methods or ()
        if method != "HEAD"
    )


ADMIN_ROUTES = _admin_routes()
# Paths under /admin that no route serves: what a prober tries next.
UNSERVED = ["/admin/", "/admin/index.html", "/admin/console", "/api/admin", "/api/admin/", "/api/admin/users"]


@pytest.fixture
def site(settings: Settings) -> Iterator[str]:
    """The all-in-one server with `root` as its one admin, and presence reported often."""
    with serving(replace(settings, admin_users=("Root",), presence_interval=0.3)) as url:
        yield url


@pytest.fixture
async def root(site: str) -> AsyncIterator[httpx.AsyncClient]:
    async with registered(site, "root") as http:
        yield http


def test_the_admin_routes_are_read_from_the_app() -> None:
    assert {path for _, path in ADMIN_ROUTES} >= {"/admin", "/api/admin/console", "/api/admin/updates/1"}


@contextlib.asynccontextmanager
async def _visitor(site: str, who: str) -> AsyncIterator[httpx.AsyncClient]:
    """Someone signed out, or a signed-in user who is no admin."""
    async with contextlib.AsyncExitStack() as stack:
        if who == "alice":
            yield await stack.enter_async_context(registered(site, "alice"))
        else:
            yield await stack.enter_async_context(async_client(base_url=site))


# Asked as a page, as JSON, and as JSON from another site's page (which the API refuses with 403 elsewhere).
ASKED = [{"accept": "text/html"}, {"accept": "application/json"},
         {"accept": "application/json", "origin": "https://evil.example"}]  # fmt: skip
# Every method, those no admin route takes included: a 405 would say which ones a path takes.
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


async def _nothing_there(http: httpx.AsyncClient, method: str, path: str) -> None:
    """A page or JSON asked for, a body or none, from this site or another: 404, as for no such path. Never a 405
    naming the methods, nor a redirect to the path without its trailing slash."""
    for headers in ASKED:
        response = await http.request(method, path, json={}, headers=headers)
        assert response.status_code == 404, f"{method} {path}: {response.status_code} {response.text}"
        assert "allow" not in response.headers and "location" not in response.headers
        assert "Operator console" not in response.text


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
@pytest.mark.parametrize("who", ["nobody", "alice"])
async def test_anyone_but_an_admin_finds_nothing_at_an_admin_route(site: str, method: str, path: str, who: str) -> None:
    async with _visitor(site, who) as http:
        await _nothing_there(http, method, path)


@pytest.mark.parametrize("who", ["nobody", "alice"])
async def test_no_method_nor_trailing_slash_tells_anyone_but_an_admin_that_an_admin_path_exists(
    site: str, who: str
) -> None:
    async with _visitor(site, who) as http:
        for path in sorted({path for _, path in ADMIN_ROUTES}):
            for method in METHODS:
                await _nothing_there(http, method, path)
                await _nothing_there(http, method, path + "/")


@pytest.mark.parametrize("who", ["nobody", "alice"])
async def test_anyone_but_an_admin_finds_nothing_under_admin_where_no_route_is(site: str, who: str) -> None:
    async with _visitor(site, who) as http:
        for path in UNSERVED:
            await _nothing_there(http, "GET", path)


async def test_an_admin_is_told_the_methods_a_path_takes_and_sent_to_it_without_the_slash(
    root: httpx.AsyncClient,
) -> None:
    """Behind the gate, routing answers an admin as it answers any path."""
    for method, path in ADMIN_ROUTES:
        response = await root.request("PATCH", path, json={})
        assert (response.status_code, response.headers["allow"]) == (405, "GET, HEAD" if method == "GET" else method)
        redirect = await root.request(method, path + "/", json={})
        assert (redirect.status_code, redirect.headers["location"]) == (307, f"{root.base_url.join(path)}")
    assert (await root.get("/api/admin/no_such_thing")).status_code == 404


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


Action = Callable[[httpx.AsyncClient, dict[str, str]], Awaitable[httpx.Response]]


async def _undone(root: httpx.AsyncClient, act: Action) -> None:
    """The action, sent with the headers of another site's page, changes nothing and is not audited."""
    for foreign in ({"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"}):
        assert json_error(await act(root, foreign))[:2] == (403, "cross_site")
    assert (await _console(root))["audit"] == []


async def test_a_release_from_another_site_or_as_a_form_is_refused(root: httpx.AsyncClient, db: Database) -> None:
    """JSON only with the cookie, and from this site: the API's own CSRF defence."""
    inserted = await db.updates.insert_one({"show": "no_such_show", "text": "stays rejected"})
    await wait_until(lambda: _rejected(root, str(inserted.inserted_id)))
    path = f"/api/admin/rejected/{inserted.inserted_id}/release"
    assert (await root.post(path, data={"x": "1"})).status_code == 415
    await _undone(root, lambda http, headers: http.post(path, json={}, headers=headers))
    assert await _rejected(root, str(inserted.inserted_id)) is not None


async def test_a_retraction_from_another_site_is_refused(root: httpx.AsyncClient, db: Database) -> None:
    update = await publish(root, "flash", "stays")
    await _undone(root, lambda http, headers: http.delete(f"/api/admin/updates/{update['seq']}", headers=headers))
    assert await db.updates.count_documents({"seq": update["seq"]}) == 1


async def test_ending_sessions_from_another_site_is_refused(root: httpx.AsyncClient, site: str) -> None:
    async with registered(site, "alice") as alice:
        await _undone(root, lambda http, headers: http.delete("/api/admin/users/alice/sessions", headers=headers))
        assert (await alice.get("/api/me")).status_code == 200


async def test_the_console_shows_a_publish_limit_refusing_now(settings: Settings) -> None:
    with serving(replace(settings, admin_users=("root",), publishes_per_author=2)) as site:
        async with registered(site, "root") as root:
            assert (await _console(root))["empty_buckets"] == {"login": 0, "registration": 0, "publish": 0}
            for number in range(2):
                await publish(root, "flash", f"update {number}")
            refused = await root.post("/api/updates", json={"show": "flash", "text": "one too many"})
            assert refused.status_code == 429
            assert (await _console(root))["empty_buckets"] == {"login": 0, "registration": 0, "publish": 1}


async def _lagged(http: httpx.AsyncClient) -> dict[str, Any] | None:
    overview = await _console(http)
    return overview if [process["lag"] is not None for process in overview["processes"]] == [True] else None


async def test_the_console_shows_the_change_stream_lag_of_each_stream_process(root: httpx.AsyncClient) -> None:
    async with events(root, "/events/all") as feed:
        await publish(root, "flash", "handled at once")
        await feed.updates(1)
        (process,) = (await wait_until(lambda: _lagged(root)))["processes"]
    assert 0 <= process["lag"] < 5  # seconds from the insert's commit to its handling


async def _refused(http: httpx.AsyncClient, counts: dict[str, int]) -> bool:
    return bool((await _console(http))["refusals"] == {**dict.fromkeys(LIMITS, 0), **counts})


async def test_the_console_sums_the_refusals_of_every_process_of_every_service(settings: Settings) -> None:
    """Auth, ingest and stream as processes of their own, as deployed: each refuses once, under its own limit, and
    the console, in the auth process, shows all three."""
    often = {"PRESENCE_INTERVAL": "0.3"}
    with (
        ServiceProcess(
            "services.auth.app", settings, ADMIN_USERS="root", REGISTRATIONS_PER_ADDRESS="2", **often
        ) as auth,
        ServiceProcess("services.ingest.app", settings, PUBLISHES_PER_AUTHOR="1", **often) as ingest,
        ServiceProcess("services.stream.app", settings, FEEDS_PER_USER="1", **often) as stream,
    ):
        async with registered(auth.url, "root") as root, registered(auth.url, "alice"):
            third = await root.post("/api/auth/register", json={"username": "carol", "password": "a-long-pass"})
            assert third.status_code == 429
            async with async_client(base_url=ingest.url, cookies=root.cookies) as publishing:
                await publish(publishing, "flash", "the one allowed")
                assert (
                    await publishing.post("/api/updates", json={"show": "flash", "text": "more"})
                ).status_code == 429
            async with async_client(base_url=stream.url, cookies=root.cookies) as watching, events(watching):
                assert (await watching.get("/events", headers={"accept": "text/event-stream"})).status_code == 429
                counts = {"registration": 1, "publish": 1, "feeds_per_user": 1}
                assert await wait_until(lambda: _refused(root, counts), timeout=10)
