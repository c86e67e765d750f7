"""The hub's fan-out, its indexes, limits and session ends, and a feed's bounds, as pure logic."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from services.stream.feed import OVERFLOW, STALLED, Feed
from services.stream.frames import EXPIRED, PING, follows_frame, read_frame
from services.stream.hub import Hub, Marks, marks_of
from shared.auth import Caller
from shared.errors import ApiError

ALICE = Caller("u1", "alice", "s1")
TITLES = {"flash": "The Flash", "sherlock": "Sherlock"}  # the catalogue
BOB = Caller("u2", "bob", "s2")


def frame(seq: int) -> bytes:
    return f"id: {seq}\n\n".encode()


def queued(feed: Feed) -> list[bytes]:
    """What an unserved feed holds, chunk by chunk as its sender would take it: it queues all it is given."""
    return list(iter(feed.take, None))


async def drain(feed: Feed) -> bytes:
    return b"".join(queued(feed))


async def test_stalled_feed_ends_instead_of_growing() -> None:
    feed = Feed(ALICE, frozenset({"flash"}), max_frames=2)
    for seq in (1, 2, 3, 4):
        feed.offer(frame(seq))
    assert feed.too_slow == OVERFLOW
    assert queued(feed) == [frame(1) + frame(2)]


async def test_feed_is_bounded_in_bytes_too() -> None:
    feed = Feed(ALICE, None, max_frames=100, max_bytes=len(frame(1)) * 2)
    for seq in (1, 2, 3):
        feed.offer(frame(seq))
    assert feed.too_slow == OVERFLOW and queued(feed) == [frame(1) + frame(2)]


async def test_update_reaches_followers_and_everything_feeds_only() -> None:
    hub = Hub()
    flash, sherlock, everything = hub.open(ALICE, ["flash"]), hub.open(BOB, ["sherlock"]), hub.open(BOB, None)
    assert hub.publish("flash", frame(1)) == 2
    assert await drain(flash) == frame(1)
    assert await drain(sherlock) == b""
    assert await drain(everything) == frame(1)


async def test_a_personal_update_reaches_its_recipients_feeds_alone_whatever_they_carry() -> None:
    hub = Hub()
    followed, everything = hub.open(ALICE, []), hub.open(ALICE, None, resumed=1)
    others = [hub.open(BOB, ["orders"]), hub.open(BOB, None)]
    assert hub.publish_to("u1", "orders", frame(1), 1) == 1  # the feed resumed at 1 has it
    assert hub.publish_to("u1", "orders", frame(2), 2) == 2
    assert await drain(followed) == frame(1) + frame(2)
    assert await drain(everything) == frame(2)
    assert [await drain(feed) for feed in others] == [b"", b""]


async def test_a_feed_resumed_beyond_an_update_is_not_sent_it_but_its_edits_are() -> None:
    """A browser that comes back from a stream process that was ahead of this one holds updates this one has yet to
    deliver: they would reach it twice."""
    hub = Hub()
    ahead, behind = hub.open(ALICE, ["flash"], resumed=2), hub.open(BOB, None, resumed=1)
    assert [hub.publish("flash", frame(seq), seq) for seq in (1, 2, 3)] == [0, 1, 2]
    assert hub.publish("flash", b"edit of 1\n\n") == 2
    assert await drain(ahead) == frame(3) + b"edit of 1\n\n"
    assert await drain(behind) == frame(2) + frame(3) + b"edit of 1\n\n"


def following(*shows: str, last_read: int = 0) -> Marks:
    """A user who follows `shows` and mutes none."""
    return Marks(frozenset(shows), frozenset(shows), last_read)


async def test_follow_change_moves_open_feeds_and_tells_all_of_them() -> None:
    hub = Hub()
    feed, everything = hub.open(ALICE, ["flash"]), hub.open(ALICE, None, following("flash"))
    assert hub.user_changed("u1", following("sherlock"))
    hub.publish("flash", frame(1))
    hub.publish("sherlock", frame(2))
    assert await drain(feed) == follows_frame(["sherlock"]) + frame(2)
    assert await drain(everything) == follows_frame(["sherlock"]) + frame(1) + frame(2)


async def test_a_user_change_is_told_from_what_the_hub_knows() -> None:
    hub = Hub()
    feed = hub.open(ALICE, None, following("flash", last_read=5))
    assert not hub.user_changed("u1", following("flash", last_read=5))  # nothing the hub did not know: say nothing
    assert hub.user_changed("u1", following("flash", last_read=7))  # a new read mark: the caller counts and tells
    assert not hub.user_changed("u2", following("flash", last_read=9))  # no feed of bob's here
    hub.tell("u1", read_frame(7, 3))
    assert await drain(feed) == read_frame(7, 3)


async def test_muting_a_show_takes_it_off_followed_feeds_at_once() -> None:
    hub = Hub()
    user = {"follows": ["flash", "sherlock"], "last_read_seq": 0}
    feed, everything = hub.open(ALICE, ["flash", "sherlock"], marks_of(user, TITLES)), hub.open(ALICE, None)
    muted = {**user, "preferences": {"shows": {"flash": "muted"}}}
    assert hub.user_changed("u1", marks_of(muted, TITLES))  # what counts as unread changed: the caller counts it again
    assert hub.preferences_changed("u1", marks_of(muted, TITLES).preferences)  # the caller tells what they mean
    hub.publish("flash", frame(1))
    hub.publish("sherlock", frame(2))
    assert await drain(feed) == frame(2)
    assert await drain(everything) == frame(1) + frame(2)  # /events/all carries a muted show still


async def test_muting_a_personal_topic_takes_its_updates_off_followed_feeds_alone_until_heard_again() -> None:
    """Known from the user's marks, kept current by their changes: no read per delivery. /events/all carries them
    still; another topic of theirs, and another user's orders, are not affected."""
    hub = Hub()
    user = {"follows": ["flash"], "last_read_seq": 0}
    feed, everything = hub.open(ALICE, ["flash"], marks_of(user, TITLES)), hub.open(ALICE, None)
    bobs = hub.open(BOB, ["flash"])
    muted = {**user, "preferences": {"shows": {"orders": "muted"}}}
    assert hub.user_changed("u1", marks_of(muted, TITLES))  # what counts as unread changed: the caller counts it again
    assert (hub.muted(feed), hub.muted(everything)) == ({"orders"}, set())
    assert hub.publish_to("u1", "orders", frame(1), 1) == 1
    assert hub.publish_to("u1", "invoices", frame(2), 2) == 2
    assert hub.publish_to("u2", "orders", frame(3), 3) == 1
    assert hub.user_changed("u1", marks_of(user, TITLES))
    assert hub.publish_to("u1", "orders", frame(4), 4) == 2
    assert await drain(feed) == frame(2) + frame(4)
    assert await drain(everything) == frame(1) + frame(2) + frame(4)
    assert await drain(bobs) == frame(3)


async def test_preferences_that_change_no_show_are_to_be_told_once_but_count_nothing_again() -> None:
    hub = Hub()
    user = {"follows": ["flash"], "last_read_seq": 3}
    feed = hub.open(ALICE, ["flash"], marks_of(user, TITLES))
    zoned = marks_of({**user, "preferences": {"time_zone": "Europe/Paris"}}, TITLES)
    assert not hub.user_changed("u1", zoned)
    assert hub.preferences_changed("u1", zoned.preferences)
    assert not hub.user_changed("u1", zoned)
    assert not hub.preferences_changed("u1", zoned.preferences)  # told once
    assert not hub.preferences_changed("u2", zoned.preferences)  # no feed of bob's here
    assert await drain(feed) == b""  # the hub tells nothing itself: what they mean takes a read (the audience's)


def test_a_follow_of_a_show_gone_from_the_catalogue_is_neither_listed_nor_carried() -> None:
    """The stored follows keep it, so the show put back is followed again as it was."""
    user = {"follows": ["flash", "gone", "sherlock"], "preferences": {"shows": {"sherlock": "muted"}}}
    assert (marks_of(user, TITLES).follows, marks_of(user, TITLES).heard) == ({"flash", "sherlock"}, {"flash"})
    assert marks_of(user, {**TITLES, "gone": "Back"}).follows == {"flash", "gone", "sherlock"}


async def test_a_session_whose_time_is_up_ends_with_expired_and_a_renewed_one_lives_on() -> None:
    hub = Hub()
    at = datetime(2026, 11, 24, tzinfo=UTC)
    alices, bobs = hub.open(replace(ALICE, expires_at=at), ["flash"]), hub.open(replace(BOB, expires_at=at), ["flash"])
    hub.session_ends("s2", at.timestamp() + 60, at.timestamp() - 1)  # renewed
    hub.expire(at.timestamp())
    hub.publish("flash", frame(1))
    assert queued(alices) == [EXPIRED]
    assert await drain(bobs) == frame(1)


async def test_a_session_gone_ends_its_feeds_as_expired_if_its_time_was_up_else_as_revoked() -> None:
    hub = Hub()
    at = datetime(2026, 11, 24, tzinfo=UTC)
    timed_out, logged_out = hub.open(replace(ALICE, expires_at=at), None), hub.open(replace(BOB, expires_at=at), None)
    hub.session_gone("s1", at.timestamp())  # the TTL monitor's deletion
    hub.session_gone("s2", at.timestamp() - 60)  # a logout before its time
    assert queued(timed_out) == [EXPIRED]
    assert queued(logged_out) == []


async def test_a_session_cut_short_ends_only_its_own_feeds_at_once() -> None:
    hub = Hub()
    at = datetime(2026, 11, 24, tzinfo=UTC)
    cut, other = hub.open(replace(ALICE, expires_at=at), None), hub.open(replace(BOB, expires_at=at), None)
    hub.session_ends("s1", at.timestamp() - 1, at.timestamp())
    assert cut.ended and not other.ended  # bob's time is up too, but that is the heartbeat's to find


async def test_revoking_a_session_ends_only_its_feeds() -> None:
    hub = Hub()
    mine, other = hub.open(ALICE, ["flash"]), hub.open(BOB, ["flash"])
    hub.revoke("s1")
    hub.publish("flash", frame(1))
    assert queued(mine) == []
    assert await drain(other) == frame(1)


async def test_a_burst_goes_out_in_bounded_chunks() -> None:
    feed = Feed(ALICE, None)
    for seq in range(100):
        feed.offer(frame(seq))
    feed.end()
    chunks = queued(feed)
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
        await asyncio.wait_for(senders[0], 5)
    assert (hung.too_slow, hung.ended) == (STALLED, True)
    assert not (senders[1].done() or sending.ended or idle.ended or idle.too_slow)
    senders[1].cancel()


async def test_a_broadcast_reaches_every_open_feed_whatever_it_carries_and_counts_them() -> None:
    hub = Hub()
    feeds = [hub.open(ALICE, ["flash"]), hub.open(BOB, None), hub.open(BOB, [])]
    assert hub.broadcast(frame(9)) == 3
    assert [await drain(feed) for feed in feeds] == [frame(9)] * 3


def test_telling_or_revoking_one_the_hub_has_no_feed_of_does_nothing() -> None:
    hub = Hub()
    feed = hub.open(ALICE, ["flash"])
    hub.tell("nobody", frame(1))
    hub.revoke("no-session")
    assert not feed.ended and not feed._frames


async def test_the_hub_refuses_a_feed_past_its_caps_before_it_opens() -> None:
    hub = Hub(max_feeds=3, feeds_per_user=2)
    hub.open(ALICE, ["flash"])
    hub.open(ALICE, None)
    with pytest.raises(ApiError) as per_user:
        hub.open(ALICE, ["flash"])
    assert per_user.value.status == 429 and int(per_user.value.headers["retry-after"]) > 0
    last = hub.open(BOB, None)
    with pytest.raises(ApiError) as full:
        hub.open(Caller("u3", "carol", "s3"), None)
    assert full.value.status == 503 and int(full.value.headers["retry-after"]) > 0
    hub.close(last)
    hub.open(Caller("u3", "carol", "s3"), None)  # a closed feed frees its place


async def test_feeds_of_many_users_that_close_leave_nothing_of_them_in_the_hub() -> None:
    """Under churn, users and sessions come and go: a closed feed leaves no per-user or per-session state behind, and
    lets go of what its response held (it refers back to the feed)."""
    hub = Hub()

    async def sending(feed: Feed) -> None:
        await asyncio.Future()  # as a sender in a send, holding its feed

    for number in range(50):
        caller = Caller(f"u{number}", f"user{number}", f"s{number}", datetime.now(UTC))
        feed = hub.open(caller, ["flash"])
        feed.sender = asyncio.ensure_future(sending(feed))
        feed.sender.cancel()
        assert hub.close(feed)
        assert (feed.sender, feed.connection) == (None, None)
    assert (hub.users(), hub.sessions(), hub.publish("flash", frame(1))) == ([], [], 0)
    assert not hub.user_changed("u1", following("sherlock", last_read=5)), (
        "nothing is known of a user with no feed open"
    )
