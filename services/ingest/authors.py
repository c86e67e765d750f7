"""Who is publishing: a script's API token (`Authorization: Bearer`), or else the session cookie, as for the rest of
the API. Only ingest takes tokens, so it alone keeps their lookup and the record of their use."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from services.ingest.remembered import Remembered
from shared.auth import Caller, cookie_caller, token_digest
from shared.batching import by_id
from shared.db import Database, as_datetime, utcnow
from shared.errors import ApiError
from shared.state import AnyRequest, Core

# Seconds a found API token is trusted before it is looked up again: every publish names one, so a script publishing
# in a loop pays one lookup per half second instead of one per publish, and a revoked token is refused within a second.
TOKEN_MAX_AGE = 0.5
USE_NOTED_EVERY = 60.0  # seconds between two records of a token's last use


@contextlib.asynccontextmanager
async def remembering_tokens(core: Core) -> AsyncIterator[dict[str, Any]]:
    """The process's lookup of API tokens, whose finds its concurrent requests share."""
    yield {"tokens": Remembered(by_id(core["db"].tokens), TOKEN_MAX_AGE)}


async def bearer_caller(request: AnyRequest) -> Caller | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    stored = await request.state["tokens"](token_digest(token)) if token else None
    if stored is None:
        raise ApiError(401, detail="The API token is unknown or revoked.")
    if stored.get("expires_at") is not None and as_datetime(stored["expires_at"]) <= utcnow():
        raise ApiError(401, detail="The API token has expired.")
    await _note_use(request.state["db"], stored)
    return Caller(stored["user_id"], stored["username"])


async def _note_use(db: Database, token: dict[str, Any]) -> None:
    """Records when a token was last used, at most once a minute per token and process: a script publishing in a
    loop costs one write a minute, not one per publish. The found token is what this process's requests share for
    TOKEN_MAX_AGE, so it is marked first, and they see the mark at once. Epoch seconds, not a date: `$max` keeps the
    newest across processes, and the embedded server would store a date set so as a string."""
    now = time.time()
    last = token.get("last_used")
    if isinstance(last, int | float) and now - last < USE_NOTED_EVERY:
        return
    token["last_used"] = now
    await db.tokens.update_one({"_id": token["_id"]}, {"$max": {"last_used": now}})


async def require_author(request: AnyRequest) -> Caller:
    """An API token, else the session cookie; decided before the body is read (a refused body is drained after the
    answer: see shared/lingering.py)."""
    caller = await bearer_caller(request) or await cookie_caller(request)
    if caller is None:
        raise ApiError(401, detail="Log in first, or send an API token.")
    return caller
