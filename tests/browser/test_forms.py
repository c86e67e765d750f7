"""The forms' words in real headless Chromium (Debian's) against a live server: the register page's rules before
they are broken, and the API tokens section, where each attempt replaces the outcome of the one before."""

from __future__ import annotations

from datetime import timedelta

from playwright.async_api import Browser, Page, expect

from services.auth.accounts import RULES
from services.auth.tokens import RULE
from shared.db import iso_utc, utcnow
from tests.support.browsers import signed_in
from tests.support.http import async_client


async def test_the_register_page_gives_its_rules_before_they_are_broken(browser: Browser, server: str) -> None:
    context = await browser.new_context(base_url=server)
    page = await context.new_page()
    await page.goto("/register")
    username, password = page.locator("input[name=username]"), page.locator("input[name=password]")
    await expect(username).to_have_accessible_description(RULES["username"])
    await expect(password).to_have_accessible_description(RULES["password"])
    await username.fill("ab")
    await password.fill("a-long-pass")
    await page.click("form.stack button[type=submit]")
    await expect(username).to_have_accessible_description(f"Username: {RULES['username']}")  # said once, as the error
    await expect(page.get_by_text(RULES["username"])).to_have_count(1)
    await expect(password).to_have_accessible_description(RULES["password"])
    await page.goto("/login")  # the login page checks no rules: it gives none
    await expect(page.locator(".hint")).to_have_count(0)
    await context.close()


async def create_token(page: Page, name: str) -> None:
    await page.fill("#token-form input[name=name]", name)
    await page.click("#token-form button[type=submit]")


async def test_each_token_attempt_replaces_the_last_outcome(browser: Browser, server: str) -> None:
    context = await signed_in(browser, server, "tia")
    page = await context.new_page()
    await page.goto("/")
    created, error = page.locator("#token-new"), page.locator("#token-error")
    await expect(page.locator("#token-form input[name=name]")).to_have_accessible_description(RULE)
    await create_token(page, "laptop")
    await expect(page.locator("#token-value")).to_contain_text("gsp_")
    await create_token(page, "laptop")
    await expect(error).to_have_text("You already have a token with that name.")  # once, not the field's words too
    await expect(created).to_be_hidden()
    await create_token(page, "a/b")
    await expect(error).to_have_text(f"Invalid name: {RULE}")
    await create_token(page, "desk")
    await expect(page.locator("#token-list li")).to_have_count(2)
    await expect(created).to_be_visible()
    await expect(error).to_be_hidden()
    await context.close()


async def test_the_token_list_says_when_each_token_expires_and_was_last_used(browser: Browser, server: str) -> None:
    context = await signed_in(browser, server, "tia")
    page = await context.new_page()
    await page.goto("/")
    await page.fill("#token-form input[name=expires_in_days]", "7")
    await create_token(page, "weekly")
    ends = iso_utc(utcnow() + timedelta(days=7))[:10]
    weekly = page.locator("#token-list li[data-token=weekly]")
    await expect(weekly).to_contain_text(f"expires {ends} · never used")
    token = await page.locator("#token-value").text_content()
    async with async_client(base_url=server, headers={"authorization": f"Bearer {token}"}) as script:
        assert (await script.post("/api/updates", json={"show": "flash", "text": "hello"})).status_code == 201
    await create_token(page, "forever")
    await expect(weekly).to_contain_text(f"last used {iso_utc(utcnow())[:10]}")
    await expect(page.locator("#token-list li[data-token=forever]")).to_contain_text("never expires · never used")
    await context.close()
