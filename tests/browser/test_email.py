"""The Preferences page's email section in real headless Chromium against a live server and a real SMTP server on
loopback: give an address, follow the mailed link, see it verified, turn the digest off and on, a refused address
said in the section, and what is set to digest said not to be mailed while no confirmed address takes it."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from services.auth import links
from shared.settings import Settings
from tests.support.browsers import signed_in
from tests.support.mail import link, mailing_server, smtp_server
from tests.support.waiting import wait_until


async def test_an_address_is_given_verified_and_its_digest_stopped_and_started_again(
    browser: Browser, settings: Settings
) -> None:
    async with smtp_server() as (smtp_url, inbox):
        with mailing_server(settings, smtp_url) as (url, _):
            context = await signed_in(browser, url, "emma")
            page = await context.new_page()
            await page.goto("/preferences")
            await expect(page.locator("#email-state")).to_have_text("No address yet.")
            await page.fill("#email input[name=email]", "emma@example.com")
            await page.click("#email button[value=save]")
            await expect(page.locator(".flash")).to_contain_text("Check your mail")
            await expect(page.locator("#email-state")).to_contain_text("emma@example.com: verification sent")
            await wait_until(lambda: inbox.to("emma@example.com"))
            await page.goto(link(inbox.messages[-1], links.VERIFY_PATH))
            await expect(page.locator("#verify-ask")).to_be_visible()  # opening it only asks
            await page.click("#verify")
            await expect(page.locator("#verify-result")).to_contain_text("Your address is verified")
            await page.goto("/preferences")
            await expect(page.locator("#email-state")).to_contain_text("verified, the digest is on.")
            await expect(page.locator("#email-no-show")).to_be_visible()  # emma follows flash, at `live`
            await page.select_option("select[name='shows.flash']", "digest")
            await page.click("#preferences button[type=submit]")
            await expect(page.locator("#email-no-show")).to_have_count(0)
            await expect(page.locator("#email-no-digest")).to_have_count(0)
            await page.click("#email button[value=digest_off]")
            await expect(page.locator("#email-state")).to_contain_text("the digest is off")
            await expect(page.locator("#email-no-digest")).to_contain_text("only while the digest is on")
            await page.click("#email button[value=digest_on]")
            await expect(page.locator("#email-state")).to_contain_text("verified, the digest is on.")
            await expect(page.locator("#email-no-digest")).to_have_count(0)
            await page.fill("#email input[name=email]", "emma@mail.test")  # the browser's check passes, not ours
            await page.click("#email button[value=save]")
            await expect(page.locator("#email-error")).to_contain_text("not an email address")
            await page.click("#email button[value=remove]")
            await expect(page.locator("#email-no-digest")).to_contain_text("only once you give an address")
            await page.fill("#email input[name=email]", "emma@example.org")
            await page.click("#email button[value=save]")
            await expect(page.locator("#email-no-digest")).to_contain_text("only once you confirm your address")
            await context.close()
