"""Push devices over the API: a browser's subscription added once, listed by name and date, removed by its owner;
at most ten; and a subscription that is not one (an endpoint that is not https, a key that is not a P-256 point or
an auth secret of the wrong length) refused with 422 naming the field."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from services.auth.devices import DEVICES_PER_USER, device_name
from shared.settings import Settings
from tests.support.accounts import json_error, registered
from tests.support.push_receiver import Subscription, b64url
from tests.support.servers import serving

CHROME_LINUX = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    with serving(replace(settings, push_allow_http_loopback=True)) as url:
        yield url


@pytest.fixture
async def bob(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with registered(server, "bob") as http:
        yield http


def subscription(endpoint: str = "https://push.example.net/send/abc") -> dict[str, Any]:
    return Subscription(endpoint).to_json()


async def test_a_device_is_added_once_listed_and_removed(alice: httpx.AsyncClient) -> None:
    added = await alice.post("/api/me/push", json=subscription(), headers={"user-agent": CHROME_LINUX})
    assert added.status_code == 201, added.text
    again = await alice.post("/api/me/push", json=subscription())
    assert (again.status_code, again.json()) == (200, added.json())
    listed = (await alice.get("/api/me/push")).json()
    assert [(d["id"], d["name"]) for d in listed] == [(added.json()["id"], "Chrome on Linux")]
    assert listed[0]["added_at"].endswith("Z")
    assert (await alice.delete(f"/api/me/push/{added.json()['id']}")).status_code == 204
    assert (await alice.get("/api/me/push")).json() == []
    assert (await alice.delete(f"/api/me/push/{added.json()['id']}")).status_code == 404


async def test_a_given_name_is_kept(alice: httpx.AsyncClient) -> None:
    assert (await alice.post("/api/me/push", json={**subscription(), "name": "Work laptop"})).status_code == 201
    assert [d["name"] for d in (await alice.get("/api/me/push")).json()] == ["Work laptop"]


async def test_another_users_device_cannot_be_removed(alice: httpx.AsyncClient, bob: httpx.AsyncClient) -> None:
    device = (await alice.post("/api/me/push", json=subscription())).json()["id"]
    response = await bob.delete(f"/api/me/push/{device}")
    assert json_error(response)[:2] == (404, "not_found")
    assert len((await alice.get("/api/me/push")).json()) == 1


async def test_a_browser_registered_by_another_user_becomes_theirs(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    """A shared browser: the next person to turn push on gets its notifications, the one before no longer does."""
    shared = subscription()
    assert (await alice.post("/api/me/push", json=shared)).status_code == 201
    assert (await bob.post("/api/me/push", json=shared)).status_code == 201
    assert (await alice.get("/api/me/push")).json() == []
    assert len((await bob.get("/api/me/push")).json()) == 1


async def test_at_most_ten_devices(alice: httpx.AsyncClient) -> None:
    for number in range(DEVICES_PER_USER):
        response = await alice.post("/api/me/push", json=subscription(f"https://push.example.net/{number}"))
        assert response.status_code == 201, response.text
    response = await alice.post("/api/me/push", json=subscription("https://push.example.net/one-more"))
    assert json_error(response)[:2] == (409, "too_many_devices")
    assert len((await alice.get("/api/me/push")).json()) == DEVICES_PER_USER


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"endpoint": "http://push.example.net/send"}, "endpoint"),
        ({"endpoint": "ftp://push.example.net/send"}, "endpoint"),
        ({"endpoint": "https:///no-host"}, "endpoint"),
        ({"endpoint": 42}, "endpoint"),
        ({"keys": {"p256dh": "not base64!", "auth": b64url(bytes(16))}}, "keys.p256dh"),
        ({"keys": {"p256dh": b64url(b"\x04" + bytes(64)), "auth": b64url(bytes(16))}}, "keys.p256dh"),  # off the curve
        ({"keys": {"p256dh": b64url(b"\x04" + bytes(31)), "auth": b64url(bytes(16))}}, "keys.p256dh"),
        ({"keys": "p256dh"}, "keys"),
        ({"expirationTime": "soon"}, "expirationTime"),
        ({"name": "   "}, "name"),
    ],
)
async def test_what_is_not_a_subscription_is_422_naming_the_field(
    alice: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    response = await alice.post("/api/me/push", json={**subscription(), **change})
    status, error, fields = json_error(response)
    assert (status, error, list(fields)) == (422, "invalid", [field])
    assert (await alice.get("/api/me/push")).json() == []


async def test_an_auth_secret_of_the_wrong_length_is_422(alice: httpx.AsyncClient) -> None:
    good = subscription()
    good["keys"]["auth"] = base64.urlsafe_b64encode(bytes(15)).decode()
    status, _, fields = json_error(await alice.post("/api/me/push", json=good))
    assert (status, list(fields)) == (422, ["keys.auth"])


async def test_loopback_http_is_taken_only_when_allowed(settings: Settings, alice: httpx.AsyncClient) -> None:
    assert (await alice.post("/api/me/push", json=subscription("http://127.0.0.1:9/push/x"))).status_code == 201
    with serving(settings) as strict:
        async with registered(strict, "carol") as carol:
            response = await carol.post("/api/me/push", json=subscription("http://127.0.0.1:9/push/x"))
            assert json_error(response)[:2] == (422, "invalid")


async def test_the_push_key_is_the_servers_public_key(client: httpx.AsyncClient) -> None:
    key = (await client.get("/api/push/key")).json()["key"]
    point = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    assert (len(point), point[0]) == (65, 4)


async def test_devices_need_a_session(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/me/push")).status_code == 401
    assert (await client.post("/api/me/push", json=subscription())).status_code == 401


@pytest.mark.parametrize(
    ("agent", "name"),
    [
        (CHROME_LINUX, "Chrome on Linux"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on Windows"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Version/18.1 Mobile/15E148 "
            "Safari/604.1",
            "Safari on iOS",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            "Edge on Windows",
        ),
        ("curl/8.5.0", "A browser"),
    ],
)
def test_a_device_is_named_for_its_browser_and_system(agent: str, name: str) -> None:
    assert device_name(agent) == name
