"""The Publish page in real headless Chromium: it keeps the show chosen last, marks a wrong field for assistive
technology, and asks before a retraction."""

from __future__ import annotations

import re

from playwright.async_api import Browser, Dialog, expect

from tests.support.browsers import signed_in


async def test_the_chosen_show_stays_chosen_for_the_next_update(browser: Browser, server: str) -> None:
    context = await signed_in(browser, server, "pia")
    page = await context.new_page()
    await page.goto("/publish")
    await page.select_option("select[name=show]", "sherlock")
    await page.fill("#publish textarea[name=text]", "The game is on")
    await page.click("#publish button[type=submit]")
    await expect(page.locator(".flash")).to_contain_text("for Sherlock")
    await expect(page.locator("select[name=show]")).to_have_value("sherlock")
    await context.close()


async def test_a_wrong_field_is_marked_and_described(browser: Browser, server: str) -> None:
    context = await signed_in(browser, server, "pat")
    page = await context.new_page()
    await page.goto("/publish")
    await page.click("#publish button[type=submit]")
    for name, words in (("select[name=show]", "Show: one of"), ("#publish textarea[name=text]", "Update: required")):
        field = page.locator(name)
        await expect(field).to_have_attribute("aria-invalid", "true")
        await expect(field).to_have_accessible_description(re.compile("^" + re.escape(words)))
    await context.close()


async def test_a_retraction_is_asked_for_first(browser: Browser, server: str) -> None:
    context = await signed_in(browser, server, "poe")
    page = await context.new_page()
    await page.goto("/publish")
    await page.select_option("select[name=show]", "flash")
    await page.fill("#publish textarea[name=text]", "Barry runs")
    await page.click("#publish button[type=submit]")
    retract = page.locator("#mine button[value=retract]")
    asked: list[str] = []

    async def decline(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.dismiss()

    page.once("dialog", decline)
    await retract.click()
    await expect(page.locator("#mine li")).to_have_count(1)  # declined: nothing was sent
    assert len(asked) == 1 and asked[0].startswith("Retract update #")
    page.once("dialog", lambda dialog: dialog.accept())
    await retract.click()
    await expect(page.locator(".flash")).to_contain_text("is retracted")
    await expect(page.locator("#mine li")).to_have_count(0)
    await context.close()
