"""Browser profiles and tabs for the Playwright tests: signed in through the API or the login page, tabs live."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.support.accounts import PASSWORD
from tests.support.updates import publish


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


async def all_notifs_marks_only_the_heard(
    context: BrowserContext,
    publisher: httpx.AsyncClient,
    heard: str,
    unheard: str,
    silence: Callable[[], Awaitable[None]],
) -> None:
    """All Notifs lists every show's updates but marks only those the user hears: `heard`'s unread when the page is
    made and new as they arrive, `unheard`'s neither; once `silence` (from another tab) makes `heard` unheard too,
    every mark goes at once. Four updates, published as `publisher`."""
    await publish(publisher, unheard, "unheard before the page")
    await publish(publisher, heard, "unread on the page")
    (everything,) = await tabs(context, "/notifications/all")
    unread, new, first = re.compile(r"\bunread\b"), re.compile(r"\bnew\b"), everything.locator("#feed li").first
    await expect(everything.locator(f"#feed li[data-show={heard}]")).to_have_class(unread)
    await expect(everything.locator(f"#feed li[data-show={unheard}]")).not_to_have_class(unread)
    for show, marked in ((unheard, False), (heard, True)):
        live = await publish(publisher, show, "live")
        await expect(first).to_have_attribute("data-seq", str(live["seq"]))
        await (expect(first).to_have_class(new) if marked else expect(first).not_to_have_class(new))
    await silence()
    await expect(everything.locator("#feed li.unread, #feed li.new")).to_have_count(0)
    await expect(everything.locator("#feed li")).to_have_count(4)
