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
