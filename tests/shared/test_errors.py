"""The one JSON error shape for what Starlette refuses itself: an unknown path, a method a path does not take."""

from __future__ import annotations

import httpx
import pytest

from tests.support.accounts import json_error


@pytest.mark.parametrize(
    ("path", "allowed"),
    [("/api/me/tokens", "GET, HEAD, POST"), ("/api/me/follows/flash", "DELETE, PUT"), ("/api/me", "DELETE, GET, HEAD")],
)
async def test_a_method_a_path_does_not_take_is_405_naming_every_method_it_does(
    client: httpx.AsyncClient, path: str, allowed: str
) -> None:
    """A path served by one route per method allows all of their methods, not those of the first route only."""
    response = await client.request("PATCH", path)
    assert json_error(response) == (405, "method_not_allowed", {})
    assert response.headers["allow"] == allowed


async def test_an_unknown_path_is_404(client: httpx.AsyncClient) -> None:
    assert json_error(await client.get("/api/no/such/thing")) == (404, "not_found", {})
