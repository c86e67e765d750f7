"""What the auth service answers whatever the endpoint: which endpoints take API tokens, health and readiness."""

from __future__ import annotations

import httpx

from tests.support.accounts import api_token
from tests.support.http import async_client


async def test_only_endpoints_that_take_api_tokens_mention_them(alice: httpx.AsyncClient, server: str) -> None:
    token = await api_token(alice)
    async with async_client(base_url=server, headers={"authorization": f"Bearer {token}"}) as script:
        for path in ("/api/me", "/api/me/tokens", "/events"):
            response = await script.get(path)
            assert response.status_code == 401 and "needs a logged-in session" in response.json()["detail"], path
        assert (await script.get("/api/updates")).status_code == 200
    async with async_client(base_url=server) as stranger:
        assert (await stranger.get("/api/updates")).json()["detail"] == "Log in first, or send an API token."


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
