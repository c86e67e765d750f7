"""The operator console and the Shows page's live count in real headless Chromium: an admin sees a rejected document,
releases it once it is fixed in MongoDB, and it reaches an open feed; the Shows page's "N watching" follows feeds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from playwright.async_api import Browser, expect

from shared.db import Database
from shared.settings import Settings
from tests.support.accounts import registered
from tests.support.browsers import signed_in
from tests.support.servers import serving
from tests.support.sse import events


@pytest.fixture
def site(settings: Settings) -> Iterator[str]:
    with serving(replace(settings, admin_users=("ada",), presence_interval=0.3)) as url:
        yield url


async def test_an_admin_sees_a_rejected_document_and_releases_it(browser: Browser, site: str, db: Database) -> None:
    context = await signed_in(browser, site, "ada")
    page = await context.new_page()
    await page.goto("/admin")
    await expect(page.locator("h1")).to_have_text("Operator console")
    async with registered(site, "alice") as alice:
        assert (await alice.put("/api/me/follows/sherlock")).status_code == 204
        async with events(alice, "/events") as feed:
            inserted = await db.updates.insert_one({"show": "sherlock", "text": "Mrs Hudson's news"})
            row = page.locator("#rejected tbody tr", has_text=str(inserted.inserted_id))
            await expect(row).to_contain_text("author")  # the reason: it has none
            await db.updates.update_one({"_id": inserted.inserted_id}, {"$set": {"author": "ops"}})
            await row.get_by_role("button", name="Release").click()
            await expect(page.locator("#console-said")).to_have_text(f"Released {inserted.inserted_id}.")
            (update,) = await feed.updates(1)
            assert (update["text"], update["author"]) == ("Mrs Hudson's news", "ops")
    await expect(row).to_have_count(0)
    audit = page.locator("#audit tbody tr").first
    for said in ("ada", "release", f"update {inserted.inserted_id}"):
        await expect(audit).to_contain_text(said)
    await context.close()


async def test_the_shows_page_counts_who_is_watching_live(browser: Browser, site: str) -> None:
    context = await signed_in(browser, site, "sam")  # sam follows flash, and his page's own feed carries it
    page = await context.new_page()
    await page.goto("/shows")
    sherlock = page.locator("#shows li[data-show=sherlock] .watching")
    await expect(page.locator("#shows li[data-show=flash] .watching")).to_have_text("1 watching", timeout=10_000)
    async with registered(site, "alice") as alice:
        assert (await alice.put("/api/me/follows/sherlock")).status_code == 204
        async with events(alice, "/events"):
            await expect(sherlock).to_have_text("1 watching", timeout=10_000)
    await expect(sherlock).to_have_text("0 watching", timeout=10_000)
    await context.close()
