"""A lookup remembered for a moment: against the real server, counting the lookups that reach it."""

from __future__ import annotations

from typing import Any

from services.ingest.remembered import Remembered
from shared.batching import Lookup, by_id
from shared.db import Database


class Counted:
    """`by_id` on the tokens collection, counting the keys it was asked for."""

    def __init__(self, db: Database) -> None:
        self.asked: list[Any] = []
        self._lookup: Lookup = by_id(db.tokens)

    async def __call__(self, key: Any) -> dict[str, Any] | None:
        self.asked.append(key)
        return await self._lookup(key)


async def test_a_find_is_remembered_for_its_max_age(db: Database) -> None:
    await db.tokens.insert_one({"_id": "t1", "user_id": "u1"})
    counted = Counted(db)
    remembered = Remembered(counted, max_age=60)
    assert [await remembered("t1") for _ in range(3)] == [{"_id": "t1", "user_id": "u1"}] * 3
    assert counted.asked == ["t1"]


async def test_past_its_max_age_a_deleted_key_is_not_found(db: Database) -> None:
    await db.tokens.insert_one({"_id": "t1", "user_id": "u1"})
    counted = Counted(db)
    remembered = Remembered(counted, max_age=0)
    assert await remembered("t1") is not None
    await db.tokens.delete_one({"_id": "t1"})
    assert await remembered("t1") is None
    assert counted.asked == ["t1", "t1"]


async def test_a_miss_is_not_remembered(db: Database) -> None:
    counted = Counted(db)
    remembered = Remembered(counted, max_age=60)
    assert await remembered("t2") is None
    await db.tokens.insert_one({"_id": "t2", "user_id": "u2"})
    assert await remembered("t2") == {"_id": "t2", "user_id": "u2"}
