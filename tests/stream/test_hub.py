"""The hub's fan-out and the per-connection bound, as pure logic."""

from __future__ import annotations

import asyncio

import pytest

from services.stream.frames import PING, follows_frame
from services.stream.hub import Feed, Hub
from shared.auth import Caller

ALICE = Caller("u1", "alice", "s1")
BOB = Caller("u2", "bob", "s2")


def frame(seq: int) -> bytes:
    return f"id: {seq}\n\n".encode()


async def drain(feed: Feed) -> bytes:
    feed.end()
    return b"".join([chunk async for chunk in feed.frames()])


async def test_stalled_feed_ends_instead_of_growing() -> None:
    feed = Feed(ALICE, frozenset({"flash"}), max_frames=2)
    for seq in (1, 2, 3, 4):
        feed.offer(frame(seq))
    assert feed.too_slow
    assert [chunk async for chunk in feed.frames()] == [frame(1) + frame(2)]


async def test_feed_is_bounded_in_bytes_too() -> None:
    feed = Feed(ALICE, None, max_frames=100, max_bytes=len(frame(1)) * 2)
    for seq in (1, 2, 3):
        feed.offer(frame(seq))
    assert feed.too_slow and [chunk async for chunk in feed.frames()] == [frame(1) + frame(2)]


async def test_update_reaches_followers_and_everything_feeds_only() -> None:
    hub = Hub()
    flash, sherlock, everything = hub.open(ALICE, ["flash"]), hub.open(BOB, ["sherlock"]), hub.open(BOB, None)
    assert hub.publish("flash", frame(1)) == 2
    assert await drain(flash) == frame(1)
    assert await drain(sherlock) == b""
    assert await drain(everything) == frame(1)


async def test_follow_change_moves_open_feeds_and_tells_them() -> None:
    hub = Hub()
    feed, everything = hub.open(ALICE, ["flash"]), hub.open(ALICE, None)
    hub.follows_changed("u1", ["sherlock"])
    hub.publish("flash", frame(1))
    hub.publish("sherlock", frame(2))
    assert await drain(feed) == follows_frame(["sherlock"]) + frame(2)
    assert await drain(everything) == frame(1) + frame(2)


async def test_revoking_a_session_ends_only_its_feeds() -> None:
    hub = Hub()
    mine, other = hub.open(ALICE, ["flash"]), hub.open(BOB, ["flash"])
    hub.revoke("s1")
    hub.publish("flash", frame(1))
    assert [f async for f in mine.frames()] == []
    assert await drain(other) == frame(1)


async def test_a_burst_goes_out_in_bounded_chunks() -> None:
    feed = Feed(ALICE, None)
    for seq in range(100):
        feed.offer(frame(seq))
    feed.end()
    chunks = [chunk async for chunk in feed.frames()]
    assert chunks == [b"".join(frame(s) for s in range(64)), b"".join(frame(s) for s in range(64, 100))]


async def test_closed_feed_gets_nothing_and_leaves_no_trace() -> None:
    hub = Hub()
    feed = hub.open(ALICE, ["flash"])
    assert hub.close(feed) and not hub.close(feed)
    assert hub.publish("flash", frame(1)) == 0
    assert hub.users() == [] and hub.sessions() == []


async def test_a_round_of_heartbeat_shares_pings_every_feed_once() -> None:
    hub = Hub()
    feeds = [hub.open(ALICE, ["flash"]) for _ in range(5)] + [hub.open(BOB, None)]
    for share in range(3):
        hub.heartbeat(share, 3)
    assert [await drain(feed) for feed in feeds] == [PING] * 6


async def test_a_send_hung_past_the_deadline_is_cancelled_and_its_feed_ended() -> None:
    hub = Hub()
    hung, sending, idle = hub.open(ALICE, ["flash"]), hub.open(BOB, ["flash"]), hub.open(BOB, None)
    senders = [asyncio.create_task(asyncio.Event().wait()) for _ in range(2)]
    for feed, sender, began in ((hung, senders[0], 10.0), (sending, senders[1], 30.0)):
        feed.sending_since, feed.sender = began, sender
    hub.drop_stalled(before=20.0)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(senders[0], 1)
    assert hung.too_slow and hung.ended
    assert not (senders[1].done() or sending.ended or idle.ended or idle.too_slow)
    senders[1].cancel()
