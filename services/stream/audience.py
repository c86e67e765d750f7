"""Who listens, as the `users` and `sessions` collections change: follow changes and read marks reach every feed
of their user, logouts end a session's feeds, renewals move its end, and an end set in the past ends them with
`expired`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from services.stream.changes import LOOKUP, Change, ChangeStream
from services.stream.frames import preferences_frame, read_frame
from services.stream.hub import Hub, Marks, marks_of
from shared.auth import session_end
from shared.catalogue import Catalogue
from shared.db import Database
from shared.preferences import Preferences
from shared.settings import SESSION_ABSOLUTE_AGE
from shared.state import USER_FIELDS
from shared.updates import COUNT_CAP, personal_topics, unread

log = logging.getLogger("gossip.stream.audience")
SESSION_DATES = {"expires_at": 1, "created_at": 1}  # what a session's end is made of (shared.auth.session_end)


async def told_read(
    db: Database, user_id: str, user: Mapping[str, Any], marks: Marks, delivered: Callable[[], int]
) -> bytes:
    """The `read` event of the user's read mark, with the unread count as of the last update `delivered` says the
    feed was sent, and of those delivered while counting, up to COUNT_CAP."""
    counted, upto, reader = 0, 0, {"_id": user_id, "username": user.get("username", "")}
    while upto < (ceiling := delivered()) and counted < COUNT_CAP:
        counted += await unread(db, marks.heard, reader, max(marks.last_read, upto), ceiling, muted=marks.muted)
        upto = ceiling
    return read_frame(marks.last_read, min(counted, COUNT_CAP))


class Audience:
    """`delivered` says up to which seq the feeds have been sent updates: a read event's unread count is as of it.
    `lifetime`: SESSION_ABSOLUTE_AGE, past which no renewal keeps a session's feeds open."""

    def __init__(
        self,
        db: Database,
        hub: Hub,
        catalogue: Catalogue,
        delivered: Callable[[], int],
        lifetime: float = SESSION_ABSOLUTE_AGE,
    ) -> None:
        self.db, self.hub, self.catalogue, self.delivered, self.lifetime = db, hub, catalogue, delivered, lifetime

    def streams(self) -> list[ChangeStream]:
        return [
            ChangeStream(self.db.users, [{"$match": {"operationType": {"$in": ["update", "replace"]}}}],
                       self._resync_users, self._on_user, pause=0.05, options=LOOKUP),
            ChangeStream(self.db.sessions, [{"$match": {"operationType": {"$in": ["delete", "update", "replace"]}}}],
                       self._resync_sessions, self._on_session, options=LOOKUP),
        ]  # fmt: skip

    async def _on_user(self, change: Change) -> None:
        user = change.get("fullDocument")
        if user is not None:
            await self._user_changed(change["documentKey"]["_id"], user)

    async def _user_changed(self, user_id: str, user: dict[str, Any]) -> None:
        """A follow change, a show muted or heard again, or a new read mark (POST /api/me/read, from any tab or
        device) reaches every feed of the user with the unread count as of the last update those feeds were sent, so
        no page has to guess it; new preferences, with what they mean (`_preferences_frame`)."""
        titles = await self.catalogue.titles()
        now = marks_of(user, titles)
        changed = self.hub.user_changed(user_id, now)
        if self.hub.preferences_changed(user_id, now.preferences):
            self.hub.tell(user_id, await self._preferences_frame(user_id, now.preferences, titles))
        if not changed:
            return
        self.hub.tell(user_id, await told_read(self.db, user_id, user, now, self.delivered))

    async def _preferences_frame(self, user_id: str, preferences: Preferences, titles: Collection[str]) -> bytes:
        """The preferences as GET /api/me/preferences answers them (`Preferences.meaningful`). The user's personal
        topics are read only when a level is set for a slug that is no show of the catalogue, which only they can
        make mean something: most users' changes read nothing here."""
        topics = await personal_topics(self.db, user_id) if preferences.uncatalogued(titles) else {}
        return preferences_frame(preferences.meaningful(titles, topics).to_json())

    async def _resync_users(self) -> None:
        """Follow and read-mark changes made while no stream was open."""
        async for user in self.db.users.find({"_id": {"$in": self.hub.users()}}, USER_FIELDS):
            await self._user_changed(user["_id"], user)

    async def _on_session(self, change: Change) -> None:
        session_key = change["documentKey"]["_id"]
        if change["operationType"] == "delete":
            self.hub.session_gone(session_key, time.time())
        elif (session := change.get("fullDocument")) is not None:
            self.session_ends(session_key, session)

    def session_ends(self, session_key: str, session: dict[str, Any]) -> None:
        """A renewal moves a session's end later, never past its absolute end; an end set in the past ends its feeds
        at once. A session whose dates are not dates (written by hand) is left as it was: failing here would restart
        the change stream for ever."""
        try:
            ends = session_end(session, self.lifetime).timestamp()
        except TypeError:
            log.warning("a session's end is not a date: %r", session.get("expires_at"))
            return
        self.hub.session_ends(session_key, ends, time.time())

    async def _resync_sessions(self) -> None:
        """Sessions revoked, renewed or cut short while no stream was open."""
        open_sessions = self.hub.sessions()
        alive = [session async for session in self.db.sessions.find({"_id": {"$in": open_sessions}}, SESSION_DATES)]
        for session_key in set(open_sessions) - {session["_id"] for session in alive}:
            self.hub.session_gone(session_key, time.time())
        for session in alive:
            self.session_ends(session["_id"], session)
