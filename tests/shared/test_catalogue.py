"""The cached catalogue against the real server: an edit shows once the cache is older than its age limit."""

from __future__ import annotations

from shared.catalogue import Catalogue
from shared.db import Database, prepare


async def test_titles_come_in_title_order(db: Database) -> None:
    await prepare(db)
    titles = await Catalogue(db).titles()
    assert list(titles.values()) == sorted(titles.values())
    assert titles["game_of_thrones"] == "Game of Thrones"


async def test_an_edit_is_seen_once_the_cache_is_older_than_its_age(db: Database) -> None:
    await prepare(db)
    fresh, cached = Catalogue(db, max_age=0), Catalogue(db, max_age=3600)
    assert await fresh.title("dark") is None and await cached.title("dark") is None
    await db.shows.insert_one({"_id": "dark", "title": "Dark"})
    assert await fresh.title("dark") == "Dark"
    assert await cached.title("dark") is None  # within its hour: no read
