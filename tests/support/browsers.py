"""Browser profiles and tabs for the Playwright tests: signed in through the API or the login page, tabs live."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.support.accounts import PASSWORD


async def signed_in(browser: Browser, server: str, username: str, new: bool = True, **options: Any) -> BrowserContext:
    """A browser context (a profile) signed in as `username`, following flash when new; `options`: the context's
    own (a time zone, a locale)."""
    context = await browser.new_context(base_url=server, **options)
    path = "/api/auth/register" if new else "/api/auth/login"
    response = await context.request.post(path, data={"username": username, "password": PASSWORD})
    assert response.ok, await response.text()
    if new:
        assert (await context.request.put("/api/me/follows/flash")).ok
    return context


async def tabs(context: BrowserContext, *paths: str) -> list[Page]:
    """A tab per path, each live (its own stream or the leader's) before the next opens."""
    pages = []
    for path in paths:
        page = await context.new_page()
        await page.goto(path)
        await expect(page.locator("#status")).to_have_text("live")
        pages.append(page)
    return pages


async def log_in(page: Page, username: str, then: str = "/") -> None:
    """Through the login page, as a person would, landing on `then`."""
    await page.goto(f"/login?next={then}")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("form.stack button[type=submit]")
    await page.wait_for_url(lambda url: "/login" not in url)
