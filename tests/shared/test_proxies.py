"""Forwarded headers, believed from TRUSTED_PROXIES only: what the login limits count is the client's address."""

from __future__ import annotations

import dataclasses

import httpx

from shared.settings import Settings
from tests.support.servers import serving

LOGIN = {"username": "nobody", "password": "not-the-password"}


async def statuses(server: str, forwarded_for: list[str]) -> list[int]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
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
