"""A watch rule's personal notification on a live page, in real headless Chromium against a live server with the
shipped rules: marked "for you" on its recipient's page as it arrives, and when the page is made again."""

from __future__ import annotations

import dataclasses
import re

import pytest
from playwright.async_api import Browser, expect

from shared.db import Database
from shared.settings import RULES, Settings
from tests.support.accounts import user_id
from tests.support.browsers import signed_in, tabs
from tests.support.waiting import wait_until

# The page's next `preferences` event, which the stream sends once it holds the user's new levels, as a promise the
# page keeps until the test awaits it.
HEARD = "() => { window.heard = new Promise((heard) => document.addEventListener('gossip:preferences', heard)); }"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, watch_rules=RULES)


async def test_an_order_arrives_on_its_users_live_page_marked_for_her(
    browser: Browser, server: str, db: Database
) -> None:
    context = await signed_in(browser, server, "nia")
    page = await context.new_page()
    await page.goto(server + "/notifications")
    await expect(page.locator("#status")).to_have_class("status live")
    await db.orders.insert_one({"user": "nia", "item": "a teapot", "status": "shipped"})
    item = page.locator("#feed li").first
    await expect(item).to_contain_text("Your order of a teapot is shipped.")
    await expect(item).to_have_class("new personal")
    await expect(item.locator(".personal")).to_have_text("for you")
    await page.reload()
    await expect(page.locator("#feed li.personal .personal")).to_have_text("for you")
    await context.close()


async def test_her_orders_stay_listed_when_she_sets_them_to_push(browser: Browser, server: str, db: Database) -> None:
    """Her orders' topic is no show she follows: the change of her preferences, heard by her open Notifications
    page, leaves them listed. The Preferences page lists the topic in its own group, with every level a show has,
    and hears the change too."""
    context = await signed_in(browser, server, "nia")
    page = await context.new_page()
    await page.goto(server + "/notifications")
    await expect(page.locator("#status")).to_have_class("status live")
    await db.orders.insert_one({"user": "nia", "item": "a teapot", "status": "shipped"})
    await expect(page.locator("#feed li.personal")).to_have_count(1)
    preferences = await context.new_page()
    await preferences.goto(server + "/preferences")
    topic = preferences.locator("#personal select[name='shows.orders']")
    await expect(preferences.locator("#personal legend")).to_have_text("Personal notifications")
    await expect(topic.locator("option")).to_have_text(["Live", "Push", "Digest", "Muted"])
    assert (await context.request.put("/api/me/preferences", data={"shows": {"orders": "push"}})).ok
    await expect(topic).to_have_value("push")  # the change reached the open pages
    await db.orders.insert_one({"user": "nia", "item": "a cup", "status": "placed"})
    await expect(page.locator("#feed li.personal")).to_have_count(2)
    await context.close()


async def test_her_orders_leave_her_open_notifications_while_muted_and_come_back_at_live(
    browser: Browser, server: str, db: Database
) -> None:
    """Muted, her orders leave her open Notifications page at once and an order placed then never reaches it,
    though her All Notifs tab (whose feed of every show the two tabs share) lists it. Back at live, her next order
    reaches it: the order muted before it, which the page would have had first, is not there."""
    context = await signed_in(browser, server, "nia")
    page, everything = await context.new_page(), await context.new_page()
    await page.goto(server + "/notifications")
    await everything.goto(server + "/notifications/all")
    for each in (page, everything):
        await expect(each.locator("#status")).to_have_class("status live")
    await db.orders.insert_one({"user": "nia", "item": "a teapot", "status": "shipped"})
    await expect(page.locator("#feed li.personal")).to_have_count(1)
    assert (await context.request.put("/api/me/preferences", data={"shows": {"orders": "muted"}})).ok
    await expect(page.locator("#feed li.personal")).to_have_count(0)
    await db.orders.insert_one({"user": "nia", "item": "a cup", "status": "placed"})
    await expect(everything.locator("#feed li.personal").first).to_contain_text("Your order of a cup is placed.")
    await page.evaluate(HEARD)
    assert (await context.request.put("/api/me/preferences", data={"shows": {"orders": "live"}})).ok
    await page.evaluate("() => window.heard.then(() => true)")  # the stream holds her levels: the next order is heard
    await db.orders.insert_one({"user": "nia", "item": "a lamp", "status": "placed"})
    await expect(page.locator("#feed li.personal")).to_have_text([re.compile("Your order of a lamp is placed.")])
    await expect(everything.locator("#feed li.personal")).to_have_count(3)
    await context.close()


async def test_a_personal_update_of_a_topic_that_is_no_slug_never_reaches_her_page_and_titles_show_as_text(
    browser: Browser, server: str, db: Database
) -> None:
    """Another program wrote a personal update whose topic is markup: the stream rejects it, so no page of hers lists
    it, live or made again. A real topic's title with markup in it shows as the text it is."""
    context = await signed_in(browser, server, "nia")
    page = await context.new_page()
    await page.goto(server + "/notifications/all")
    await expect(page.locator("#status")).to_have_class("status live")
    nia, markup = await user_id(db, "nia"), "<img src=x onerror=\"document.title='pwned'\"><b>bold</b>"
    await db.updates.insert_one({"show": markup, "text": "hostile", "author": "dba", "recipient": nia})
    await db.updates.insert_one({"show": "orders", "title": markup, "text": "Your cup", "author": "dba",
                                 "recipient": nia})  # fmt: skip
    for _ in range(2):  # live, then as the page is made
        item = page.locator("#feed li.personal")
        await expect(item).to_have_count(1)
        await expect(item.locator("strong.show")).to_have_text(markup)
        await expect(item).to_contain_text("Your cup")
        assert await page.locator("#feed img, #feed b").count() == 0 and await page.title() != "pwned"
        await page.reload()
        await expect(page.locator("#status")).to_have_class("status live")
    await context.close()


async def test_her_muted_orders_are_listed_on_all_notifs_as_read_ones(
    browser: Browser, server: str, db: Database
) -> None:
    """A muted topic's notifications count as unread nowhere: All Notifs lists them neither unread when the page is
    made nor new as they arrive."""
    context = await signed_in(browser, server, "nia")

    async def told(count: int) -> bool:
        return await db.updates.count_documents({"author": "orders"}) == count

    await db.orders.insert_one({"user": "nia", "item": "a teapot", "status": "shipped"})
    await wait_until(lambda: told(1))
    assert (await context.request.put("/api/me/preferences", data={"shows": {"orders": "muted"}})).ok
    await db.orders.insert_one({"user": "nia", "item": "a cup", "status": "placed"})
    await wait_until(lambda: told(2))
    (everything,) = await tabs(context, "/notifications/all")
    await expect(everything.locator("#feed li.personal")).to_have_count(2)
    await expect(everything.locator("#feed li.unread")).to_have_count(0)
    await db.orders.insert_one({"user": "nia", "item": "a lamp", "status": "placed"})
    await expect(everything.locator("#feed li.personal").first).to_contain_text("Your order of a lamp is placed.")
    await expect(everything.locator("#feed li.personal").first).to_have_class("personal")
    await context.close()
