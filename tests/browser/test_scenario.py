"""The seed's scenario in real headless Chromium (Debian's), driven by Playwright, against a live server."""

from __future__ import annotations

import logging

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from shared.db import Database
from shared.settings import Settings
from tests.support.accounts import PASSWORD, registered
from tests.support.servers import gossip_server
from tests.support.updates import publish as publish_api  # this module's `publish` uses the page

XSS = "<img src=x onerror=alert(1)>"


async def signed_up(browser: Browser, server: str, username: str) -> tuple[BrowserContext, Page]:
    """A browser of its own, registered through the page."""
    context = await browser.new_context(base_url=server)
    page = await context.new_page()
    await page.goto("/register")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("form.stack button[type=submit]")
    return context, page


async def publish(page: Page, show_title: str, text: str) -> None:
    await page.goto("/publish")
    form = page.locator("form#publish")
    await form.locator("select[name=show]").select_option(label=show_title)
    await form.locator("textarea[name=text]").fill(text)
    await form.locator("button[type=submit]").click()
    await expect(page.locator(".flash")).to_contain_text("Published")


async def test_seed_scenario(browser: Browser, server: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gossip.access")
    context, page = await signed_up(browser, server, "akul")
    dialogs: list[str] = []
    context.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await page.goto("/shows")
    await page.locator("li[data-show=flash] button", has_text="Follow").click()
    await expect(page.locator("li[data-show=flash] button")).to_have_text("Unfollow")

    notifications = await context.new_page()
    await notifications.goto("/notifications")
    everything = await context.new_page()
    await everything.goto("/notifications/all")
    for tab in (notifications, everything):
        await expect(tab.locator("#status")).to_have_text("live")

    await publish(page, "The Flash", "Barry is back")
    for tab in (notifications, everything):
        await expect(tab.locator("#feed li").first).to_contain_text("Barry is back")

    await publish(page, "Game of Thrones", "Winter came")
    await expect(everything.locator("#feed li").first).to_contain_text("Winter came")
    await publish(page, "The Flash", XSS)
    await expect(notifications.locator("#feed li").first.locator(".text")).to_have_text(XSS)
    await expect(everything.locator("#feed li").first.locator(".text")).to_have_text(XSS)
    assert "Winter came" not in await notifications.locator("#feed").inner_text()
    assert await notifications.locator("#feed img").count() == 0 and await everything.locator("#feed img").count() == 0

    mine = page.locator("#mine li")  # the publish page's own updates, newest first: the XSS, Winter, Barry
    await mine.nth(2).locator("textarea").fill("Barry is back, edited")
    await mine.nth(2).locator("button[value=edit]").click()
    await expect(page.locator(".flash")).to_contain_text("is edited")
    for tab in (notifications, everything):
        await expect(tab.locator("#feed li").last.locator(".text")).to_have_text("Barry is back, edited")
        await expect(tab.locator("#feed li").last.locator(".edited")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())  # the page asks first: a retraction cannot be undone
    await mine.nth(1).locator("button[value=retract]").click()
    await expect(page.locator(".flash")).to_contain_text("is retracted")
    await expect(everything.locator("#feed li", has_text="Winter came")).to_have_count(0)

    await page.reload()
    await page.click("#logout")
    await expect(page).to_have_url(f"{server}/login")
    await expect(notifications.locator("#status")).to_have_text("signed out", timeout=10_000)
    assert dialogs == ["Retract update #2? It disappears from every feed and page."]  # the one asked, and no alert
    paths = {record.fields["path"] for record in caplog.records if record.name == "gossip.access"}
    assert "/favicon.ico" not in paths  # asked for by every page, its 404 an error in the console
    await context.close()


async def test_offline_user_sees_what_was_missed_with_an_unread_count(browser: Browser, server: str) -> None:
    context, page = await signed_up(browser, server, "olga")
    await page.request.put("/api/me/follows/sherlock")
    async with registered(server, "pat") as pat:  # one's own updates are never unread
        for text in ("first while away", "second while away"):
            await publish_api(pat, "sherlock", text)
    await page.goto("/shows")
    await expect(page.locator("#unread-count")).to_have_text("2")
    async with page.expect_response("**/api/me/read") as marked:
        await page.goto("/notifications")
    assert (await marked.value).status == 204
    await expect(page.locator("#unread-count")).to_have_count(0)  # the page has marked them read
    await expect(page.locator("#feed li.unread")).to_have_count(2)
    await expect(page.locator("#feed li").first).to_contain_text("second while away")
    await page.goto("/")  # opening the page marked them read
    await expect(page.locator("#unread")).to_have_text("0")
    await context.close()


async def test_an_edit_or_a_retraction_made_in_the_database_changes_an_open_page(
    browser: Browser, settings: Settings, db: Database
) -> None:
    live = gossip_server(settings)
    context, page = await signed_up(browser, live.url, "eda")
    await page.request.put("/api/me/follows/flash")
    async with registered(live.url, "pat") as pat:
        texts = ("as published", "to be retracted", "retracted while away")
        edited, retracted, away = [await publish_api(pat, "flash", text) for text in texts]
    await page.goto("/notifications")
    await expect(page.locator("#status")).to_have_text("live")
    item = page.locator(f"#feed li[data-seq='{edited['seq']}']")

    await db.updates.update_one({"seq": edited["seq"]}, {"$set": {"text": "edited in mongosh"}})
    await expect(item.locator(".text")).to_have_text("edited in mongosh")
    await expect(item.locator(".edited")).to_have_text("edited")
    await db.updates.delete_one({"seq": retracted["seq"]})
    await expect(page.locator(f"#feed li[data-seq='{retracted['seq']}']")).to_have_count(0)

    live.stop()  # the feed drops: an edit made now is not sent when it comes back
    await expect(page.locator("#status")).to_have_text("reconnecting…")
    await db.updates.update_one({"seq": edited["seq"]}, {"$set": {"text": "edited while away"}})
    await db.updates.delete_one({"seq": away["seq"]})
    live = gossip_server(settings, live.port)
    try:
        await expect(page.locator("#status")).to_have_text("live", timeout=10_000)
        await expect(item.locator(".text")).to_have_text("edited while away")  # read back from history
        await expect(page.locator("#feed li")).to_have_count(1)
    finally:
        await context.close()
        live.stop()
