"""Natural batching: concurrent calls share one database round trip instead of queueing for one each.

The embedded server's cost is per operation, nearly whatever its size, and MongoDB too pays per round trip. So when
a thousand browsers reconnect at once, or eight scripts publish at once, the calls that arrive while one round trip
is in flight wait for the next, and all go in it. Nothing waits on a timer: an idle process sends a lone call at
once, and nothing is cached: every call is answered by a read or write started after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from pymongo.asynchronous.collection import AsyncCollection

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """`run` gets the batch and answers item by item, in order; an Exception in an answer is raised to that
    caller alone (one duplicate key in a batch of inserts fails one publish, not eight)."""

    def __init__(self, run: Callable[[list[T]], Awaitable[Sequence[R | Exception]]], max_size: int = 500) -> None:
        self._run, self._max_size = run, max_size
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, answer))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return await answer

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self._max_size], self._waiting[self._max_size :]
                try:
                    answers = await self._run([item for item, _ in batch])
                except Exception as error:  # the round trip failed: every caller in it hears why
                    answers = [error] * len(batch)
                for (_, future), answer in zip(batch, answers, strict=True):
                    if future.done():  # the caller has gone (a browser that hung up)
                        continue
                    if isinstance(answer, Exception):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
        finally:
            self._flusher = None


Lookup = Batcher[Any, dict[str, Any] | None]


def by_id(collection: AsyncCollection[dict[str, Any]], projection: dict[str, int] | None = None) -> Lookup:
    """`await lookup(_id)` is `find_one({"_id": _id})`, with concurrent lookups sent as one `$in` query."""

    async def find(ids: list[Any]) -> list[dict[str, Any] | None]:
        found = {doc["_id"]: doc async for doc in collection.find({"_id": {"$in": list(set(ids))}}, projection)}
        return [found.get(_id) for _id in ids]

    return Batcher(find)
