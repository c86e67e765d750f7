"""Web Push in real headless Chromium: the Preferences page registers the service worker at /sw.js for the whole
site; a push message delivered to it through the DevTools protocol (as a push service would) shows the notification
the push job's payload describes; the page lists devices and removes one, and says when what is set to push reaches
no device; and it says so when notifications are blocked."""

from __future__ import annotations

import json
from typing import Any

from playwright.async_api import Browser, expect

from services.auth.push import Batch
from tests.support.browsers import signed_in
from tests.support.push_receiver import Subscription
from tests.support.waiting import wait_until

NOTIFICATIONS = """async () => {
  const registration = await navigator.serviceWorker.getRegistration("/");
  const shown = registration ? await registration.getNotifications() : [];
  return shown.map((n) => ({title: n.title, body: n.body, tag: n.tag, url: n.data && n.data.url}));
}"""


async def test_a_pushed_message_is_shown_by_the_service_worker(browser: Browser, server: str) -> None:
    context = await signed_in(browser, server, "alice")
    await context.grant_permissions(["notifications"], origin=server)
    page = await context.new_page()
    await page.goto("/preferences")  # with the permission granted, the page registers the service worker
    scope = await page.evaluate("navigator.serviceWorker.ready.then((registration) => registration.scope)")
    assert scope == server + "/"
    devtools = await context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    devtools.on("ServiceWorker.workerRegistrationUpdated", lambda event: registrations.extend(event["registrations"]))
    await devtools.send("ServiceWorker.enable")
    registration = await wait_until(lambda: next((r for r in registrations if r["scopeURL"] == scope), None))
    updates = [{"seq": 9, "text": "The season finale is on Sunday"}, {"seq": 8, "text": "A new villain"}]
    payload = Batch({"_id": "d"}, "sherlock", "Sherlock", updates).payload().decode()
    await devtools.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": server, "registrationId": registration["registrationId"], "data": payload},
    )
    shown = await wait_until(lambda: page.evaluate(NOTIFICATIONS))
    assert shown == [{"title": "2 new updates for Sherlock", "body": "The season finale is on Sunday",
                      "tag": "gossip-sherlock", "url": "/notifications"}]  # fmt: skip
    assert json.loads(payload)["count"] == 2
    worker = await page.request.get("/sw.js")
    assert worker.headers["content-type"].startswith("application/javascript")
    await context.close()


async def test_the_page_lists_devices_and_removes_one(browser: Browser, server: str) -> None:
    context = await signed_in(browser, server, "bea")
    for endpoint in ("https://push.example.net/1", "https://push.example.net/2"):
        response = await context.request.post(
            "/api/me/push", data={**Subscription(endpoint).to_json(), "name": endpoint[-1]}
        )
        assert response.ok
    page = await context.new_page()
    await page.goto("/preferences")
    rows = page.locator("#push-devices li")
    await expect(rows).to_have_count(2)
    await expect(rows.first).to_contain_text("1 · added ")
    await rows.first.locator("button", has_text="Remove").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("2 · added ")
    assert [d["name"] for d in await (await context.request.get("/api/me/push")).json()] == ["2"]
    await context.close()


async def test_what_is_set_to_push_with_no_device_on_is_said_to_reach_none(browser: Browser, server: str) -> None:
    context = await signed_in(browser, server, "cal")  # follows flash, at `live`
    page = await context.new_page()
    await page.goto("/preferences")
    await expect(page.locator("#push-devices li")).to_have_text("No device has push on yet.")
    await expect(page.locator("#push-unreached")).to_be_hidden()
    await page.select_option("select[name='shows.flash']", "push")
    await page.click("#preferences button[type=submit]")
    await expect(page.locator("#push-unreached")).to_be_visible()
    device = {**Subscription("https://push.example.net/cal").to_json(), "name": "phone"}
    assert (await context.request.post("/api/me/push", data=device)).ok
    await page.reload()
    await expect(page.locator("#push-devices li")).to_have_count(1)
    await expect(page.locator("#push-unreached")).to_be_hidden()
    await page.locator("#push-devices button", has_text="Remove").click()
    await expect(page.locator("#push-unreached")).to_be_visible()
    await context.close()


async def test_blocked_notifications_are_said_in_words(browser: Browser, server: str) -> None:
    """Headless Chromium answers a permission request with "denied", as a browser where the person blocked them."""
    context = await signed_in(browser, server, "cyd")
    page = await context.new_page()
    await page.goto("/preferences")
    await page.click("#push-on")
    await expect(page.locator("#push-status")).to_contain_text("Notifications are blocked for this site")
    assert (await (await context.request.get("/api/me/push")).json()) == []
    await context.close()
