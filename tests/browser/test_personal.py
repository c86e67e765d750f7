"""A watch rule's personal notification on a live page, in real headless Chromium against a live server with the
shipped rules: marked "for you" on its recipient's page as it arrives, and when the page is made again."""

from __future__ import annotations

import dataclasses

import pytest
from playwright.async_api import Browser, expect

from shared.db import Database
from shared.settings import RULES, Settings
from tests.support.browsers import signed_in


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
    page, leaves them listed. The Preferences page lists the topic in its own group, without `muted`, and hears the
    change too."""
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
    await expect(topic.locator("option")).to_have_text(["Live", "Push", "Digest"])
    assert (await context.request.put("/api/me/preferences", data={"shows": {"orders": "push"}})).ok
    await expect(topic).to_have_value("push")  # the change reached the open pages
    await db.orders.insert_one({"user": "nia", "item": "a cup", "status": "placed"})
    await expect(page.locator("#feed li.personal")).to_have_count(2)
    await context.close()
