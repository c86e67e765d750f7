"""The hub's fan-out and the per-connection bound, as pure logic."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from services.stream.direct import Direct
from services.stream.frames import EXPIRED, PING, follows_frame, preferences_frame, read_frame
from services.stream.hub import OVERFLOW, STALLED, Feed, Hub, Marks, marks_of
from shared.auth import Caller
from shared.errors import ApiError
from tests.support.waiting import wait_until

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
    assert feed.too_slow == OVERFLOW
    assert [chunk async for chunk in feed.frames()] == [frame(1) + frame(2)]


async def test_feed_is_bounded_in_bytes_too() -> None:
    feed = Feed(ALICE, None, max_frames=100, max_bytes=len(frame(1)) * 2)
    for seq in (1, 2, 3):
        feed.offer(frame(seq))
    assert feed.too_slow == OVERFLOW and [chunk async for chunk in feed.frames()] == [frame(1) + frame(2)]


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
    assert hub.publish_to("u1", frame(1), 1) == 1  # the feed resumed at 1 has it
    assert hub.publish_to("u1", frame(2), 2) == 2
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


async def test_muting_a_show_takes_it_off_followed_feeds_and_tells_every_feed() -> None:
    hub = Hub()
    user = {"follows": ["flash", "sherlock"], "last_read_seq": 0}
    feed, everything = hub.open(ALICE, ["flash", "sherlock"], marks_of(user)), hub.open(ALICE, None)
    muted = {**user, "preferences": {"shows": {"flash": "muted"}}}
    assert hub.user_changed("u1", marks_of(muted))  # what counts as unread changed: the caller counts it again
    hub.publish("flash", frame(1))
    hub.publish("sherlock", frame(2))
    told = preferences_frame({"shows": {"flash": "muted"}, "time_zone": "UTC", "quiet_hours": None, "digest_hour": 8})
    assert await drain(feed) == told + frame(2)
    assert await drain(everything) == told + frame(1) + frame(2)  # /events/all carries a muted show still


async def test_preferences_that_change_no_show_are_told_but_count_nothing_again() -> None:
    hub = Hub()
    user = {"follows": ["flash"], "last_read_seq": 3}
    feed = hub.open(ALICE, ["flash"], marks_of(user))
    zoned = {**user, "preferences": {"time_zone": "Europe/Paris"}}
    assert not hub.user_changed("u1", marks_of(zoned))
    assert not hub.user_changed("u1", marks_of(zoned))  # told once
    assert await drain(feed) == marks_of(zoned).preferences and b"Europe/Paris" in marks_of(zoned).preferences


async def test_a_session_whose_time_is_up_ends_with_expired_and_a_renewed_one_lives_on() -> None:
    hub = Hub()
    at = datetime(2026, 11, 24, tzinfo=UTC)
    alices, bobs = hub.open(replace(ALICE, expires_at=at), ["flash"]), hub.open(replace(BOB, expires_at=at), ["flash"])
    hub.session_ends("s2", at.timestamp() + 60, at.timestamp() - 1)  # renewed
    hub.expire(at.timestamp())
    hub.publish("flash", frame(1))
    assert [chunk async for chunk in alices.frames()] == [EXPIRED]
    assert await drain(bobs) == frame(1)


async def test_a_session_gone_ends_its_feeds_as_expired_if_its_time_was_up_else_as_revoked() -> None:
    hub = Hub()
    at = datetime(2026, 11, 24, tzinfo=UTC)
    timed_out, logged_out = hub.open(replace(ALICE, expires_at=at), None), hub.open(replace(BOB, expires_at=at), None)
    hub.session_gone("s1", at.timestamp())  # the TTL monitor's deletion
    hub.session_gone("s2", at.timestamp() - 60)  # a logout before its time
    assert [chunk async for chunk in timed_out.frames()] == [EXPIRED]
    assert [chunk async for chunk in logged_out.frames()] == []


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


class Connection:
    """What a dropped feed does to its connection, noted."""

    def __init__(self) -> None:
        self.aborted, self.linger = False, b""
        self.sock = self

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 1 << 20

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.sock if name == "socket" else default

    def setsockopt(self, level: int, option: int, value: bytes) -> None:
        self.linger = value


async def test_a_dropped_feed_resets_its_connection_instead_of_waiting_for_the_client() -> None:
    hub, connection = Hub(), Connection()
    feed = hub.open(ALICE, ["flash"], transport=connection)
    feed.sending_since = 10.0
    hub.drop_stalled(before=20.0)
    assert connection.aborted and connection.linger == struct.pack("ii", 1, 0) and feed.too_slow


@dataclass
class Wire:
    """A connection's transport as direct.py uses it: what was written, and what the client has not yet taken."""

    written: list[bytes] = field(default_factory=list)
    buffered: int = 0
    closing: bool = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing


@dataclass
class Cycle:
    """What direct.py reads of uvicorn's request cycle (tests/stream/test_direct.py checks uvicorn still has it)."""

    transport: Wire = field(default_factory=Wire)
    flow: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(write_paused=False))
    chunked_encoding: bool | None = True
    response_complete: bool = False
    disconnected: bool = False


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


async def sending(feed: Feed, history: AsyncIterator[bytes] | None = None) -> tuple[list[bytes], asyncio.Task[None]]:
    """The feed's sender, as the response runs it: what it sent, and its task."""
    sent: list[bytes] = []

    async def send_all() -> None:
        async for data in feed.frames(history):
            sent.append(data)

    return sent, asyncio.create_task(send_all())


async def test_a_frame_for_a_waiting_sender_goes_straight_to_its_connection_as_a_chunk() -> None:
    feed, cycle = Feed(ALICE, None), Cycle()
    feed.direct = Direct(cycle)
    sent, sender = await sending(feed)
    await wait_until(lambda: feed._wake is not None)
    feed.offer(frame(1))
    feed.offer(frame(2))
    assert cycle.transport.written == [chunk(frame(1)), chunk(frame(2))] and not feed._frames
    feed.end()
    await sender
    assert sent == []


async def test_a_frame_too_large_for_the_queue_is_not_written_straight_to_the_connection_either() -> None:
    feed, cycle = Feed(ALICE, None, max_bytes=100), Cycle()
    feed.direct = Direct(cycle)
    sent, sender = await sending(feed)
    await wait_until(lambda: feed._wake is not None)
    feed.offer(b"x" * 101)
    assert cycle.transport.written == [] and feed.too_slow == OVERFLOW
    feed.end()
    await sender
    assert sent == []


async def test_no_live_frame_overtakes_the_history() -> None:
    feed, cycle, more = Feed(ALICE, None), Cycle(), asyncio.Event()
    feed.direct = Direct(cycle)

    async def history() -> AsyncIterator[bytes]:
        yield frame(1)
        await more.wait()  # the database's next page
        yield frame(2)

    sent, sender = await sending(feed, history())
    await wait_until(lambda: sent == [frame(1)])
    feed.offer(frame(3))
    more.set()
    await wait_until(lambda: feed._wake is not None)
    feed.offer(frame(4))
    feed.end()
    await sender
    assert sent == [frame(1), frame(2), frame(3)] and cycle.transport.written == [chunk(frame(4))]


@pytest.mark.parametrize(
    "busy",
    [
        Cycle(Wire(buffered=1)),  # the client has not taken all that was written
        Cycle(flow=SimpleNamespace(write_paused=True)),
        Cycle(Wire(closing=True)),
        Cycle(disconnected=True),
        Cycle(response_complete=True),
        Cycle(chunked_encoding=None),  # the head has not gone out
    ],
    ids=["buffered", "paused", "closing", "disconnected", "complete", "not chunked"],
)
async def test_a_connection_that_cannot_take_a_frame_at_once_leaves_it_to_the_sender(busy: Cycle) -> None:
    feed = Feed(ALICE, None)
    feed.direct = Direct(busy)
    sent, sender = await sending(feed)
    await wait_until(lambda: feed._wake is not None)
    feed.offer(frame(1))
    feed.end()
    await sender
    assert sent == [frame(1)] and busy.transport.written == []


async def test_fan_outs_back_to_back_queue_their_frames_for_the_sender_to_write_together() -> None:
    """Changes coming faster than the feeds are written to: one write a feed per batch of updates, not per update."""
    hub, cycle = Hub(back_to_back=3600.0), Cycle()  # every fan-out but the first follows the last one back to back
    feed = hub.open(ALICE, ["flash"])
    feed.direct = Direct(cycle)
    sent, sender = await sending(feed)
    await wait_until(lambda: feed._wake is not None)
    for seq in (1, 2, 3):
        hub.publish("flash", frame(seq), seq)
    feed.end()
    await sender
    assert cycle.transport.written == [chunk(frame(1))] and sent == [frame(2) + frame(3)]


class BrokenWire(Wire):
    def write(self, data: bytes) -> None:
        raise AttributeError("a uvicorn that changed underneath")


async def test_a_direct_write_that_fails_leaves_the_frame_and_the_rest_to_the_sender() -> None:
    feed, cycle = Feed(ALICE, None), Cycle(BrokenWire())
    feed.direct = Direct(cycle)
    sent, sender = await sending(feed)
    await wait_until(lambda: feed._wake is not None)
    feed.offer(frame(1))
    assert feed.direct is None
    feed.end()
    await sender
    assert sent == [frame(1)]


async def test_feeds_of_many_users_that_close_leave_nothing_of_them_in_the_hub() -> None:
    """Under churn, users and sessions come and go: a closed feed leaves no per-user or per-session state behind, and
    lets go of its sender, connection and direct path (they refer back to it)."""
    hub = Hub()

    async def sending(feed: Feed) -> None:
        await asyncio.Future()  # as a response's pump waits for frames, holding its feed

    for number in range(50):
        caller = Caller(f"u{number}", f"user{number}", f"s{number}", datetime.now(UTC))
        feed = hub.open(caller, ["flash"])
        feed.sender = asyncio.ensure_future(sending(feed))
        feed.sender.cancel()
        assert hub.close(feed)
        assert (feed.sender, feed.direct, feed.transport) == (None, None, None)
    assert (hub.users(), hub.sessions(), hub.publish("flash", frame(1))) == ([], [], 0)
    assert not hub.user_changed("u1", following("sherlock", last_read=5)), (
        "nothing is known of a user with no feed open"
    )
