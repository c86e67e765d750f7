"""Who listens to what: the open feeds (services/stream/feed.py) indexed by show, user and session, the limits on
how many may be open, and when each session with open feeds ends."""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.stream.feed import Feed
from services.stream.frames import EXPIRED, PING, follows_frame
from shared.auth import Caller
from shared.limits import refusal
from shared.preferences import Preferences, followed, preferences_of
from shared.presence import EVERY_SHOW

log = logging.getLogger("gossip.stream.hub")

BACK_TO_BACK = 0.001  # seconds between fan-outs under which the stream is behind (see Hub.publish)
FULL_RETRY = 30  # seconds a refused feed is told to wait: feeds close when their pages do
SHOW_SETS = 4096  # distinct follow sets shared among feeds before the table starts afresh


@dataclass(slots=True)
class Marks:
    """What the hub knows of a user with open feeds. A change to the user's document is compared with it to tell a
    follow change, a change of preferences and a new read mark apart: the embedded server's change events do not say
    which fields changed."""

    follows: frozenset[str]  # the followed shows of the catalogue
    heard: frozenset[str]  # the followed shows but the muted ones: what a feed of followed shows carries
    last_read: int = 0
    preferences: Preferences = field(default_factory=Preferences)  # as stored when the feeds were last told of them
    # Every slug muted: a personal update of one of these topics stays off the user's feeds of followed shows.
    muted: frozenset[str] = frozenset()


def marks_of(user: Mapping[str, Any], titles: Collection[str]) -> Marks:
    """A `users` document as the hub compares it, its follows those of the catalogue (`titles`): a show gone from it
    is neither listed, counted nor carried, as on the pages."""
    follows, preferences = followed(user.get("follows", []), titles), preferences_of(user)
    return Marks(frozenset(follows), frozenset(preferences.heard(follows)), user.get("last_read_seq", 0),
                 preferences, frozenset(preferences.muted()))  # fmt: skip


class Hub:
    """Fan-out in memory: delivering an update is one dictionary lookup and, per follower, one write to its
    connection or one append to its queue (Feed.offer).

    What each open feed costs here is kept small, since thousands are open: a user's or a session's feeds are a
    list (most have one or two; a set of one costs 216 bytes), and feeds that follow the same shows share one set.

    It holds at most `max_feeds` feeds (a socket each, so sized to the open-file limit) and `feeds_per_user` of one
    user: past either, a new feed is refused before its stream starts, 503 and 429."""

    def __init__(self, max_feeds: int = 100_000, feeds_per_user: int = 50, back_to_back: float = BACK_TO_BACK) -> None:
        self.max_feeds, self.feeds_per_user, self.back_to_back = max_feeds, feeds_per_user, back_to_back
        self._by_show: defaultdict[str, set[Feed]] = defaultdict(set)
        self._everything: set[Feed] = set()
        self._by_user: defaultdict[str, list[Feed]] = defaultdict(list)
        self._by_session: defaultdict[str, list[Feed]] = defaultdict(list)
        self._show_sets: dict[frozenset[str], frozenset[str]] = {}
        self._marks: dict[str, Marks] = {}  # per user with open feeds
        self._ends: dict[str, float] = {}  # per session with open feeds: when it expires (epoch seconds)
        self._numbers = itertools.count()
        self._open_count = 0
        self._fanned_out = -math.inf  # when the last publish ended (time.monotonic())

    def admit(self, caller: Caller) -> None:
        """Raises the refusal if the caller may not open one more feed here now. Asked again by `open`, since an
        endpoint asks first, before what costs a round trip, and other feeds may open while it awaits."""
        if self._open_count >= self.max_feeds:
            detail = "This server has as many live feeds open as it can hold. Try again soon."
            raise refusal("feeds", 503, detail, FULL_RETRY)
        if len(self._by_user.get(caller.user_id, ())) >= self.feeds_per_user:
            detail = f"You have {self.feeds_per_user} live feeds open, the most one may. Close some pages or tabs."
            raise refusal("feeds_per_user", 429, detail, FULL_RETRY)

    def open(
        self,
        caller: Caller,
        shows: Iterable[str] | None,
        user: Marks | None = None,
        **limits: int,
    ) -> Feed:
        """`shows`: the shows the feed carries (the user's heard ones), None for every show. `user`: the user as read
        for this feed (marks_of), or else one who hears exactly `shows`; the hub keeps what it knew if it knew
        already, since change events have kept that current. `limits`: the Feed's bounds, and `resumed`, the seq
        the client resumes from."""
        self.admit(caller)
        feed = Feed(caller, None if shows is None else self._shared(shows), next(self._numbers), **limits)
        self._index(feed)
        self._by_user[caller.user_id].append(feed)
        self._by_session[caller.session_key or ""].append(feed)
        self._open_count += 1
        if caller.user_id not in self._marks:
            user = user or Marks(frozenset(shows or ()), frozenset(shows or ()))
            user.follows, user.heard = self._shared(user.follows), self._shared(user.heard)
            self._marks[caller.user_id] = user
        if caller.session_key is not None and caller.expires_at is not None:
            self._ends.setdefault(caller.session_key, caller.expires_at.timestamp())
        return feed

    def close(self, feed: Feed) -> bool:
        """Safe to call twice; True only the first time."""
        if feed not in self._by_user.get(feed.caller.user_id, ()):
            return False
        self._open_count -= 1
        self._unindex(feed)
        for index, key, known in (
            (self._by_user, feed.caller.user_id, self._marks),
            (self._by_session, feed.caller.session_key or "", self._ends),
        ):
            index[key].remove(feed)
            if not index[key]:
                del index[key]
                known.pop(key, None)
        feed.let_go()
        return True

    def _shared(self, shows: Iterable[str]) -> frozenset[str]:
        """One set for all the feeds that follow the same shows."""
        if len(self._show_sets) >= SHOW_SETS:
            self._show_sets.clear()
        wanted = frozenset(shows)
        return self._show_sets.setdefault(wanted, wanted)

    def publish(self, show: str, frame: bytes, seq: int | None = None) -> int:
        """The same bytes go to every feed that carries `show`; returns how many feeds got them. An update (`seq`)
        skips a feed that resumed at or beyond it: a browser that comes back from another stream process, which was
        ahead of this one, has it already. Anything else (an edit) reaches every such feed.

        A frame is written to an idle feed's connection at once (server.py), one write a feed, unless this fan-out
        follows the last one back to back: the changes are coming faster than the feeds are written to, so frames
        queue and each feed's sender writes all it has at once, and a burst costs a write per feed per batch of
        updates, not per update."""
        count, direct = 0, time.monotonic() - self._fanned_out > self.back_to_back
        for feed in itertools.chain(self._by_show.get(show, ()), self._everything):
            if seq is None or seq > feed.resumed:
                feed.offer(frame, direct)
                count += 1
        self._fanned_out = time.monotonic()
        return count

    def publish_to(self, user_id: str, show: str, frame: bytes, seq: int | None = None) -> int:
        """`publish` for a personal update of the topic `show`: its frames go to its recipient's feeds alone, through
        the per-user index; to their feeds of followed shows only while they have not muted the topic, which their
        marks say: no read per delivery, and a change of preferences holds from the next frame on."""
        feeds = self._by_user.get(user_id)
        if not feeds:
            return 0
        muted, count = show in self._marks[user_id].muted, 0
        for feed in feeds:
            if (seq is None or seq > feed.resumed) and not (muted and feed.shows is not None):
                feed.offer(frame)
                count += 1
        return count

    def muted(self, feed: Feed) -> frozenset[str]:
        """The personal topics whose updates the feed leaves out: its user's muted ones on a feed of followed shows,
        none on a feed of every show (All Notifs shows them). For a replay, which reads every viewer's at once."""
        marks = self._marks.get(feed.caller.user_id)
        return marks.muted if marks is not None and feed.shows is not None else frozenset()

    def broadcast(self, frame: bytes) -> int:
        """The same bytes to every open feed, whatever it carries: for a retraction, whose show a delete event does
        not say; a page ignores a seq it does not show."""
        count = 0
        for feed in self._open():
            feed.offer(frame)
            count += 1
        return count

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

    def carried(self) -> dict[str, set[str]]:
        """Per user with open feeds, the shows they carry (EVERY_SHOW for a feed of every show): what the process
        reports as present (shared/presence.py)."""
        carried: dict[str, set[str]] = {}
        for user_id, feeds in self._by_user.items():
            shows = carried[user_id] = set()
            for feed in feeds:
                shows.update(feed.shows if feed.shows is not None else (EVERY_SHOW,))
        return carried

    def feed_counts(self) -> tuple[int, dict[str, int]]:
        """Open feeds in all, and per show they carry (EVERY_SHOW: feeds of every show): the operator console's
        figures, from what the fan-out keeps anyway."""
        counts = {show: len(feeds) for show, feeds in self._by_show.items() if feeds}
        if self._everything:
            counts[EVERY_SHOW] = len(self._everything)
        return self._open_count, counts

    def sessions(self) -> list[str]:
        return list(self._by_session)

    def user_changed(self, user_id: str, now: Marks) -> bool:
        """A follow, an unfollow, a muted show or topic takes effect on the user's open feeds at once: a feed of
        followed shows carries the heard ones, and leaves out the personal updates of muted topics (`publish_to`).
        Every feed of theirs (/events/all too: a page there may count only heard shows) hears of a follow change.
        True when what counts as unread may have changed (the follows, the shows heard, the topics muted or the read
        mark): the caller then counts it and tells the feeds (`tell`)."""
        marks = self._marks.get(user_id)
        if marks is None:
            return False
        follows, heard = self._shared(now.follows), self._shared(now.heard)
        was = (marks.follows, marks.heard, marks.muted, marks.last_read)
        changed = (follows, heard, now.muted, now.last_read) != was
        told = follows_frame(follows) if follows != marks.follows else None
        for feed in self._by_user[user_id] if told or heard != marks.heard else ():
            if feed.shows is not None and feed.shows != heard:
                self._unindex(feed)
                feed.carry(heard)
                self._index(feed)
            if told:
                feed.offer(told)
        marks.follows, marks.heard, marks.last_read, marks.muted = follows, heard, now.last_read, now.muted
        return changed

    def preferences_changed(self, user_id: str, preferences: Preferences) -> bool:
        """True when the user has feeds here and their stored preferences are not those the hub knew: the caller
        then tells every feed of theirs what they mean (`tell`), which may take a read of their personal topics: a
        read per change of preferences, never one per read mark or follow. What they change on the feeds (the
        shows heard, the topics muted) is `user_changed`'s."""
        marks = self._marks.get(user_id)
        if marks is None or marks.preferences == preferences:
            return False
        marks.preferences = preferences
        return True

    def tell(self, user_id: str, frame: bytes) -> None:
        """One frame to every feed of one user, through the per-user index: never a scan of all feeds."""
        for feed in self._by_user.get(user_id, ()):
            feed.offer(frame)

    def revoke(self, session_key: str) -> None:
        for feed in list(self._by_session.get(session_key, ())):
            feed.end()

    def session_ends(self, session_key: str, at: float, now: float) -> None:
        """A session's new end (epoch seconds): later once renewed; at or before `now` when cut short, which ends its
        feeds with `expired` at once. Any other session's end is left to `expire`."""
        if session_key in self._ends:
            self._ends[session_key] = at
            if at <= now:
                self._expire(session_key)

    def session_gone(self, session_key: str, now: float) -> None:
        """A deleted session: expired if its time was up (MongoDB's TTL monitor deletes it then), else revoked."""
        if self._ends.get(session_key, math.inf) <= now:
            self._expire(session_key)
        else:
            self.revoke(session_key)

    def expire(self, now: float) -> None:
        """Ends, with an `expired` event, the feeds of every session whose time is up (epoch seconds): no change
        event says so when time alone ends a session, so the heartbeat calls this."""
        for session_key in [session_key for session_key, at in self._ends.items() if at <= now]:
            self._expire(session_key)

    def _expire(self, session_key: str) -> None:
        del self._ends[session_key]
        for feed in self._by_session[session_key]:
            feed.offer(EXPIRED)
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
