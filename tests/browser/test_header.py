"""The header at a phone's width (web/static/gossip.css) in real headless Chromium: two rows at most, every link of
it on screen, the live status and the unread badge visible."""

from __future__ import annotations

from playwright.async_api import Browser, Page, expect

from tests.support.accounts import registered
from tests.support.browsers import signed_in
from tests.support.updates import publish

PHONE = {"width": 375, "height": 740}
TWO_ROWS = 96  # px: the brand's row and one of links (about 69); the three or four rows before were 148 to 188


async def assert_compact(page: Page) -> None:
    header = page.locator("header.top")
    box = await header.bounding_box()
    assert box is not None and box["height"] <= TWO_ROWS, box
    for control in await header.locator("a:visible, button:visible").all():
        place = await control.bounding_box()
        assert place is not None and place["x"] >= 0 and place["x"] + place["width"] <= PHONE["width"], place


async def test_a_signed_in_phone_header_takes_two_rows_with_everything_on_screen(browser: Browser, server: str) -> None:
    context = await signed_in(browser, server, "m" * 32, viewport=PHONE)  # the longest name; follows flash
    async with registered(server, "bob") as bob:
        await publish(bob, "flash", "unread")
    page = await context.new_page()
    await page.goto("/shows")
    await expect(page.locator("#status")).to_have_text("live")
    await expect(page.locator("#unread-count")).to_be_visible()
    header = page.locator("header.top")
    for name in ("Shows", "Notifications", "All Notifs", "Publish", "Preferences"):
        await expect(header.get_by_role("link", name=name)).to_be_visible()
    await expect(header.get_by_role("button", name="Log out")).to_be_visible()
    await assert_compact(page)
    await context.close()


async def test_a_signed_out_phone_header_is_one_row(browser: Browser, server: str) -> None:
    context = await browser.new_context(base_url=server, viewport=PHONE)
    page = await context.new_page()
    await page.goto("/")
    await expect(page.locator("header.top").get_by_role("link", name="Register")).to_be_visible()
    await assert_compact(page)
    await context.close()
