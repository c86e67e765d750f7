"""Failed-login throttling per account and per client address, kept in MongoDB so every auth process agrees."""

from __future__ import annotations

import math
from datetime import timedelta

from shared.db import Database, as_datetime, utcnow
from shared.errors import ApiError

WINDOW = timedelta(minutes=1)  # short, so that an attacker cannot lock a real user out for long
LIMITS = {"user": 5, "addr": 20}


def _keys(username_key: str, address: str) -> dict[str, str]:
    return {"user": f"user:{username_key}", "addr": f"addr:{address}"}


async def check(db: Database, username_key: str, address: str) -> None:
    """429 with Retry-After once either key has used up its failures within the window."""
    since = utcnow() - WINDOW
    for kind, key in _keys(username_key, address).items():
        recent = db.login_failures.find({"key": key, "at": {"$gt": since}}).sort("at", 1).limit(LIMITS[kind])
        failures = await recent.to_list()
        if len(failures) >= LIMITS[kind]:
            wait = (as_datetime(failures[0]["at"]) + WINDOW - utcnow()).total_seconds()
            raise ApiError(
                429, detail="Too many failed logins. Wait a moment and try again.",
                headers={"retry-after": str(max(1, math.ceil(wait)))},
            )  # fmt: skip


async def record_failure(db: Database, username_key: str, address: str) -> None:
    now = utcnow()
    await db.login_failures.insert_many(
        [{"key": key, "at": now, "expires_at": now + WINDOW} for key in _keys(username_key, address).values()]
    )


async def forget_failures(db: Database, username_key: str) -> None:
    await db.login_failures.delete_many({"key": _keys(username_key, "")["user"]})
