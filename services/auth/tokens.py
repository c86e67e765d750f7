"""API tokens for publishing from scripts: created, listed and revoked by their owner, with no HTTP in it.

Only the SHA-256 of a token is stored; the token itself is shown once, when it is created. A user holds at most
`TOKENS_PER_USER`: each token takes a numbered slot, unique per user, so that concurrent creations cannot exceed it.
A token may be given an expiry, after which ingest refuses it (services/ingest/authors.py); the listing says when
each was last used.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from shared.auth import Caller, token_digest
from shared.db import Database, as_datetime, iso_utc, utcnow
from shared.errors import ApiError
from shared.updates import NOT_BLANK

TOKEN_PREFIX = "gsp_"  # noqa: S105 (a prefix that makes a leaked token easy to recognise, not a secret)
NAME_MAX = 64
SEGMENT = re.compile(r"[^\x00-\x1f\x7f-\x9f/]*")  # no control characters, no '/'; the API document says the same
DOTS = (".", "..")
RULE = f"1 to {NAME_MAX} characters, not all blank, no control characters or '/', and not '.' or '..'"
DAYS_MAX = 3650  # the furthest expiry a token may be given: ten years
DAYS_RULE = f"a whole number of days from 1 to {DAYS_MAX}"
AT_RULE = f"a date and time with its time zone, in the future and within {DAYS_MAX} days"


def _check_name(name: str) -> None:
    """A name ends up in the revoke URL's path, so it must be one visible path segment: not '.' or '..' either,
    which browsers and HTTP clients resolve away before sending."""
    if not NOT_BLANK.search(name):
        raise ApiError(422, detail="Please give the token a name.", fields={"name": RULE})
    if not (len(name) <= NAME_MAX and SEGMENT.fullmatch(name) and name not in DOTS):
        raise ApiError(422, detail=f"Invalid name: {RULE}", fields={"name": RULE})


def expiry(days: object, at: object, now: datetime) -> datetime | None:
    """When a new token stops working: `days` after `now` (`expires_in_days`), or `at` (`expires_at`, ISO 8601 with
    its zone); neither, never. Both at once is refused rather than one chosen."""
    if days is not None and at is not None:
        both = {"expires_in_days": "not with expires_at", "expires_at": "not with expires_in_days"}
        raise ApiError(422, detail="Give expires_in_days or expires_at, not both.", fields=both)
    if days is not None:
        if isinstance(days, float) and days.is_integer():
            days = int(days)
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= DAYS_MAX:
            raise ApiError(422, detail=f"expires_in_days must be {DAYS_RULE}.", fields={"expires_in_days": DAYS_RULE})
        return now + timedelta(days=days)
    if at is None:
        return None
    try:
        moment = datetime.fromisoformat(at) if isinstance(at, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or not now < moment <= now + timedelta(days=DAYS_MAX):
        raise ApiError(422, detail=f"expires_at must be {AT_RULE}.", fields={"expires_at": AT_RULE})
    return moment.astimezone(UTC)


async def create(
    db: Database, owner: Caller, name: str, most: int, expires_at: datetime | None = None
) -> dict[str, str | None]:
    _check_name(name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    stored = {"_id": token_digest(token), "user_id": owner.user_id, "username": owner.username, "name": name,
              "created_at": utcnow(), "expires_at": expires_at}  # fmt: skip
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
        return {"name": name, "token": token, "expires_at": _iso(expires_at)}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else iso_utc(moment)


async def listing(db: Database, user_id: str) -> list[dict[str, Any]]:
    """Names and dates only: neither the token nor its hash ever leaves the database again. `last_used_at` is
    noted at most once a minute (services/ingest/authors.py), so it may be that much behind."""
    fields = {"_id": 0, "name": 1, "created_at": 1, "expires_at": 1, "last_used": 1}
    stored = db.tokens.find({"user_id": user_id}, fields).sort("created_at", 1)
    return [
        {
            "name": token["name"],
            "created_at": iso_utc(token["created_at"]),
            "expires_at": _iso(as_datetime(token["expires_at"]) if token.get("expires_at") else None),
            "last_used_at": _iso(datetime.fromtimestamp(token["last_used"], UTC) if "last_used" in token else None),
        }
        async for token in stored
    ]


async def revoke(db: Database, user_id: str, name: str) -> None:
    """Ingest trusts a found token for half a second (TOKEN_MAX_AGE, services/ingest/authors.py), so a deleted one
    is refused within a second by every process."""
    result = await db.tokens.delete_one({"user_id": user_id, "name": name})
    if result.deleted_count == 0:
        raise ApiError(404, detail=f"You have no token named {name!r}.", fields={"name": "no such token"})
