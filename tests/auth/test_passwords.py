"""Argon2id on its own bounded pool: at most HASH_CONCURRENCY at once, a bounded wait for a turn, then 503."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import pytest

from services.auth.passwords import Passwords
from shared.errors import ApiError
from shared.settings import Settings
from tests.support.accounts import PASSWORD, json_error
from tests.support.http import async_client

MEMORY = Settings("").hash_memory  # the service's own cost


async def test_a_caller_waits_a_bounded_time_for_a_turn_then_hears_503() -> None:
    passwords = Passwords(concurrency=1, wait=0.05, memory=MEMORY)
    try:
        async with passwords.turn():
            with pytest.raises(ApiError) as refused:
                async with passwords.turn():
                    pass
        assert (refused.value.status, refused.value.headers["retry-after"]) == (503, "1")
        async with passwords.turn():  # the turn given back is free again
            assert await passwords.verify(await passwords.hash(PASSWORD), PASSWORD)
    finally:
        passwords.close()


async def test_a_browser_the_account_knows_has_a_turn_no_stranger_can_take() -> None:
    passwords = Passwords(concurrency=1, wait=0.05, memory=MEMORY)
    try:
        async with passwords.turn(), passwords.turn(known=True):  # a stranger's guess holds every other turn
            assert await passwords.verify(await passwords.hash(PASSWORD), PASSWORD)
            with pytest.raises(ApiError):  # the kept turn is one
                async with passwords.turn(known=True):
                    pass
    finally:
        passwords.close()


async def test_hashes_run_on_a_pool_of_their_own_never_more_at_once_than_its_size() -> None:
    """Not on the thread pool the rest of the app shares, where 100 logins at once ran 40 hashes (2.5 GiB)."""
    passwords = Passwords(concurrency=2, wait=30, memory=MEMORY)
    try:
        hashed = await passwords.hash(PASSWORD)
        await asyncio.gather(*(passwords.verify(hashed, "wrong password") for _ in range(8)))
        hashers = [thread for thread in threading.enumerate() if thread.name.startswith("argon2")]
    finally:
        passwords.close()
    assert 1 <= len(hashers) <= 3  # and one for the turn kept for known browsers


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Hashes of the default cost: logins must take long enough to hold their turns."""
    return dataclasses.replace(settings, hash_concurrency=1, hash_wait=0.01, hash_memory=MEMORY)


async def test_logins_beyond_what_the_server_can_hash_are_refused_with_503(server: str) -> None:
    async with async_client(base_url=server, timeout=30) as http:
        bodies = [{"username": f"nobody{n}", "password": "not-the-password"} for n in range(10)]
        responses = await asyncio.gather(*(http.post("/api/auth/login", json=body) for body in bodies))
    statuses = [response.status_code for response in responses]
    assert set(statuses) == {401, 503} and statuses.count(503) >= 5
    busy = next(response for response in responses if response.status_code == 503)
    assert json_error(busy)[:2] == (503, "unavailable") and busy.headers["retry-after"] == "1"


async def test_a_hash_made_at_another_memory_cost_is_due_to_be_redone() -> None:
    cheap, usual = Passwords(concurrency=1, wait=30, memory=1), Passwords(concurrency=1, wait=30, memory=MEMORY)
    try:
        stored = await cheap.hash(PASSWORD)
        assert (cheap.needs_rehash(stored), usual.needs_rehash(stored)) == (False, True)
        assert await usual.verify(stored, PASSWORD)  # still checked, at the cost it was made with
    finally:
        cheap.close()
        usual.close()
