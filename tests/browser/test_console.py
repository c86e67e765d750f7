"""The operator console and the Shows page's live count in real headless Chromium: an admin sees a rejected document,
releases it once it is fixed in MongoDB, and it reaches an open feed; the Shows page's "N watching" follows feeds."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
from playwright.async_api import Browser, Page, expect

from shared.db import Database
from shared.limits import LIMITS
from shared.settings import Settings
from tests.support.accounts import registered
from tests.support.browsers import signed_in
from tests.support.servers import serving
from tests.support.sse import events

PHONE = {"width": 375, "height": 740}


@pytest.fixture
def site(settings: Settings) -> Iterator[str]:
    """Presence is reported every second, so a report lasts 3 s: longer than a busy machine's pause between two
    reports, which a report lasting 0.9 s did not always outlive when the page asked."""
    with serving(replace(settings, admin_users=("ada",), presence_interval=1.0)) as url:
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
            await every_panel_filled(page)
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


async def every_panel_filled(page: Page) -> None:
    """Each table from the console's figures, refreshed while the page is open: the one stream process with Alice's
    feed (and ada's page's own) and its lag, feeds per show, ten minutes of publishes, every limit's refusals and
    the buckets refusing now."""
    process = page.locator("#processes tbody tr")
    await expect(process).to_have_count(1)
    await expect(process.locator("td").nth(3)).to_have_text(re.compile(r"^\d+\.\d{3}$"))  # the lag, in seconds
    await expect(page.locator("#show-feeds tbody tr", has_text="sherlock")).to_contain_text("1")
    await expect(page.locator("#publishes tbody tr")).to_have_count(10)
    await expect(page.locator("#refusals tbody tr")).to_have_count(len(LIMITS))
    await expect(page.locator("#empty-buckets tbody tr")).to_have_count(3)


async def test_the_console_fits_a_phone_without_scrolling_sideways(browser: Browser, site: str, db: Database) -> None:
    """Its widest tables filled, a process's id and report time and a rejected document's row whose text is one long
    word: the page is no wider than the phone, so no column is off screen."""
    context = await signed_in(browser, site, "ada", viewport=PHONE)
    page = await context.new_page()
    await db.updates.insert_one({"show": "sherlock", "text": "Hudson" * 40})
    await page.goto("/admin")
    await expect(page.locator("#processes tbody tr")).to_have_count(1)
    await expect(page.locator("#rejected tbody tr")).to_have_count(1)
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
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
