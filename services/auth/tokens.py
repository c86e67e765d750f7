"""API tokens for publishing from scripts: created, listed and revoked by their owner, with no HTTP in it.

Only the SHA-256 of a token is stored; the token itself is shown once, when it is created. A user holds at most
`TOKENS_PER_USER`: each token takes a numbered slot, unique per user, so that concurrent creations cannot exceed it.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from pymongo.errors import DuplicateKeyError

from shared.auth import TOKEN_PREFIX, Caller, token_digest
from shared.db import Database, iso_utc, utcnow
from shared.errors import ApiError
from shared.updates import NOT_BLANK

NAME_MAX = 64
SEGMENT = re.compile(r"[^\x00-\x1f\x7f-\x9f/]*")  # no control characters, no '/'; the API document says the same
DOTS = (".", "..")
RULE = f"1 to {NAME_MAX} characters, not all blank, no control characters or '/', and not '.' or '..'"


def _check_name(name: str) -> None:
    """A name ends up in the revoke URL's path, so it must be one visible path segment: not '.' or '..' either,
    which browsers and HTTP clients resolve away before sending."""
    if not (1 <= len(name) <= NAME_MAX and SEGMENT.fullmatch(name) and NOT_BLANK.search(name) and name not in DOTS):
        raise ApiError(422, detail="Please give the token a name.", fields={"name": RULE})


async def create(db: Database, owner: Caller, name: str, most: int) -> dict[str, str]:
    _check_name(name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    stored = {"_id": token_digest(token), "user_id": owner.user_id, "username": owner.username, "name": name,
              "created_at": utcnow()}  # fmt: skip
    while True:  # a duplicate slot means another creation won it: the next read sees that one
        held = await db.tokens.find({"user_id": owner.user_id}, {"_id": 0, "name": 1, "slot": 1}).to_list()
        if any(other["name"] == name for other in held):
            raise ApiError(409, "taken", "You already have a token with that name.", {"name": "already used"})
        if len(held) >= most:
            detail = f"You have {len(held)} tokens, the most one may hold. Revoke one you no longer use first."
            raise ApiError(409, "too_many_tokens", detail, {"name": f"at most {most} tokens"})
        free = sorted(set(range(most)) - {other.get("slot") for other in held})  # never empty: fewer are held
        try:
            await db.tokens.insert_one({**stored, "slot": free[0]})
        except DuplicateKeyError:
            continue
        return {"name": name, "token": token}


async def listing(db: Database, user_id: str) -> list[dict[str, Any]]:
    """Names and dates only: neither the token nor its hash ever leaves the database again."""
    stored = db.tokens.find({"user_id": user_id}, {"_id": 0, "name": 1, "created_at": 1}).sort("created_at", 1)
    return [{"name": token["name"], "created_at": iso_utc(token["created_at"])} async for token in stored]


async def revoke(db: Database, user_id: str, name: str) -> None:
    """A found token is trusted for half a second (shared.app.TOKEN_MAX_AGE), so a deleted one is refused within a
    second by every process."""
    result = await db.tokens.delete_one({"user_id": user_id, "name": name})
    if result.deleted_count == 0:
        raise ApiError(404, detail=f"You have no token named {name!r}.", fields={"name": "no such token"})
