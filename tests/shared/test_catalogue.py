"""The cached catalogue against the real server: an edit shows once the cache is older than its age limit."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from shared.catalogue import Catalogue, is_slug, problem
from shared.db import SHOWS, Database, prepare
from tests.support.accounts import json_error
from tests.support.catalogue import HOSTILE_SHOWS
from tests.support.sse import events
from tests.support.waiting import wait_until


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


PAGES = ["/", "/shows", "/publish", "/preferences", "/notifications", "/notifications/all", "/api/shows",
         "/api/me", "/api/me/preferences", "/api/updates", "/api/updates?show=markup"]  # fmt: skip


def test_the_slug_rule_keeps_every_slug_in_use() -> None:
    """The default catalogue and the longest slug the tests use (tests/auth/test_push.py) are slugs."""
    assert all(is_slug(slug) for slug in [*SHOWS, "the_good_the_bad_and_the_ugly_extended_edition"])
    assert [problem(show) for show in HOSTILE_SHOWS if problem(show) is None] == []


async def test_a_bad_show_document_is_left_out_and_breaks_nothing_for_the_good_shows(
    alice: httpx.AsyncClient, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Each bad document is left out of the catalogue: publishing to a good show works, every page renders, the bad
    show is refused as any unknown show is, and the warning naming it is logged once, not at every read."""
    await db.shows.insert_many([*HOSTILE_SHOWS, {"_id": "markup", "title": "<b>Bold</b> & co"}])

    async def followed(slug: str) -> bool:  # once the server's catalogue, read at most once a second, has the show
        return (await alice.put(f"/api/me/follows/{slug}")).status_code == 204

    await wait_until(lambda: followed("markup"))
    assert await followed("flash")
    async with events(alice) as feed:
        published = await alice.post("/api/updates", json={"show": "markup", "text": "Filming starts"})
        assert published.status_code == 201, published.text
        assert await feed.updates(1) == [published.json()]
    assert published.json()["title"] == "<b>Bold</b> & co"
    for path in PAGES:
        response = await alice.get(path)
        assert response.status_code == 200, (path, response.text[:300])
    shows = await alice.get("/shows")
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; co" in shows.text and "<b>Bold</b>" not in shows.text
    assert {show["slug"] for show in (await alice.get("/api/shows")).json()} == {*SHOWS, "markup"}

    for show in HOSTILE_SHOWS:
        slug = show["_id"] if isinstance(show["_id"], str | int) else str(show["_id"])
        if slug:
            refused = await alice.put(f"/api/me/follows/{quote(str(slug), safe='')}")
            assert (refused.status_code, set(refused.json()["fields"])) == (404, {"slug"}), repr(slug)[:20]
        status, error, fields = json_error(await alice.post("/api/updates", json={"show": slug, "text": "hi"}))
        assert (status, error, set(fields)) == (422, "invalid", {"show"}), repr(slug)[:20]

    await db.shows.insert_one({"_id": "dark", "title": "Dark"})
    await wait_until(lambda: followed("dark"))  # the catalogue was read again, bad documents and all
    warnings = [r.getMessage() for r in caplog.records if r.name == "gossip.catalogue"]
    assert len(warnings) == len(HOSTILE_SHOWS), warnings
    assert any("'no_title'" in line and "title:" in line for line in warnings)
    assert any("'zzzz" in line and "_id:" in line and len(line) < 200 for line in warnings)
