"""The Preferences page in real headless Chromium against a live server: the browser's own time zone fills the form,
and the form saves what the page shows."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.support.accounts import registered
from tests.support.browsers import all_notifs_marks_only_the_heard, signed_in, tabs
from tests.support.updates import publish


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


async def test_muting_in_one_tab_reaches_the_badge_and_list_of_the_others(browser: Browser, server: str) -> None:
    context = await signed_in(browser, server, "mel")  # follows flash
    assert (await context.request.put("/api/me/follows/sherlock")).ok
    async with registered(server, "bob") as bob:
        shows, preferences = await tabs(context, "/shows", "/preferences")
        await publish(bob, "flash", "soon muted")
        await publish(bob, "sherlock", "heard")
        await expect(shows.locator("#unread-count")).to_have_text("2")
        await preferences.select_option("select[name='shows.flash']", "muted")
        await preferences.click("#preferences button[type=submit]")
        await expect(shows.locator("#unread-count")).to_have_text("1")
        await publish(bob, "flash", "not news while muted")
        await publish(bob, "sherlock", "news")
        await expect(shows.locator("#unread-count")).to_have_text("2")
        notifications = await context.new_page()
        await notifications.goto("/notifications")
        await expect(notifications.locator("#following")).to_have_text("Following: The Flash (muted), Sherlock")
        await expect(notifications.locator("#feed li[data-show=flash]")).to_have_count(0)
        await expect(notifications.locator("#feed li[data-show=sherlock]")).to_have_count(2)
        await expect(notifications.locator("#status")).to_have_text("live")
        await publish(bob, "flash", "never on the list")
        sherlock = await publish(bob, "sherlock", "live on the list")
        await expect(notifications.locator("#feed li").first).to_have_attribute("data-seq", str(sherlock["seq"]))
        await expect(notifications.locator("#feed li[data-show=flash]")).to_have_count(0)
        assert (await context.request.put("/api/me/preferences", data={"shows": {"sherlock": "muted"}})).ok
        await expect(notifications.locator("#following")).to_have_text("Following: The Flash (muted), Sherlock (muted)")
        await expect(notifications.locator("#feed li")).to_have_count(0)
    await context.close()


async def test_preferences_saved_in_one_tab_reach_the_form_in_another(browser: Browser, server: str) -> None:
    """Saving the other form then keeps them: it does not undo what was saved first, save the fields changed in it."""
    context = await signed_in(browser, server, "ida", timezone_id="America/Denver")  # follows flash
    assert (await context.request.put("/api/me/follows/sherlock")).ok
    first, second = await tabs(context, "/preferences", "/preferences")
    await second.select_option("select[name='shows.flash']", "muted")
    await second.click("#preferences button[type=submit]")
    await expect(second.locator(".flash")).to_have_text("Your preferences are saved.")
    await expect(first.locator("select[name='shows.flash']")).to_have_value("muted")
    await first.select_option("select[name='shows.sherlock']", "digest")
    quiet = {"start": "21:00", "end": "06:00"}
    assert (
        await context.request.put("/api/me/preferences", data={"shows": {"sherlock": "push"}, "quiet_hours": quiet})
    ).ok
    await expect(first.locator("input[name=quiet_hours]")).to_be_checked()  # the change has reached the form
    await expect(first.locator("input[name='quiet_hours.start']")).to_have_value("21:00")
    await first.select_option("select[name=digest_hour]", "6")
    await first.click("#preferences button[type=submit]")
    await expect(first.locator(".flash")).to_have_text("Your preferences are saved.")
    saved = await (await context.request.get("/api/me/preferences")).json()
    assert saved["shows"] == {"flash": "muted", "sherlock": "digest"}  # what this form changed wins, as typed
    assert (saved["digest_hour"], saved["time_zone"], saved["quiet_hours"]) == (6, "America/Denver", quiet)
    await context.close()


async def test_all_notifs_lists_a_muted_shows_updates_as_read_ones_on_load_live_and_once_muted(
    browser: Browser, server: str
) -> None:
    """A muted show's updates count as unread nowhere, so All Notifs, which lists them still, does not mark them."""
    context = await signed_in(browser, server, "una")  # follows flash
    assert (await context.request.put("/api/me/follows/sherlock")).ok
    assert (await context.request.put("/api/me/preferences", data={"shows": {"flash": "muted"}})).ok

    async def mute() -> None:
        assert (await context.request.put("/api/me/preferences", data={"shows": {"sherlock": "muted"}})).ok

    async with registered(server, "bob") as bob:
        await all_notifs_marks_only_the_heard(context, bob, "sherlock", "flash", mute)
    await context.close()
