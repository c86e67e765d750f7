"""One live connection per browser, live unread badges, desktop notifications, resync and expiry, in real headless
Chromium (Debian's) against a live server."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import timedelta

import pytest
from playwright.async_api import Browser, Page, Route, expect

from shared.db import Database, next_seq, utcnow
from shared.settings import Settings
from shared.updates import COUNT_CAP
from tests.support.accounts import registered
from tests.support.browsers import log_in, signed_in, tabs
from tests.support.http import async_client
from tests.support.servers import gauge, gossip_server, serving
from tests.support.sse import events
from tests.support.updates import publish, stored_update
from tests.support.waiting import wait_until

FEEDS = "gossip_stream_connections"
# A Notification constructor that counts, and a page that can be made hidden: headless Chromium shows every page.
STUBS = """
window.notes = [];
window.Notification = class {
  constructor(title, options) { window.notes.push([title, options.body]); window.lastNote = this; }
  addEventListener(type, listener) { this.clicked = listener; }
  close() {}
  static get permission() { return "granted"; }
  static requestPermission() { return Promise.resolve("granted"); }
};
window.hide = () => {
  Object.defineProperty(document, "visibilityState", { get: () => "hidden", configurable: true });
  document.dispatchEvent(new Event("visibilitychange"));
};
"""

# A page whose fetches are noted as they are made.
NOTED_FETCHES = """
window.fetched = [];
const fetchNow = window.fetch;
window.fetch = (url, options) => { window.fetched.push(String(url)); return fetchNow(url, options); };
"""
# One that opens hidden (a background tab), and can be shown.
OUT_OF_SIGHT = (
    NOTED_FETCHES
    + """
let shown = false;
Object.defineProperty(document, "visibilityState", { get: () => (shown ? "visible" : "hidden"), configurable: true });
window.show = () => { shown = true; document.dispatchEvent(new Event("visibilitychange")); };
"""
)


async def listed(page: Page) -> list[int]:
    return [int(seq) for seq in await page.locator("#feed li").evaluate_all("items => items.map(li => li.dataset.seq)")]


async def test_six_tabs_of_one_browser_share_one_stream(browser: Browser, server: str) -> None:
    before = gauge(server, FEEDS)
    context = await signed_in(browser, server, "sita")
    pages = await tabs(context, "/", "/shows", "/publish", "/notifications", "/notifications/all", "/shows")
    await wait_until(lambda: gauge(server, FEEDS) == before + 1)
    async with registered(server, "bob") as bob:
        sent = await publish(bob, "sherlock", "only /notifications/all shows this")
    await expect(pages[4].locator("#feed li").first).to_contain_text(sent["text"])
    assert gauge(server, FEEDS) == before + 1
    await context.close()


async def test_without_web_locks_each_tab_has_its_own_stream(browser: Browser, server: str) -> None:
    before = gauge(server, FEEDS)
    context = await signed_in(browser, server, "fay")
    await context.add_init_script("delete Navigator.prototype.locks;")
    pages = await tabs(context, "/notifications", "/notifications")
    await wait_until(lambda: gauge(server, FEEDS) == before + 2)
    async with registered(server, "bob") as bob:
        sent = await publish(bob, "flash", "to each tab by its own stream")
    for page in pages:
        await expect(page.locator("#feed li").first).to_contain_text(sent["text"])
    await context.close()


async def test_when_the_leader_closes_the_others_get_every_update_once_in_order(browser: Browser, server: str) -> None:
    context = await signed_in(browser, server, "lea")
    leader, *others = await tabs(context, "/shows", "/notifications", "/notifications")  # the first holds the lock
    async with registered(server, "bob") as bob:
        sent = [await publish(bob, "flash", f"before {i}") for i in range(3)]
        for page in others:
            await expect(page.locator("#feed li")).to_have_count(3)

        async def publishing() -> None:
            for i in range(12):
                sent.append(await publish(bob, "flash", f"during {i}"))

        publisher = asyncio.create_task(publishing())
        await wait_until(lambda: len(sent) >= 6)
        await leader.close()
        await publisher
        taken_over = await publish(bob, "flash", "published once the leader had gone")
        for page in others:  # another tab has taken over within 2 s of the close (the publishes took a fraction)
            await expect(page.locator("#feed li").first).to_contain_text(taken_over["text"], timeout=2000)
        for page in others:
            assert await listed(page) == [update["seq"] for update in reversed([*sent, taken_over])]
    await context.close()


async def test_an_update_that_arrives_live_stands_out_from_those_already_there(browser: Browser, server: str) -> None:
    """Its `new` class has a look of its own: a highlight that fades, or a tint that stays for someone who asked
    for less motion."""
    context = await signed_in(browser, server, "ida", reduced_motion="reduce")
    async with registered(server, "bob") as bob:
        await publish(bob, "flash", "already there")
        (page,) = await tabs(context, "/notifications")
        await publish(bob, "flash", "arrived live")
    arrived, earlier = page.locator("#feed li").first, page.locator("#feed li").last
    await expect(arrived).to_contain_text("arrived live")
    look = "li => [getComputedStyle(li).backgroundColor, getComputedStyle(li).animationName]"
    assert await earlier.evaluate(look) == ["rgb(255, 255, 255)", "none"]
    assert (await arrived.evaluate(look))[0] != "rgb(255, 255, 255)"
    await page.emulate_media(reduced_motion="no-preference")
    assert (await arrived.evaluate(look))[1] == "arrived"
    await context.close()


async def test_unread_counts_up_everywhere_and_a_read_clears_every_tab_and_device(
    browser: Browser, server: str
) -> None:
    context = await signed_in(browser, server, "uma")
    laptop = await signed_in(browser, server, "uma", new=False)
    pages = [*await tabs(context, "/", "/shows", "/publish"), *await tabs(laptop, "/shows")]
    async with registered(server, "bob") as bob:
        for i in range(3):
            await publish(bob, "flash", f"news {i}")
    for page in pages:
        await expect(page.locator("#unread-count")).to_have_text("3")
    await expect(pages[0].locator("#unread")).to_have_text("3")
    reader = await context.new_page()
    async with reader.expect_response("**/api/me/read") as marked:
        await reader.goto("/notifications")
    assert (await marked.value).status == 204
    for page in pages:
        await expect(page.locator("#unread-count")).to_have_count(0, timeout=1000)
    await context.close()
    await laptop.close()


async def test_a_hidden_browser_raises_one_notification_per_update(browser: Browser, server: str) -> None:
    context = await signed_in(browser, server, "nia")
    await context.add_init_script(STUBS)
    (notifications,) = await tabs(context, "/notifications")
    await notifications.click("#notify")
    await expect(notifications.locator("#notify")).to_have_text("Turn off desktop notifications")
    await notifications.close()
    pages = await tabs(context, "/shows", "/publish")
    async with registered(server, "bob") as bob:
        await publish(bob, "flash", "while a page is visible: no notification")
        for page in pages:
            await expect(page.locator("#unread-count")).to_have_text("1")
            await page.evaluate("hide()")
        texts = ["<b>first</b>", "second", "third"]
        for text in texts:
            await publish(bob, "flash", text)
    for page in pages:
        await expect(page.locator("#unread-count")).to_have_text("4")
    notes = {page: await page.evaluate("notes") for page in pages}
    raised = [note for page_notes in notes.values() for note in page_notes]
    assert raised == [["The Flash", text] for text in texts]  # one per update, not one per tab; the text as text
    raiser = next(page for page, page_notes in notes.items() if page_notes)
    await raiser.evaluate("lastNote.clicked()")
    await expect(raiser).to_have_url(f"{server}/notifications")  # clicking it leads to a Notifications page
    await context.close()


async def test_a_refused_stream_says_why_and_waits_as_told(browser: Browser, server: str) -> None:
    context = await signed_in(browser, server, "ray")
    asked: list[str] = []

    async def refuse(route: Route) -> None:
        asked.append(route.request.url)
        detail = "Too many open feeds for this account; close a tab or two."
        await route.fulfill(status=429, headers={"retry-after": "600"}, json={"error": "too_many", "detail": detail})

    await context.route("**/events?*", refuse)
    page = await context.new_page()
    await page.goto("/shows")
    await expect(page.locator("#status")).to_have_text("Too many open feeds for this account; close a tab or two.")
    assert len(asked) == 2  # the stream, then one look at why: no loop until Retry-After has passed
    await context.close()


async def test_a_page_far_behind_is_told_what_was_skipped(browser: Browser, server: str, db: Database) -> None:
    context = await signed_in(browser, server, "rey")
    page = await context.new_page()
    released = asyncio.Event()

    async def held(route: Route) -> None:  # the page is made, but its stream opens only once 1,000 are published
        await released.wait()
        await route.continue_()

    await page.route("**/static/live.js", held)
    await page.goto("/notifications", wait_until="commit")
    last = await next_seq(db, count=1000)
    async with registered(server, "bob") as bob, events(bob, "/events/all") as watching:
        await db.updates.insert_many([stored_update(seq) for seq in range(last - 999, last + 1)])
        await watching.updates(1000)  # the stream service has them all: the page's stream replays, not live
    released.set()
    notice = page.locator("#resync")
    await expect(notice).to_have_text(f"{COUNT_CAP}+ older updates were skipped: see them in the history.")  # 500
    await expect(notice.locator("a")).to_have_attribute("href", f"/notifications?before={last - 499}")
    await expect(page.locator("#feed li")).to_have_count(500)
    assert (await listed(page))[0] == last
    await context.close()


async def signed_out(pages: list[Page], timeout: float = 5000) -> None:
    """How a page shows that its session has ended: one wording, the Log in link, neither the name nor Log out."""
    for page in pages:
        await expect(page.locator("#status")).to_have_text("signed out", timeout=timeout)
        await expect(page.locator("#status-login")).to_be_visible()
        await expect(page.locator(".who")).to_be_hidden()
        await expect(page.locator("#logout")).to_be_hidden()


async def test_a_session_expired_on_the_server_signs_the_pages_out(browser: Browser, server: str, db: Database) -> None:
    before = gauge(server, FEEDS)
    context = await signed_in(browser, server, "eve")
    pages = await tabs(context, "/notifications", "/shows")
    await db.sessions.update_many({}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}})
    await signed_out(pages, timeout=2000)
    await wait_until(lambda: gauge(server, FEEDS) == before)  # the stream has ended, and is not opened again
    async with async_client(base_url=server) as client:
        assert (await client.get("/healthz")).status_code == 200
    for page in pages:
        await expect(page.locator("#status")).to_have_text("signed out")
    await context.close()


async def test_a_refused_feed_says_why_instead_of_reconnecting(browser: Browser, settings: Settings) -> None:
    """Two browsers of one user, where the server holds one feed per user: the second page says why it is not
    live, and asks the server again only after the Retry-After, not in a loop."""
    with serving(dataclasses.replace(settings, feeds_per_user=1)) as server:
        first = await signed_in(browser, server, "rosa")
        second = await signed_in(browser, server, "rosa", new=False)
        await tabs(first, "/notifications")
        page = await second.new_page()
        await page.clock.install()  # the page's timers run on a clock the test moves
        asked: list[str] = []
        page.on("request", lambda request: asked.append(request.url) if "/events" in request.url else None)
        await page.goto("/notifications")
        await expect(page.locator("#status")).to_contain_text("1 live feeds open", timeout=10_000)
        assert len(asked) == 2  # the EventSource, then the request that found out why
        await page.clock.run_for(29_000)  # the refusal said Retry-After: 30
        assert len(asked) == 2
        await page.clock.run_for(2_000)
        await wait_until(lambda: len(asked) >= 3)  # asked again, when told
        for context in (first, second):
            await context.close()


@pytest.mark.parametrize("ending", ["logout", "expiry"])
async def test_logging_in_again_brings_the_open_pages_back(
    browser: Browser, server: str, db: Database, ending: str
) -> None:
    """The tab that held the browser's stream stays open, signed out, while the user logs in again in another: the
    new page goes live and gets updates, and so does the old one, on the one stream."""
    before = gauge(server, FEEDS)
    context = await signed_in(browser, server, "remy")
    old, other = await tabs(context, "/shows", "/publish")  # the first holds the lock
    if ending == "logout":
        await other.click("#logout")
    else:
        await db.sessions.update_many({}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}})
    await signed_out([old])
    await log_in(other, "remy", then="/notifications")
    await expect(other.locator("#status")).to_have_text("live")
    async with registered(server, "bob") as bob:
        sent = await publish(bob, "flash", "after logging in again")
    await expect(other.locator("#feed li").first).to_contain_text(sent["text"])
    await expect(old.locator("#status")).to_have_text("live")
    await expect(old.locator(".who")).to_be_visible()
    await expect(old.locator("#status-login")).to_be_hidden()
    await wait_until(lambda: gauge(server, FEEDS) == before + 1)  # still one stream for the browser
    await context.close()


async def test_a_page_whose_browser_signed_in_as_someone_else_is_signed_out_when_its_stream_returns(
    browser: Browser, settings: Settings
) -> None:
    """Remy's page stays open while the browser logs in as Sara in another tab. When the server comes back from a
    restart, the page's stream reconnects with Sara's cookie: it must say "signed out", not go live with her feed."""
    live = gossip_server(settings)
    context = await signed_in(browser, live.url, "remy")
    (old,) = await tabs(context, "/shows")
    async with registered(live.url, "sara"):
        pass
    other = await context.new_page()
    await log_in(other, "sara", then="/notifications")
    await expect(other.locator(".who")).to_have_text("sara")
    live.stop()
    await expect(old.locator("#status")).to_have_text("reconnecting…")
    live = gossip_server(settings, live.port)
    try:
        await expect(other.locator("#status")).to_have_text("live", timeout=10_000)
        await signed_out([old], timeout=10_000)
    finally:
        await context.close()
        live.stop()


async def test_a_badge_at_the_count_cap_says_so_and_keeps_saying_so_as_updates_arrive(
    browser: Browser, server: str, db: Database
) -> None:
    context = await signed_in(browser, server, "cap")
    last = await next_seq(db, count=COUNT_CAP - 1)
    await db.updates.insert_many([stored_update(seq, author="bob") for seq in range(last - COUNT_CAP + 2, last + 1)])
    (page,) = await tabs(context, "/")
    await expect(page.locator("#unread-count")).to_have_text(str(COUNT_CAP - 1))
    async with registered(server, "bob") as bob:
        await publish(bob, "flash", "the count reaches the cap")
        await expect(page.locator("#unread-count")).to_have_text(f"{COUNT_CAP}+")
        await publish(bob, "flash", "and goes past it")
    await expect(page.locator("#unread")).to_have_text(f"{COUNT_CAP}+")
    await expect(page.locator("#unread-count")).to_have_text(f"{COUNT_CAP}+")
    await page.reload()
    await expect(page.locator("#unread-count")).to_have_text(f"{COUNT_CAP}+")
    await context.close()


async def test_an_update_seen_on_notifications_stays_read_when_the_page_is_left_at_once(
    browser: Browser, server: str
) -> None:
    """A mark waits up to two seconds to be sent (one request however fast updates come): leaving the page before
    then must still mark what was on screen read, or every device counts it, and push and the digest send it."""
    context = await signed_in(browser, server, "lea")
    (page,) = await tabs(context, "/notifications")
    async with registered(server, "bob") as bob:
        await publish(bob, "flash", "seen, then left")
    await expect(page.locator("#feed li", has_text="seen, then left")).to_be_visible()
    await page.goto("/shows")

    async def all_read() -> bool:
        return (await (await context.request.get("/api/me")).json())["unread"] == 0

    await wait_until(all_read)
    await context.close()


async def test_a_page_opened_out_of_sight_marks_nothing_read_until_it_is_seen(browser: Browser, server: str) -> None:
    context = await signed_in(browser, server, "vis")
    await context.add_init_script(OUT_OF_SIGHT)
    async with registered(server, "bob") as bob:
        for i in range(2):
            await publish(bob, "flash", f"unseen {i}")
    (page,) = await tabs(context, "/notifications")  # live once it returns: a mark would have been sent by now
    await expect(page.locator("#unread-count")).to_have_text("2")
    assert "/api/me/read" not in await page.evaluate("fetched")
    async with page.expect_response("**/api/me/read") as marked:
        await page.evaluate("show()")
    assert (await marked.value).status == 204
    assert json.loads((await marked.value).request.post_data or "{}") == {"seq": 2, "user": "vis"}
    await expect(page.locator("#unread-count")).to_have_count(0)
    await context.close()


async def test_a_page_another_site_opened_marks_nothing_read_until_the_person_acts_on_it(
    browser: Browser, server: str
) -> None:
    context = await signed_in(browser, server, "opa")
    await context.add_init_script(NOTED_FETCHES)
    await context.route("http://elsewhere.example/", lambda route: route.fulfill(
        content_type="text/html", body=f'<a id="go" href="{server}/notifications">your notifications</a>'))  # fmt: skip
    async with registered(server, "bob") as bob:
        for i in range(2):
            await publish(bob, "flash", f"unread {i}")
    page = await context.new_page()
    await page.goto("http://elsewhere.example/")
    await page.click("#go")
    await expect(page.locator("#status")).to_have_text("live")  # seen: a page of ours would have marked by now
    await expect(page.locator("#unread-count")).to_have_text("2")
    assert "/api/me/read" not in await page.evaluate("fetched")
    async with page.expect_response("**/api/me/read") as marked:
        await page.click("h1")
    assert (await marked.value).status == 204
    await expect(page.locator("#unread-count")).to_have_count(0)
    await context.close()


async def test_a_read_sent_as_notifications_is_left_reaches_the_next_pages_badge(browser: Browser, server: str) -> None:
    """The trial: an update seen on Notifications, the page left at once. Its mark goes as it is left, while the next
    page is made; held until that page was made, and that page's stream held until the mark has reached the user's
    other feeds, the mark reaches no feed of the page: its stream is told it as it opens, and the badge goes."""
    context = await signed_in(browser, server, "nav")
    cookies = {cookie["name"]: cookie["value"] for cookie in await context.cookies()}
    (page,) = await tabs(context, "/notifications")
    async with registered(server, "bob") as bob:
        update = await publish(bob, "flash", "seen, then left")
    await expect(page.locator("#feed li", has_text="seen, then left")).to_be_visible()
    made, told = asyncio.Event(), asyncio.Event()

    async def make(route: Route) -> None:
        response = await route.fetch()
        made.set()
        await route.fulfill(response=response)

    async def hold(route: Route, until: asyncio.Event) -> None:
        await until.wait()
        await route.continue_()

    await context.route("**/shows", make)
    await context.route("**/api/me/read", lambda route: hold(route, made))
    await context.route("**/events?*", lambda route: hold(route, told))
    async with async_client(base_url=server, cookies=cookies) as laptop, events(laptop) as other_device:
        await page.goto("/shows")
        await expect(page.locator("#unread-count")).to_have_text("1")  # made before the mark came
        assert (await other_device.named("read")).json() == {"last_read_seq": update["seq"], "unread": 0}
        told.set()
        await expect(page.locator("#status")).to_have_text("live")
        await expect(page.locator("#unread-count")).to_have_count(0)
    await context.close()


async def test_the_leaders_stream_names_the_newest_read_mark_it_was_told(browser: Browser, server: str) -> None:
    """A stream the leader opens again (a tab that needs every show joined) names the read mark the page shows now,
    not the one it was made with: the server tells a feed only a mark that differs."""
    context = await signed_in(browser, server, "newest")
    async with registered(server, "bob") as bob:
        update = await publish(bob, "flash", "read elsewhere")
    (page,) = await tabs(context, "/shows")
    await expect(page.locator("#unread-count")).to_have_text("1")
    assert (await context.request.post("/api/me/read", data={"seq": update["seq"]})).status == 204
    await expect(page.locator("#unread-count")).to_have_count(0)
    async with page.expect_request("**/events/all?*") as reopened:
        await tabs(context, "/notifications/all")
    assert f"&read={update['seq']}&" in (await reopened.value).url
    await context.close()


async def test_a_tab_made_before_a_mark_its_leader_was_told_is_told_it_too(browser: Browser, server: str) -> None:
    """A tab that joins a leader gets no stream of its own: one made before a mark that the leader's stream told
    while the tab was not yet listening has the leader open its stream again, naming the tab's mark."""
    context = await signed_in(browser, server, "follower")
    async with registered(server, "bob") as bob:
        update = await publish(bob, "flash", "read while a tab loads")
    (leader,) = await tabs(context, "/shows")
    await expect(leader.locator("#unread-count")).to_have_text("1")

    async def made_then_read(route: Route) -> None:
        response = await route.fetch()
        assert (await context.request.post("/api/me/read", data={"seq": update["seq"]})).status == 204
        await expect(leader.locator("#unread-count")).to_have_count(0)
        await route.fulfill(response=response)

    await context.route("**/publish", made_then_read)
    follower = await context.new_page()
    await follower.goto("/publish")
    await expect(follower.locator("#unread-count")).to_have_count(0)
    await expect(leader.locator("#unread-count")).to_have_count(0)
    await context.close()


async def test_a_tab_of_a_page_made_before_tabs_named_their_read_mark_leaves_the_stream_as_it_was(
    browser: Browser, server: str
) -> None:
    """A tab of a page made by the release before (open while the service was updated) announces no read mark: the
    leader takes it as its own, so its stream neither opens again nor names a mark the server refuses."""
    context = await signed_in(browser, server, "older")
    (leader,) = await tabs(context, "/shows")
    requests: list[str] = []
    leader.on("request", lambda request: requests.append(request.url) if "/events" in request.url else None)
    after = await leader.evaluate("document.body.dataset.after")
    await leader.evaluate(
        """after => new BroadcastChannel("gossip-live:older").postMessage(
               {kind: "tab", tab: "an-older-page", need: "followed", after: Number(after), visible: true})""",
        after,
    )
    async with registered(server, "bob") as bob:
        update = await publish(bob, "flash", "after the older tab joined")
    await expect(leader.locator("#unread-count")).to_have_text("1")
    assert update["seq"] > int(after) and requests == []
    await context.close()
