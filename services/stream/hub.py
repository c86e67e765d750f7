"""Who listens to what: one bounded Feed per open connection, indexed by show, user and session."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from services.stream.frames import PING, follows_frame
from shared.auth import Caller

log = logging.getLogger("gossip.stream.hub")

MAX_FRAMES = 1000
MAX_BYTES = 1 << 20
MAX_BATCH = 64


class Feed:
    """One open connection's frames, waiting to be sent; `shows=None` means every show.

    Slots, not a dict per instance: ten thousand open feeds each pay for every attribute."""

    __slots__ = (
        "_bytes",
        "_frames",
        "_max_bytes",
        "_max_frames",
        "_wake",
        "caller",
        "ended",
        "number",
        "sender",
        "sending_since",
        "shows",
        "too_slow",
    )  # fmt: skip

    def __init__(
        self,
        caller: Caller,
        shows: frozenset[str] | None,
        number: int = 0,
        max_frames: int = MAX_FRAMES,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.caller, self.shows, self.number = caller, shows, number
        self.ended = self.too_slow = False
        self.sending_since = 0.0  # when the send now under way began (time.monotonic()); 0.0 while none is
        self.sender: asyncio.Task[Any] | None = None  # the task that sends this feed's chunks, once it has sent
        self._frames: list[bytes] = []  # not a deque: an empty deque costs 700 bytes, times every open feed
        self._bytes, self._max_frames, self._max_bytes = 0, max_frames, max_bytes
        self._wake: asyncio.Future[None] | None = None  # set while the connection waits for a frame

    def offer(self, frame: bytes) -> None:
        """Never awaits: one stalled browser must not hold up the fan-out, nor grow without limit."""
        if self.ended:
            return
        if len(self._frames) >= self._max_frames or self._bytes + len(frame) > self._max_bytes:
            self.too_slow = True
            self.end()  # the browser reconnects and replays from MongoDB
            return
        self._frames.append(frame)
        self._bytes += len(frame)
        self._wakeup()

    def end(self) -> None:
        """Ends the feed after what is already queued (overflow, logout, shutdown)."""
        self.ended = True
        self._wakeup()

    def drop(self) -> None:
        """Ends a feed whose send has hung (a client that stopped reading): its queue cannot drain, so the send is
        cancelled, which ends the response. uvicorn then closes the socket once the client reads what is buffered
        or goes away, as it did after sse-starlette's own send timeout."""
        self.too_slow = True
        self.end()
        if self.sender is not None:
            self.sender.cancel()

    def _wakeup(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def frames(self) -> AsyncIterator[bytes]:
        """Whatever is queued goes out as one chunk: under a burst, one socket write carries many frames.

        A list and one future, not an asyncio.Queue: this runs once per delivered update per connection, and the
        Queue's bookkeeping cost more than the rest of the fan-out.
        """
        while True:
            if self._frames:
                chunk = b"".join(self._frames[:MAX_BATCH])
                del self._frames[:MAX_BATCH]
                self._bytes -= len(chunk)
                yield chunk
            elif self.ended:
                return
            else:
                self._wake = asyncio.get_running_loop().create_future()
                await self._wake
                self._wake = None


class Hub:
    """Fan-out in memory: delivering an update is one dictionary lookup and one queue put per follower."""

    def __init__(self) -> None:
        self._by_show: defaultdict[str, set[Feed]] = defaultdict(set)
        self._everything: set[Feed] = set()
        self._by_user: defaultdict[str, set[Feed]] = defaultdict(set)
        self._by_session: defaultdict[str, set[Feed]] = defaultdict(set)
        self._numbers = itertools.count()

    def open(self, caller: Caller, shows: Iterable[str] | None, **limits: int) -> Feed:
        feed = Feed(caller, None if shows is None else frozenset(shows), next(self._numbers), **limits)
        self._index(feed)
        self._by_user[caller.user_id].add(feed)
        self._by_session[caller.session_id or ""].add(feed)
        return feed

    def close(self, feed: Feed) -> bool:
        """Safe to call twice; True only the first time."""
        if feed not in self._by_user.get(feed.caller.user_id, ()):
            return False
        self._unindex(feed)
        for index, key in ((self._by_user, feed.caller.user_id), (self._by_session, feed.caller.session_id or "")):
            index[key].discard(feed)
            if not index[key]:
                del index[key]
        return True

    def publish(self, show: str, frame: bytes) -> int:
        """The same bytes go to every feed that carries `show`; returns how many feeds got them."""
        followers = self._by_show.get(show, ())
        for feed in followers:
            feed.offer(frame)
        for feed in self._everything:
            feed.offer(frame)
        return len(followers) + len(self._everything)

    def heartbeat(self, share: int, shares: int) -> None:
        """Pings one share of the open feeds. Called `shares` times per ping interval, it pings each feed once per
        interval, never all at the same moment, and no connection needs a timer of its own."""
        for feed in self._open():
            if feed.number % shares == share:
                feed.offer(PING)

    def drop_stalled(self, before: float) -> None:
        """Drops every feed whose send began before `before`: one sweep for all feeds instead of a timer armed
        around every send, which cost a fifth of the process's time at fan-out."""
        for feed in self._open():
            if 0.0 < feed.sending_since < before:
                log.warning("dropping a feed of %s: its client has not read for too long", feed.caller.username)
                feed.drop()

    def users(self) -> list[str]:
        return list(self._by_user)

    def sessions(self) -> list[str]:
        return list(self._by_session)

    def follows_changed(self, user_id: str, follows: Iterable[str]) -> None:
        """A follow or unfollow takes effect on the user's open feeds at once, and tells their pages."""
        shows = frozenset(follows)
        for feed in self._by_user.get(user_id, ()):
            if feed.shows is not None and feed.shows != shows:
                self._unindex(feed)
                feed.shows = shows
                self._index(feed)
                feed.offer(follows_frame(shows))

    def revoke(self, session_id: str) -> None:
        for feed in list(self._by_session.get(session_id, ())):
            feed.end()

    def end_all(self) -> None:
        for feed in self._open():
            feed.end()

    def _open(self) -> Iterator[Feed]:
        """Every open feed. Ending or dropping one only marks it; it leaves the indexes when its response ends."""
        for feeds in self._by_user.values():
            yield from feeds

    def _index(self, feed: Feed) -> None:
        if feed.shows is None:
            self._everything.add(feed)
        for show in feed.shows or ():
            self._by_show[show].add(feed)

    def _unindex(self, feed: Feed) -> None:
        self._everything.discard(feed)
        for show in feed.shows or ():
            self._by_show[show].discard(feed)
            if not self._by_show[show]:
                del self._by_show[show]
