"""The Preferences page in real headless Chromium against a live server: the browser's own time zone fills the form,
and the form saves what the page shows."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.support.browsers import signed_in


async def test_the_page_fills_in_the_browsers_time_zone_and_saves_it(browser: Browser, server: str) -> None:
    context = await signed_in(browser, server, "zoe", timezone_id="America/Denver")
    page = await context.new_page()
    await page.goto("/")
    await page.click("nav >> text=Preferences")
    zone = page.locator("input[name=time_zone]")
    await expect(zone).to_have_value("America/Denver")
    await page.select_option("select[name='shows.flash']", "muted")
    await page.click("#preferences button[type=submit]")
    await expect(page.locator(".flash")).to_have_text("Your preferences are saved.")
    saved = await (await context.request.get("/api/me/preferences")).json()
    assert (saved["time_zone"], saved["shows"]) == ("America/Denver", {"flash": "muted"})
    await expect(page.locator("select[name='shows.flash']")).to_have_value("muted")
    await context.close()


async def test_a_chosen_time_zone_is_kept_and_the_browsers_offered(browser: Browser, server: str) -> None:
    context = await signed_in(browser, server, "yan", timezone_id="Pacific/Auckland")
    assert (await context.request.put("/api/me/preferences", data={"time_zone": "Europe/Paris"})).ok
    page = await context.new_page()
    await page.goto("/preferences")
    zone = page.locator("input[name=time_zone]")
    await expect(zone).to_have_value("Europe/Paris")
    await page.click("text=Use this browser's: Pacific/Auckland")
    await expect(zone).to_have_value("Pacific/Auckland")
    await context.close()
