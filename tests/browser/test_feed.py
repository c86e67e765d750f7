"""What a live page does with what it hears and sends (web/static/feed.js), in real headless Chromium (Debian's)
against a live server: the Shows page's buttons, All Notifs' marks on shows not followed, one's own updates as read
ones, read marks sent again after a network failure, and desktop notifications the browser refuses."""

from __future__ import annotations

import re

from playwright.async_api import Browser, Route, expect

from tests.support.accounts import registered
from tests.support.browsers import all_notifs_marks_only_the_heard, signed_in, tabs
from tests.support.updates import publish


async def test_the_shows_page_follows_changes_made_in_another_tab(browser: Browser, server: str) -> None:
    context = await signed_in(browser, server, "sol")  # follows flash
    shows, other = await tabs(context, "/shows", "/shows")
    sherlock, flash = (shows.locator(f"li[data-show={slug}] button") for slug in ("sherlock", "flash"))
    await other.locator("li[data-show=sherlock] button").click()
    await expect(sherlock).to_have_text("Unfollow")
    assert (await context.request.delete("/api/me/follows/flash")).ok
    await expect(flash).to_have_text("Follow")
    await sherlock.click()  # the button does what it now says
    await expect(sherlock).to_have_text("Follow")
    me = await (await context.request.get("/api/me")).json()
    assert me["follows"] == []
    await context.close()


async def test_all_notifs_lists_an_unfollowed_shows_updates_as_read_ones_on_load_live_and_once_unfollowed(
    browser: Browser, server: str
) -> None:
    """Unread counts only followed shows, so All Notifs lists a show not followed as it lists a muted one."""
    context = await signed_in(browser, server, "ugo")  # follows flash, not sherlock

    async def unfollow() -> None:
        assert (await context.request.delete("/api/me/follows/flash")).ok

    async with registered(server, "bob") as bob:
        await all_notifs_marks_only_the_heard(context, bob, "flash", "sherlock", unfollow)
    await context.close()


async def test_the_users_own_update_arrives_as_a_read_one(browser: Browser, server: str) -> None:
    """One's own updates are never unread, so they arrive without the mark of news, as the page lists them."""
    context = await signed_in(browser, server, "oona")  # follows flash
    (notifications,) = await tabs(context, "/notifications")
    response = await context.request.post("/api/updates", data={"show": "flash", "text": "my own"})
    assert response.status == 201, await response.text()
    first = notifications.locator("#feed li").first
    await expect(first).to_have_attribute("data-seq", str((await response.json())["seq"]))
    await expect(first).not_to_have_class(re.compile(r"\bnew\b"))
    await expect(notifications.locator("#unread-count")).to_have_count(0)
    await context.close()


async def test_a_read_mark_that_failed_to_send_is_sent_again(browser: Browser, server: str) -> None:
    context = await signed_in(browser, server, "rita")
    async with registered(server, "bob") as bob:
        await publish(bob, "flash", "to be read")
    attempts = 0

    async def offline_once(route: Route) -> None:
        nonlocal attempts
        attempts += 1
        await (route.abort("internetdisconnected") if attempts == 1 else route.continue_())

    await context.route("**/api/me/read", offline_once)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto("/notifications")
    await expect(page.locator("#unread-count")).to_have_text("1")
    await expect(page.locator("#unread-count")).to_have_count(0, timeout=10_000)  # read, at the second attempt
    assert (attempts, errors) == (2, [])
    await context.close()


async def test_notifications_the_browser_refuses_are_explained(browser: Browser, server: str) -> None:
    context = await signed_in(browser, server, "noa")  # headless Chromium denies every permission request
    (page,) = await tabs(context, "/notifications")
    note = page.locator("#notify-note")
    await expect(note).to_be_hidden()
    await page.click("#notify")
    await expect(note).to_have_text("Notifications are blocked in this browser's settings.")
    await expect(page.locator("#notify")).to_have_text("Desktop notifications blocked")
    await expect(page.locator("#notify")).to_be_disabled()
    await page.reload()  # said again while the browser still blocks them
    await expect(note).to_have_text("Notifications are blocked in this browser's settings.")
    await expect(page.locator("#notify")).to_be_disabled()
    await context.close()
