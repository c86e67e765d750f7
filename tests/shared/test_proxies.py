"""Forwarded headers, believed from TRUSTED_PROXIES only: what the login limits count is the client's address."""

from __future__ import annotations

import dataclasses

import httpx
from starlette.types import Message, Receive, Scope, Send

from shared.proxies import TrustedProxies
from shared.settings import Settings
from tests.support.http import async_client, async_transport
from tests.support.servers import serving

LOGIN = {"username": "nobody", "password": "not-the-password"}


async def statuses(server: str, forwarded_for: list[str]) -> list[int]:
    async with async_client(base_url=server, timeout=30) as http:
        return [
            (await http.post("/api/auth/login", json=LOGIN, headers={"x-forwarded-for": address})).status_code
            for address in forwarded_for
        ]


async def test_with_no_trusted_proxy_a_claimed_address_changes_nothing(settings: Settings) -> None:
    with serving(dataclasses.replace(settings, login_failures_per_address=2, login_window=3600)) as server:
        assert await statuses(server, ["198.51.100.1", "198.51.100.2", "198.51.100.3"]) == [401, 401, 429]


async def test_a_trusted_proxys_forwarded_address_is_the_clients(settings: Settings) -> None:
    trusting = dataclasses.replace(
        settings, login_failures_per_address=2, login_window=3600, trusted_proxies=("127.0.0.0/8",)
    )
    with serving(trusting) as server:
        assert await statuses(server, ["198.51.100.1"] * 3 + ["198.51.100.2"]) == [401, 401, 429, 401]


def through(server: str, address: str) -> httpx.AsyncClient:
    """A client whose connections come from `address`: all of 127/8 is loopback on Linux."""
    return async_client(base_url=server, transport=async_transport(local_address=address), timeout=30)


async def test_only_the_named_proxy_is_believed_not_every_loopback_address(settings: Settings) -> None:
    """uvicorn's own default believes 127.0.0.1: here only 127.0.0.2 is the proxy, so a claim from 127.0.0.1 counts
    against 127.0.0.1, and its scheme is not believed either."""
    trusting = dataclasses.replace(
        settings, login_failures_per_address=2, login_window=3600, trusted_proxies=("127.0.0.2",)
    )
    with serving(trusting) as server:
        async with through(server, "127.0.0.1") as direct, through(server, "127.0.0.2") as proxy:
            claims = [{"x-forwarded-for": f"198.51.100.{n}"} for n in range(3)]
            assert [(await direct.post("/api/auth/login", json=LOGIN, headers=h)).status_code for h in claims] == [
                401, 401, 429,
            ]  # fmt: skip
            assert [(await proxy.post("/api/auth/login", json=LOGIN, headers=h)).status_code for h in claims] == [
                401, 401, 401,
            ]  # fmt: skip
            body = {"username": "pat", "password": "a-long-pass"}
            https = {"x-forwarded-proto": "https"}
            plain = await direct.post("/api/auth/register", json=body, headers=https)
            secure = await proxy.post("/api/auth/register", json={**body, "username": "sam"}, headers=https)
    assert plain.status_code == secure.status_code == 201
    assert plain.headers["set-cookie"].startswith("gossip_session=")
    assert secure.headers["set-cookie"].startswith("__Host-gossip_session=")


async def test_a_server_that_gives_no_lifespan_state_has_its_requests_passed_on_unchanged() -> None:
    """Before the settings are known (a server without lifespan state) nothing forwarded is believed."""
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    async def nothing() -> Message:
        return {"type": "http.disconnect"}

    async def drop(message: Message) -> None:
        return None

    scope: Scope = {"type": "http", "client": ("10.0.0.1", 5000), "headers": [(b"x-forwarded-for", b"203.0.113.9")]}
    await TrustedProxies(app)(scope, nothing, drop)
    assert [passed["client"] for passed in seen] == [("10.0.0.1", 5000)]
