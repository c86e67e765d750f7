"""The push job: who gets which Web Push message, run by the scheduler at each tick.

An update of a show a user has at the `push` level, or one addressed to them alone (a watch rule's personal update)
of a topic they have at that level, that is still unread PUSH_DELAY seconds after it was published, while the user
has no open feed anywhere (shared/presence.py) and is not in their quiet hours, goes to each of their devices: one
message per show or topic, coalesced ("3 new updates for Sherlock", with the newest text). A batch is a device, a
show and the newest update it covers; the next batch of that show on that device covers what came after it
(`devices.pushed`), or after the read mark if that is later. Held pushes (quiet hours, an open feed, a push service
asking to wait) are the same computation at a later tick, so what was held goes out coalesced.

Each batch is inserted into `sends` under its own _id before it is sent, so a restart or a second scheduler never
sends it twice. A push service's 404 or 410 removes the device; a 429, a 5xx or no answer is tried again later, at
the device's `retry_at` (kept in MongoDB, so it outlives the lease moving), with backoff and Retry-After honoured."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from services.auth.sends import kept_until
from services.auth.webpush import Answer, WebPush, b64url
from shared import presence
from shared.catalogue import Catalogue
from shared.db import Database, numbers
from shared.preferences import PUSH, preferences_of
from shared.settings import Settings
from shared.updates import WIRE_FIELDS, sees, shown

log = logging.getLogger("gossip.auth.push")

DEVICES_PER_TICK = 500  # devices looked at in one tick (well within the lease); the next carries on after the last user
UPDATES_PER_TICK = 2000  # the newest due updates read in one tick; a longer backlog is counted as that many
SENDS_AT_ONCE = 16
TTL = 24 * 3600  # seconds a push service keeps a message for a device that is offline
URGENCY = "normal"
URL = "/notifications"
TEXT_MAX = 300  # characters of the newest update's text in the message: a notification shows a few lines
MAX_ATTEMPTS = 6  # tries of one batch while the push service says 429, 5xx or nothing
BACKOFF = 30.0  # seconds before the second try, doubled for each one after
MAX_BACKOFF = 3600.0
SENDING, SENT, RETRY, FAILED, GONE = "sending", "sent", "retry", "failed", "gone"
USER_FIELDS = {"username": 1, "follows": 1, "last_read_seq": 1, "preferences": 1}
# What a due user is pushed, by kind: the followed shows at the push level, and the personal topics at it (any other
# slug at it, which only the updates addressed to them can have).
PUSH_SHOWS, PUSH_TOPICS = "push_shows", "push_topics"
KINDS = (PUSH_SHOWS, PUSH_TOPICS)


@dataclass(frozen=True, slots=True)
class Batch:
    device: dict[str, Any]
    show: str
    title: str
    updates: list[dict[str, Any]]  # newest first, every one unread

    @property
    def seq(self) -> int:
        return int(self.updates[0]["seq"])

    @property
    def key(self) -> str:
        return f"push:{self.device['_id']}:{self.show}:{self.seq}"

    @property
    def topic(self) -> str:
        """One per show, as the notification is: a message still waiting at the push service for an offline device
        is replaced by a newer one of its show. RFC 8030 allows a topic 32 characters of base64url, and push services
        refuse any other, so it is a digest of the slug, which may be longer or hold other characters."""
        return b64url(hashlib.sha256(self.show.encode()).digest()[:24])

    def payload(self) -> bytes:
        """What the service worker shows (web/static/sw.js)."""
        count = len(self.updates)
        heading = f"New update for {self.title}" if count == 1 else f"{count} new updates for {self.title}"
        text = self.updates[0]["text"]
        message = {
            "heading": heading,
            "show": self.show,
            "title": self.title,
            "count": count,
            "seq": self.seq,
            "text": text if len(text) <= TEXT_MAX else text[: TEXT_MAX - 1] + "…",
            "url": URL,
        }
        return json.dumps(message, ensure_ascii=False).encode()


def _news(updates: list[dict[str, Any]], since: int, user: dict[str, Any]) -> list[dict[str, Any]]:
    """Of a show's updates, newest first, those above `since` (they lead the list) that the user may see and that
    are not their own."""
    fresh = itertools.takewhile(lambda update: update["seq"] > since, updates)
    return [u for u in fresh if u["author"] != user["username"] and sees(user["_id"], u.get("recipient"))]


def backoff(attempts: int, asked: float | None) -> float:
    """Seconds before the next try after `attempts` failed ones: doubling, and never sooner than the push service
    asked (Retry-After)."""
    doubled: float = min(BACKOFF * 2.0 ** (attempts - 1), MAX_BACKOFF)
    return max(doubled, asked or 0.0)


class Pusher:
    """The job: `await pusher(now)`. Its reads are bounded: a page of devices, their users, the presence reports,
    and the newest due updates of those users' push shows, and of their personal push topics addressed to them,
    after the oldest mark among them."""

    def __init__(
        self, db: Database, settings: Settings, catalogue: Catalogue, webpush: WebPush, page: int = DEVICES_PER_TICK
    ) -> None:
        self.db, self.settings, self.catalogue, self.webpush, self.page = db, settings, catalogue, webpush, page
        self._after = ""  # the last user of the previous page of devices

    async def __call__(self, now: datetime) -> None:
        devices = await self._devices()
        if not devices:
            return
        users = await self._users({device["user_id"] for device in devices}, now)
        devices = [d for d in devices if d["user_id"] in users and d.get("retry_at", 0) <= now.timestamp()]
        if not devices:
            return
        batches = await self._batches(devices, users, now)
        limit = asyncio.Semaphore(SENDS_AT_ONCE)

        async def deliver(batch: Batch) -> None:
            async with limit:
                try:
                    await self._deliver(batch, now)
                except Exception:  # one device's trouble (a key stored by hand, say) must not hold up the others
                    log.exception("pushing to device %s failed; its next batch is tried", batch.device["_id"])

        await asyncio.gather(*(deliver(batch) for batch in batches))

    async def _devices(self) -> list[dict[str, Any]]:
        """The next page of devices, whole users only (a user has at most a few)."""
        found = self.db.devices.find({"user_id": {"$gt": self._after}}).sort([("user_id", 1), ("slot", 1)])
        page = await found.limit(self.page).to_list()
        if len(page) < self.page:
            self._after = ""
            return page
        last = self._after = page[-1]["user_id"]
        return [d for d in page if d["user_id"] != last] + await self.db.devices.find({"user_id": last}).to_list()

    async def _users(self, user_ids: set[str], now: datetime) -> dict[str, dict[str, Any]]:
        """Those of the users who are due pushes now: a push show followed or a personal topic at push, not quiet, no
        feed open anywhere."""
        found = await self.db.users.find({"_id": {"$in": list(user_ids)}}, USER_FIELDS).to_list()
        due = {}
        for user in found:
            preferences, follows = preferences_of(user), user.get("follows", [])
            shows, topics = preferences.at_level(follows, PUSH), preferences.unfollowed(follows, PUSH)
            if (shows or topics) and preferences.quiet_until(now) is None:
                due[user["_id"]] = {**user, PUSH_SHOWS: shows, PUSH_TOPICS: topics}
        watching = await presence.looking(self.db, list(due), now)
        return {user_id: user for user_id, user in due.items() if user_id not in watching}

    async def _batches(
        self, devices: list[dict[str, Any]], users: dict[str, dict[str, Any]], now: datetime
    ) -> list[Batch]:
        """One batch per device and show or personal topic with news for it. Followed shows' updates are read by show;
        personal topics' by recipient, the users of this page alone: all of a topic's would be everyone's orders."""
        marks = {(d["_id"], slug): self._since(d, users[d["user_id"]], slug) for d in devices
                 for kind in KINDS for slug in users[d["user_id"]][kind]}  # fmt: skip
        after = min(marks.values())
        shows = sorted({slug for user in users.values() for slug in user[PUSH_SHOWS]})
        topics = sorted({slug for user in users.values() for slug in user[PUSH_TOPICS]})
        recipients = sorted(user["_id"] for user in users.values() if user[PUSH_TOPICS])
        personal = {"recipient": {"$in": recipients}, "show": {"$in": topics}}
        read = {
            PUSH_SHOWS: await self._due_updates({"show": {"$in": shows}}, after, now) if shows else {},
            PUSH_TOPICS: await self._due_updates(personal, after, now) if topics else {},
        }
        batches = []
        for device in devices:
            user = users[device["user_id"]]
            for kind in KINDS:
                for slug in user[kind]:
                    unread = _news(read[kind].get(slug, []), marks[(device["_id"], slug)], user)
                    if unread:
                        batches.append(Batch(device, slug, unread[0]["title"], unread))
        return batches

    @staticmethod
    def _since(device: dict[str, Any], user: dict[str, Any], show: str) -> int:
        """Updates above this are news to the device: neither read nor pushed to it."""
        return max(int(user.get("last_read_seq", 0)), int(device.get("pushed", {}).get(show, 0)))

    async def _due_updates(self, which: dict[str, Any], after: int, now: datetime) -> dict[str, list[dict[str, Any]]]:
        """The newest updates `which` selects after `after` that have waited PUSH_DELAY, titled, by show, newest
        first."""
        query = {
            **which,
            "seq": numbers({"$gt": after}),
            "created_at": {"$lte": now - timedelta(seconds=self.settings.push_delay)},
            "rejected": {"$exists": False},
        }
        found = self.db.updates.find(query, WIRE_FIELDS).sort("seq", -1).limit(UPDATES_PER_TICK)
        by_show: dict[str, list[dict[str, Any]]] = {}
        for update in shown(await found.to_list(), await self.catalogue.titles()):
            by_show.setdefault(update["show"], []).append(update)
        return by_show

    async def _deliver(self, batch: Batch, now: datetime) -> None:
        if not await self._claim(batch, now):
            return
        device = batch.device
        answer = await self.webpush.send(
            device["endpoint"], device["keys"], batch.payload(), ttl=TTL, urgency=URGENCY, topic=batch.topic
        )
        await self._settle(batch, answer, now)

    async def _claim(self, batch: Batch, now: datetime) -> bool:
        """True if this process is to send the batch now: it recorded it first, or took it back from a retry. A batch
        recorded already and not waiting for a retry was sent (or is being sent) by another: the device's mark is
        moved past it, in case that one stopped before it could."""
        record = {
            "_id": batch.key, "user_id": batch.device["user_id"], "device_id": batch.device["_id"],
            "show": batch.show, "seq": batch.seq, "count": len(batch.updates), "state": SENDING,
            "created_at": now, "expires_at": kept_until(self.settings),
        }  # fmt: skip
        try:
            await self.db.sends.insert_one(record)
            return True
        except DuplicateKeyError:
            pass
        retried = await self.db.sends.update_one({"_id": batch.key, "state": RETRY}, {"$set": {"state": SENDING}})
        if retried.modified_count:
            return True
        if (await self.db.sends.find_one({"_id": batch.key}, {"state": 1}) or {}).get("state") != SENDING:
            await self._pushed(batch)
        return False

    async def _settle(self, batch: Batch, answer: Answer, now: datetime) -> None:
        device, status = batch.device, answer.status
        if 200 <= status < 300:
            await self._pushed(batch, SENT)
        elif status in (404, 410):
            log.info("push service says device %s is gone (%d): removed", device["_id"], status)
            await self.db.devices.delete_one({"_id": device["_id"]})
            await self._record(batch, GONE)
        elif status in (0, 429) or status >= 500:
            await self._retry(batch, answer, now)
        else:
            log.warning("push service refused a push to device %s with %d; not tried again", device["_id"], status)
            await self._pushed(batch, FAILED)

    async def _retry(self, batch: Batch, answer: Answer, now: datetime) -> None:
        attempts = int(batch.device.get("attempts", 0)) + 1
        if attempts >= MAX_ATTEMPTS:
            log.warning("device %s: %d tries failed (last %d); this batch is dropped", batch.device["_id"], attempts,
                        answer.status)  # fmt: skip
            await self._pushed(batch, FAILED)
            return
        # Seconds since the epoch, a number: $set would store a date as a string on the embedded server.
        retry_at = now.timestamp() + backoff(attempts, answer.retry_after)
        await self.db.devices.update_one(
            {"_id": batch.device["_id"]}, {"$set": {"retry_at": retry_at, "attempts": attempts}}
        )
        await self._record(batch, RETRY)

    async def _pushed(self, batch: Batch, state: str | None = None) -> None:
        """The batch is done with: the device's next batch of the show starts after it, and it tries afresh."""
        await self.db.devices.update_one(
            {"_id": batch.device["_id"]},
            {"$max": {f"pushed.{batch.show}": batch.seq}, "$unset": {"retry_at": "", "attempts": ""}},
        )
        if state is not None:
            await self._record(batch, state)

    async def _record(self, batch: Batch, state: str) -> None:
        await self.db.sends.update_one({"_id": batch.key}, {"$set": {"state": state}})
