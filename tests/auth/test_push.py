"""Web Push end to end: updates published over HTTP, the push job run on an injected clock, and a real push receiver
on loopback that checks each message's VAPID JWT and decrypts its body with the subscription's own key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from services.auth.push import DEVICES_PER_TICK, MAX_ATTEMPTS, MAX_BACKOFF, TTL, URL, Pusher
from services.auth.webpush import WebPush, server_key
from shared.catalogue import Catalogue
from shared.db import Database, utcnow
from shared.settings import RULES, Settings
from tests.support.accounts import registered, user_id
from tests.support.catalogue import HOSTILE_SHOWS
from tests.support.clock import Clock
from tests.support.http import async_client
from tests.support.push_receiver import PushReceiver, Subscription, b64url
from tests.support.servers import gossip_server
from tests.support.sse import events
from tests.support.updates import addressed, publish
from tests.support.waiting import wait_until

DELAY = 60.0


@dataclass
class World:
    """A Gossip server, a push receiver, alice with push on for Sherlock and one device, and bob who publishes."""

    settings: Settings
    url: str
    db: Database
    receiver: PushReceiver
    alice: httpx.AsyncClient
    bob: httpx.AsyncClient
    device: Subscription
    http: httpx.AsyncClient  # the push job's own client

    def pusher(self, page: int = DEVICES_PER_TICK, **changes: Any) -> Pusher:
        settings = replace(self.settings, **changes)
        webpush = WebPush(server_key(settings), settings.vapid_subject, self.http)
        return Pusher(self.db, settings, Catalogue(self.db), webpush, page)

    async def publish(self, *texts: str, show: str = "sherlock") -> list[dict[str, Any]]:
        return [await publish(self.bob, show, text) for text in texts]

    async def set_preferences(self, **preferences: Any) -> None:
        """Alice's, as the Preferences page saves them."""
        response = await self.alice.put("/api/me/preferences", json=preferences)
        assert response.status_code == 200, response.text


async def _turn_push_on(http: httpx.AsyncClient, receiver: PushReceiver) -> Subscription:
    device = receiver.subscription()
    assert (await http.post("/api/me/push", json=device.to_json())).status_code == 201
    return device


@pytest.fixture
async def world(settings: Settings, db: Database) -> AsyncIterator[World]:
    """The server's own scheduler ticks once at start and then only hourly: the tests run the job themselves."""
    settings = replace(settings, push_allow_http_loopback=True, push_delay=DELAY, scheduler_interval=3600.0)
    live = gossip_server(settings)
    try:
        async with async_client(base_url=live.url) as anyone:
            key = (await anyone.get("/api/push/key")).json()["key"]
        with PushReceiver(key) as receiver:
            async with (
                registered(live.url, "alice") as alice,
                registered(live.url, "bob") as bob,
                async_client() as http,
            ):
                assert (await alice.put("/api/me/follows/sherlock")).status_code == 204
                assert (await alice.put("/api/me/follows/flash")).status_code == 204
                device = await _turn_push_on(alice, receiver)
                found = World(settings, live.url, db, receiver, alice, bob, device, http)
                await found.set_preferences(shows={"sherlock": "push"})
                yield found
            assert receiver.problems == []
    finally:
        live.stop()


def later(seconds: float = DELAY + 1) -> datetime:
    """Now on the real clock (the updates' created_at) moved on by `seconds`."""
    return utcnow() + timedelta(seconds=seconds)


async def test_a_push_is_coalesced_per_show_signed_and_encrypted(world: World) -> None:
    await world.publish("Filming starts", "A new villain", "The season finale is on Sunday")
    await world.publish("Flash is live, not push", show="flash")
    started = time.monotonic()
    await world.pusher()(later())
    finished = time.monotonic()
    [message] = world.receiver.to(world.device)
    assert message.payload == {
        "heading": "3 new updates for Sherlock", "show": "sherlock", "title": "Sherlock", "count": 3,
        "seq": message.payload["seq"], "text": "The season finale is on Sunday", "url": URL,
    }  # fmt: skip
    assert (message.headers["ttl"], message.headers["urgency"]) == (str(TTL), "normal")
    assert message.claims["aud"] == world.receiver.origin
    assert started <= message.at <= finished  # sent during the round, not left to a later one
    stored = await world.db.sends.find_one({"_id": {"$regex": "^push:"}})
    assert stored is not None and stored["state"] == "sent" and stored["count"] == 3


async def test_a_bad_catalogue_document_holds_up_no_push_of_a_good_show(world: World) -> None:
    """Show documents written straight into MongoDB that are no usable show are left out of the catalogue the push
    job titles its updates from: the good show's push goes as ever."""
    await world.db.shows.insert_many(HOSTILE_SHOWS)
    await world.publish("Filming starts")
    await world.pusher()(later())
    [message] = world.receiver.to(world.device)
    assert (message.payload["title"], message.payload["count"]) == ("Sherlock", 1)


async def test_a_show_of_a_long_slug_goes_with_a_topic_push_services_take(world: World) -> None:
    """RFC 8030 allows a Topic 32 characters of base64url, and the receiver refuses any other, as push services do;
    a slug is the operator's choice and may be longer. Each show keeps a topic of its own."""
    slug = "the_good_the_bad_and_the_ugly_extended_edition"
    await world.db.shows.insert_one({"_id": slug, "title": "The Good, the Bad and the Ugly"})

    async def followed() -> bool:  # once the server's catalogue, read at most once a second, has the show
        return (await world.alice.put(f"/api/me/follows/{slug}")).status_code == 204

    await wait_until(followed)
    await world.set_preferences(shows={"sherlock": "push", slug: "push"})
    await world.publish("Tuco", show=slug)
    await world.publish("Filming starts")
    await world.pusher()(later())
    topics = {m.payload["show"]: m.headers["topic"] for m in world.receiver.to(world.device)}
    assert set(topics) == {slug, "sherlock"} and topics[slug] != topics["sherlock"]


async def test_a_personal_update_is_pushed_to_its_recipient_alone_at_the_push_level(world: World) -> None:
    """Alice's orders at `push`: her order goes to her device once, titled by its rule; Bob's, to his alone. Back at
    `live`, her next order is not pushed."""
    async with registered(world.url, "bob_buys") as buyer:
        bobs = await _turn_push_on(buyer, world.receiver)
        alice, bob = await user_id(world.db, "alice"), await user_id(world.db, "bob_buys")
        await addressed(world.db, alice, "Your order of a cup is shipped.")
        await addressed(world.db, bob, "Your order of a teapot is placed.")
        await world.set_preferences(shows={"orders": "push"})
        assert (await buyer.put("/api/me/preferences", json={"shows": {"orders": "push"}})).status_code == 200
    pusher = world.pusher()
    await pusher(later())
    await pusher(later(DELAY + 30))
    [message] = world.receiver.to(world.device)
    assert message.payload == {
        "heading": "New update for Your orders", "show": "orders", "title": "Your orders", "count": 1,
        "seq": message.payload["seq"], "text": "Your order of a cup is shipped.", "url": URL,
    }  # fmt: skip
    assert [m.payload["text"] for m in world.receiver.to(bobs)] == ["Your order of a teapot is placed."]
    sends = await world.db.sends.find({"show": "orders"}, {"_id": 0, "state": 1, "count": 1}).to_list()
    assert sends == [{"state": "sent", "count": 1}] * 2  # one record a device, as a show's
    await world.set_preferences(shows={"orders": "live"})
    await addressed(world.db, alice, "Your order of a cup is delivered.")
    await pusher(later())
    assert len(world.receiver.to(world.device)) == 1


async def test_a_personal_update_whose_topic_is_no_slug_is_never_pushed(world: World) -> None:
    """Another program wrote her personal updates with topics that are no slugs, and her preferences by hand with a
    push level for each (the API refuses them): her orders are pushed, none of those, and the job goes on."""
    topics = ["a.b", "$x", "x.$y", "z" * 500, "émission", "<script>alert(1)</script>"]
    alice = await user_id(world.db, "alice")
    for topic in topics:
        await world.db.updates.insert_one({"show": topic, "text": "hostile", "author": "dba", "recipient": alice})
        await addressed(world.db, alice, "hostile, numbered")
        await world.db.updates.update_one({"text": "hostile, numbered", "show": "orders"}, {"$set": {"show": topic}})
    await addressed(world.db, alice, "Your order of a cup is shipped.")
    user = await world.db.users.find_one({"_id": alice})
    assert user is not None  # a replace: MongoDB takes a '.' or a '$' in a field's name there, as a program may write
    user["preferences"]["shows"] = {"sherlock": "push", "orders": "push", **dict.fromkeys(topics, "push")}
    await world.db.users.replace_one({"_id": alice}, user)
    await world.pusher()(later())
    assert [(m.payload["show"], m.payload["text"]) for m in world.receiver.to(world.device)] == [
        ("orders", "Your order of a cup is shipped.")
    ]


async def test_nothing_goes_before_the_delay_nor_twice(world: World) -> None:
    [update] = await world.publish("Filming starts")
    pusher = world.pusher()
    await pusher(later(DELAY - 5))
    assert world.receiver.to(world.device) == []
    await pusher(later())
    await pusher(later(DELAY + 30))
    assert [m.payload["count"] for m in world.receiver.to(world.device)] == [1]
    await world.publish("The next one")
    await pusher(later())
    assert [(m.payload["count"], m.payload["text"]) for m in world.receiver.to(world.device)] == [
        (1, "Filming starts"), (1, "The next one"),
    ]  # fmt: skip
    assert update["seq"] < world.receiver.to(world.device)[1].payload["seq"]


async def test_what_was_read_is_not_pushed(world: World) -> None:
    [update] = await world.publish("Filming starts")
    assert (await world.alice.post("/api/me/read", json={"seq": update["seq"]})).status_code == 204
    await world.pusher()(later())
    assert world.receiver.to(world.device) == []


@pytest.mark.parametrize("status", [404, 410])
async def test_a_gone_subscription_removes_the_device(world: World, status: int) -> None:
    world.receiver.answer(world.device, status)
    await world.publish("Filming starts")
    await world.pusher()(later())
    assert [m.status for m in world.receiver.to(world.device)] == [status]
    assert (await world.alice.get("/api/me/push")).json() == []


async def test_a_429_waits_for_its_retry_after_then_goes_coalesced(world: World) -> None:
    world.receiver.answer(world.device, 429, {"Retry-After": "120"})
    await world.publish("Filming starts")
    clock, pusher = Clock(later()), world.pusher()
    await pusher(clock())
    assert [m.status for m in world.receiver.to(world.device)] == [429]
    await world.publish("A new villain")
    await pusher(clock.advance(119))  # the new update is due too, but the push service asked for two minutes
    assert len(world.receiver.to(world.device)) == 1
    await pusher(clock.advance(DELAY))
    assert [(m.status, m.payload["count"]) for m in world.receiver.to(world.device)] == [(429, 1), (201, 2)]
    await pusher(clock.advance(DELAY))
    assert len(world.receiver.to(world.device)) == 2


async def test_a_5xx_is_tried_again_after_a_backoff(world: World) -> None:
    world.receiver.answer(world.device, 503)
    await world.publish("Filming starts")
    clock, pusher = Clock(later()), world.pusher()
    await pusher(clock())
    await pusher(clock.advance(1))
    assert [m.status for m in world.receiver.to(world.device)] == [503]
    await pusher(clock.advance(60))
    assert [(m.status, m.payload["count"]) for m in world.receiver.to(world.device)] == [(503, 1), (201, 1)]


async def test_a_batch_is_given_up_after_its_tries_and_the_next_goes_as_usual(world: World) -> None:
    for _ in range(MAX_ATTEMPTS):
        world.receiver.answer(world.device, 503)
    await world.publish("Filming starts")
    clock, pusher = Clock(later()), world.pusher()
    for _ in range(MAX_ATTEMPTS + 1):
        await pusher(clock.advance(MAX_BACKOFF))
    assert [m.status for m in world.receiver.to(world.device)] == [503] * MAX_ATTEMPTS
    await world.publish("A new villain")
    await pusher(clock.advance(DELAY + 1))
    assert [(m.status, m.payload["text"]) for m in world.receiver.to(world.device)][-1] == (201, "A new villain")
    assert world.receiver.accepted(world.device)[0]["count"] == 1  # the batch given up is not sent again


async def test_quiet_hours_hold_pushes_until_they_end_then_coalesce(world: World) -> None:
    clock = Clock(later())
    local = clock().astimezone(ZoneInfo("Asia/Tokyo"))
    start, end = local - timedelta(hours=1), local + timedelta(hours=2)
    quiet = {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}
    await world.set_preferences(time_zone="Asia/Tokyo", quiet_hours=quiet)
    await world.publish("Filming starts")
    pusher = world.pusher()
    await pusher(clock())
    await world.publish("A new villain", "The season finale is on Sunday")
    await pusher(clock.advance(3600))
    assert world.receiver.to(world.device) == []
    await pusher(clock.advance(3600 + 120))  # the quiet hours are over
    [message] = world.receiver.to(world.device)
    assert (message.payload["count"], message.payload["text"]) == (3, "The season finale is on Sunday")


async def test_no_push_while_the_user_has_a_feed_open(world: World) -> None:
    """Presence is real time: the stream reports every PRESENCE_INTERVAL, so the job runs on the real clock here."""
    await world.publish("Filming starts")
    pusher = world.pusher(push_delay=0.0)
    async with events(world.alice, "/events"):
        user = await world.db.users.find_one({"username": "alice"})
        assert user is not None
        await wait_until(lambda: world.db.presence.find_one({f"users.{user['_id']}": {"$exists": True}}))
        await pusher(utcnow())
        assert world.receiver.to(world.device) == []
    await world.db.presence.delete_many({})  # as when the stream's next report has her no more
    await pusher(utcnow())
    assert [m.payload["count"] for m in world.receiver.to(world.device)] == [1]


async def test_two_jobs_at_once_send_each_batch_once(world: World) -> None:
    """Two schedulers that both believe they hold the lease (one paused past its expiry): each device still gets
    each batch once, by the record in `sends` that goes first."""
    second = await _turn_push_on(world.alice, world.receiver)
    await world.publish("Filming starts", "A new villain")
    now = later()
    await asyncio.gather(*(world.pusher()(now) for _ in range(4)))
    assert [m.payload["count"] for m in world.receiver.to(world.device)] == [2]
    assert [m.payload["count"] for m in world.receiver.to(second)] == [2]


async def _all_sent(db: Database, count: int) -> bool:
    return [send["state"] for send in await db.sends.find({}).to_list()] == ["sent"] * count


async def test_two_processes_push_each_batch_once(settings: Settings, db: Database) -> None:
    """Two whole Gossip processes with their own schedulers, on the real clock: the lease holder sends."""
    settings = replace(settings, push_allow_http_loopback=True, push_delay=0.2, scheduler_interval=0.2)
    first, second = gossip_server(settings), gossip_server(settings)
    try:
        async with async_client(base_url=first.url) as anyone:
            key = (await anyone.get("/api/push/key")).json()["key"]
        with PushReceiver(key) as receiver:
            async with registered(first.url, "alice") as alice, registered(second.url, "bob") as bob:
                assert (await alice.put("/api/me/follows/sherlock")).status_code == 204
                assert (await alice.put("/api/me/preferences", json={"shows": {"sherlock": "push"}})).status_code == 200
                device = await _turn_push_on(alice, receiver)
                await publish(bob, "sherlock", "Filming starts")
                await wait_until(lambda: receiver.to(device), timeout=10)
                await publish(bob, "sherlock", "A new villain")
                await wait_until(lambda: len(receiver.to(device)) == 2, timeout=10)
                assert sorted(m.payload["text"] for m in receiver.to(device)) == ["A new villain", "Filming starts"]
                await wait_until(lambda: _all_sent(db, 2))  # recorded once the receiver has answered
            assert receiver.problems == []
    finally:
        first.stop()
        second.stop()


async def test_an_order_told_by_the_shipped_rule_is_pushed_to_its_user(settings: Settings, db: Database) -> None:
    """End to end on the real clock: the shop writes an order, the stream's `orders` rule addresses its update to
    her, and the scheduler pushes it, once, as her `push` level for the topic says."""
    settings = replace(settings, watch_rules=RULES, push_allow_http_loopback=True, push_delay=0.2,
                       scheduler_interval=0.2)  # fmt: skip
    live = gossip_server(settings)
    try:
        async with async_client(base_url=live.url) as anyone:
            key = (await anyone.get("/api/push/key")).json()["key"]
        with PushReceiver(key) as receiver:
            async with registered(live.url, "nia") as nia:
                device = await _turn_push_on(nia, receiver)
                await db.orders.insert_one({"user": "nia", "item": "a cup", "status": "placed"})
                placed = await wait_until(lambda: db.updates.find_one({"show": "orders"}), timeout=10)
                assert (await nia.post("/api/me/read", json={"seq": placed["seq"]})).status_code == 204
                assert (await nia.put("/api/me/preferences", json={"shows": {"orders": "push"}})).status_code == 200
                await db.orders.update_one({"user": "nia"}, {"$set": {"status": "shipped"}})
                await wait_until(lambda: receiver.to(device), timeout=10)
                await wait_until(lambda: _all_sent(db, 1))
            [message] = receiver.to(device)
            assert (message.payload["title"], message.payload["count"], message.payload["text"]) == (
                "Your orders", 1, "Your order of a cup is shipped."
            )  # fmt: skip
            assert receiver.problems == []
    finally:
        live.stop()


async def test_a_batch_left_sending_by_a_dead_process_is_not_sent_again(world: World) -> None:
    """A process that died between recording a batch and sending it: once too few rather than twice. Its updates
    go out with the next batch, coalesced."""
    [update] = await world.publish("Filming starts")
    device = await world.db.devices.find_one({"endpoint": world.device.endpoint})
    assert device is not None
    await world.db.sends.insert_one({"_id": f"push:{device['_id']}:sherlock:{update['seq']}", "state": "sending"})
    await world.pusher()(later())  # a restarted process
    assert world.receiver.to(world.device) == []
    await world.publish("A new villain")
    await world.pusher()(later())
    assert [m.payload["count"] for m in world.receiver.to(world.device)] == [2]


async def test_devices_are_read_a_page_at_a_time_and_every_one_is_reached(world: World) -> None:
    """A page ends inside a user's devices: that user is read whole, and the next tick carries on after them."""
    devices = [world.device, *[await _turn_push_on(world.alice, world.receiver) for _ in range(2)]]
    async with registered(world.url, "carol") as carol:
        assert (await carol.put("/api/me/follows/sherlock")).status_code == 204
        assert (await carol.put("/api/me/preferences", json={"shows": {"sherlock": "push"}})).status_code == 200
        devices += [await _turn_push_on(carol, world.receiver) for _ in range(2)]
    await world.publish("Filming starts")
    pusher, now = world.pusher(page=2), later()
    await pusher(now)
    await pusher(now)
    assert [len(world.receiver.accepted(device)) for device in devices] == [1] * 5
    await pusher(now)
    assert [len(world.receiver.accepted(device)) for device in devices] == [1] * 5


async def test_a_device_that_cannot_be_pushed_to_does_not_hold_up_the_others(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A device written by hand with a key that is no P-256 point fails alone, in the log."""
    user = await world.db.users.find_one({"username": "alice"})
    assert user is not None
    broken = {**Subscription("https://push.example.net/broken").to_json()["keys"], "p256dh": b64url(bytes(65))}
    await world.db.devices.insert_one({"_id": "broken", "user_id": user["_id"], "endpoint": "https://push.example.net/b",
                                       "keys": broken, "name": "b", "added_at": utcnow(), "slot": 9})  # fmt: skip
    await world.publish("Filming starts")
    await world.pusher()(later())
    assert [m.payload["count"] for m in world.receiver.to(world.device)] == [1]
    assert "pushing to device broken failed" in caplog.text
