"""Argon2id password hashing (argon2-cffi defaults, its memory as HASH_MEMORY says) on a bounded pool of its own, off
the event loop.

A hash takes 64 MiB (by default) and about a tenth of a second of two cores. On the thread pool the rest of the app
shares, the hashes at once, and their memory, would grow with the logins at once. Here at most `concurrency` run at
once, each caller waits at most `wait` seconds for its turn, and past that hears 503: memory stays bounded whatever
arrives.

One more turn is kept for a browser signing in to the account it signed in to before (its device cookie,
services/auth/browsers.py): a stranger guessing someone's password, who cannot show that cookie, can fill every
other turn and still not keep the owner out by keeping the server busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from prometheus_client import Counter

from shared.limits import refusal
from shared.state import Core

T = TypeVar("T")
NICENESS = 10  # Linux niceness of the hashing threads: they get about a tenth of a busy core's share
BUSY = "The server is busy checking other passwords. Try again in a moment."
HASHES = Counter("gossip_password_hashes", "Argon2id hashes and verifications run")


_dummies: dict[int, Future[str]] = {}  # by memory cost


def _dummy_hash(pool: ThreadPoolExecutor, hasher: PasswordHasher) -> Future[str]:
    """The hash an unknown username's verify checks against, of the same cost as the real ones, made once per process
    and cost (on the first pool, as its first task, so that a verify queued after it never waits on it from the only
    thread): an app created again in the same process, as each test does, reuses it instead of paying for another."""
    dummy = _dummies.get(hasher.memory_cost)
    if dummy is None or dummy.cancelled():  # cancelled: its pool was shut down before it started
        dummy = _dummies[hasher.memory_cost] = pool.submit(hasher.hash, "gossip-dummy-password")
    return dummy


def _verify(hasher: PasswordHasher, stored: str | None, password: str, dummy: Future[str]) -> bool:
    """`dummy` is verified when the username is unknown, so that a wrong name costs as long as a wrong password."""
    try:
        return hasher.verify(stored or dummy.result(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def _yield_to_serving() -> None:
    """A hash runs at a lower CPU priority than the threads that serve requests (argon2's own threads inherit it):
    two hashes at once keep eight threads busy, and the event loop must still answer /readyz at once."""
    with contextlib.suppress(OSError, AttributeError):  # not every system lets a thread lower its own priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)


class Passwords:
    """Callers take a turn (`async with passwords.turn():`) before the checks that lead to a hash, so that a flood
    is refused before it costs even a database round trip; the pool's size bounds the memory on its own."""

    def __init__(self, concurrency: int, wait: float, memory: int) -> None:
        """`memory`: MiB each hash takes."""
        self._hasher = PasswordHasher(memory_cost=memory * 1024)
        self._pool = ThreadPoolExecutor(concurrency + 1, thread_name_prefix="argon2", initializer=_yield_to_serving)
        self._dummy = _dummy_hash(self._pool, self._hasher)
        self._turns = asyncio.Semaphore(concurrency)
        self._known_turn = asyncio.Semaphore(1)
        self._wait = wait

    @contextlib.asynccontextmanager
    async def turn(self, known: bool = False) -> AsyncIterator[None]:
        """`known`: the caller is a browser the account knows, and waits for the turn kept for such browsers."""
        turns = self._known_turn if known else self._turns
        try:
            async with asyncio.timeout(self._wait):
                await turns.acquire()
        except TimeoutError:
            raise refusal("hashing", 503, BUSY, 1) from None
        try:
            yield
        finally:
            turns.release()

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        return await self._run(_verify, self._hasher, stored, password, self._dummy)

    def needs_rehash(self, stored: str) -> bool:
        """Whether a stored hash was made with other parameters than this process's (HASH_MEMORY changed)."""
        return self._hasher.check_needs_rehash(stored)

    async def _run(self, work: Callable[..., T], *args: object) -> T:
        """A caller that goes away (a client hanging up) does not free the thread: the hash runs to its end."""
        HASHES.inc()
        return await asyncio.wrap_future(self._pool.submit(work, *args))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@contextlib.asynccontextmanager
async def hashing(core: Core) -> AsyncIterator[dict[str, Passwords]]:
    """The auth process's hashing pool, for as long as it runs: no other service hashes a password."""
    settings = core["settings"]
    passwords = Passwords(settings.hash_concurrency, settings.hash_wait, settings.hash_memory)
    try:
        yield {"passwords": passwords}
    finally:
        passwords.close()
