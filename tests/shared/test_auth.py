"""Sessions as shared/auth.py keeps them, over real HTTP: stored by digest only, and never used from another site."""

from __future__ import annotations

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer

from shared.auth import token_digest
from shared.db import Database
from shared.settings import Settings
from tests.support.accounts import api_token, json_error

SESSION = "gossip_session"


async def test_a_copy_of_the_database_holds_no_session_anyone_could_use(
    alice: httpx.AsyncClient, server: str, db: Database, settings: Settings
) -> None:
    cookie = alice.cookies[SESSION]
    session_id = URLSafeTimedSerializer(settings.secret_key, salt="gossip.session").loads(cookie)
    (stored,) = await db.sessions.find().to_list()
    assert stored["_id"] == token_digest(session_id) and session_id not in str(stored)
    # Even with the secret key, a cookie made from what is stored is no session.
    forged = URLSafeTimedSerializer(settings.secret_key, salt="gossip.session").dumps(stored["_id"])
    async with httpx.AsyncClient(base_url=server, cookies={SESSION: forged}) as thief:
        assert (await thief.get("/api/me")).status_code == 401
    assert (await alice.get("/api/me")).status_code == 200


async def test_logging_out_deletes_the_stored_session(alice: httpx.AsyncClient, db: Database) -> None:
    assert (await alice.post("/api/auth/logout", headers={"content-type": "application/json"})).status_code == 204
    assert await db.sessions.count_documents({}) == 0


@pytest.mark.parametrize(
    "headers",
    [{"origin": "https://evil.example"}, {"origin": "null"}, {"sec-fetch-site": "cross-site"},
     {"origin": "https://evil.example", "sec-fetch-site": "same-origin"}],
)  # fmt: skip
async def test_a_change_with_the_session_from_another_site_is_403(
    alice: httpx.AsyncClient, db: Database, headers: dict[str, str]
) -> None:
    """SameSite and the JSON content type stop browsers today; this is the line behind them."""
    response = await alice.post("/api/updates", json={"show": "flash", "text": "forged"}, headers=headers)
    assert json_error(response)[:2] == (403, "cross_site")
    assert json_error(await alice.put("/api/me/follows/flash", headers=headers))[:2] == (403, "cross_site")
    assert await db.updates.count_documents({}) == 0


async def test_the_same_site_a_safe_request_and_a_script_are_not_refused(alice: httpx.AsyncClient, server: str) -> None:
    own = {"origin": server, "sec-fetch-site": "same-origin"}
    assert (await alice.post("/api/updates", json={"show": "flash", "text": "mine"}, headers=own)).status_code == 201
    assert (await alice.get("/api/me", headers={"origin": "https://evil.example"})).status_code == 200
    token = await api_token(alice)
    async with httpx.AsyncClient(base_url=server, headers={"authorization": f"Bearer {token}"}) as script:
        foreign = {"origin": "https://evil.example"}  # no cookie: nothing of the user's rides along
        assert (
            await script.post("/api/updates", json={"show": "flash", "text": "x"}, headers=foreign)
        ).status_code == 201
