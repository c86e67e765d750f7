"""Accounts as the API makes them: a registered user's client, a page's CSRF token, an API token, an error's shape."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx

from shared.db import Database
from tests.support.http import async_client

PASSWORD = "a-long-pass"


@contextlib.asynccontextmanager
async def registered(server: str, username: str) -> AsyncIterator[httpx.AsyncClient]:
    """A new client with its own cookie jar, registered and logged in as `username`."""
    async with async_client(base_url=server, timeout=10) as http:
        response = await http.post("/api/auth/register", json={"username": username, "password": PASSWORD})
        assert response.status_code == 201, response.text
        yield http


async def csrf_of(http: httpx.AsyncClient, path: str) -> str:
    """The CSRF token a page's form carries; getting the page also gives the client its CSRF cookie."""
    page = await http.get(path)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def json_error(response: httpx.Response) -> tuple[int, str, dict[str, Any]]:
    body = response.json()
    return response.status_code, body["error"], body["fields"]


async def api_token(http: httpx.AsyncClient, name: str = "script") -> str:
    """A new API token of the client's user: what a script publishes with, as `Authorization: Bearer <token>`."""
    response = await http.post("/api/me/tokens", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["token"]


async def user_id(db: Database, username: str) -> str:
    """A user's _id, as a personal update's `recipient` names them."""
    user = await db.users.find_one({"username": username}, {"_id": 1})
    assert user is not None, username
    return str(user["_id"])
