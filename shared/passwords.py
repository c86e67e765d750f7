"""Argon2id password hashing (argon2-cffi defaults), off the event loop: a hash takes tens of milliseconds."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.concurrency import run_in_threadpool

_hasher = PasswordHasher()
# Verified when the username is unknown, so that a wrong name costs as long as a wrong password.
_DUMMY = _hasher.hash("gossip-dummy-password")


async def hash_password(password: str) -> str:
    return await run_in_threadpool(_hasher.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(stored or _DUMMY, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    return await run_in_threadpool(verify)


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
