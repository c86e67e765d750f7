"""The daily digest: the unread updates of a user's `digest` shows and personal topics, mailed once a day at their
digest hour.

The scheduler calls `send_digests` at least once a minute with its clock. A user's digest for a day is due from the
first call at or after `digest_hour` on their own clock that day, so a call missed at eight still sends at ten past;
it goes only to a verified address not unsubscribed, and only when something is unread then.

Exactly once: the send is recorded in `sends` (services/auth/sends.py) under `digest:<user id>:<local date>` by an
insert before the mail leaves, and a second insert of that key (another scheduler, a second call) is refused by the
unique `_id`. A send that fails is marked `failed` with the time of its next try, taken again by one caller alone (a
conditional update), and given up after MAX_ATTEMPTS. A process that dies between the insert and the mail leaves
`sending`, which is never retried: once too few, rather than twice."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from pymongo.errors import DuplicateKeyError

from services.auth import links
from services.auth.letters import letter
from services.auth.mailer import Mailer, NotSent, mailer_for
from services.auth.sends import kept_until
from shared.catalogue import Catalogue
from shared.db import Database, as_datetime, iso_utc
from shared.preferences import DIGEST, Preferences, followed, preferences_of
from shared.settings import Settings
from shared.state import Core
from shared.updates import unread, unread_newest

log = logging.getLogger("gossip.digest")

MOST = 50  # updates listed in one digest; the rest are counted ("and N more")
AT_ONCE = 4  # digests sent concurrently by one call
MAX_ATTEMPTS = 4
RETRY_AFTER = 300.0  # seconds before the first retry of a failed send, doubled for each one after
SENDING, SENT, FAILED, GAVE_UP = "sending", "sent", "failed", "gave up"
RECIPIENTS = {"email.verified_at": {"$exists": True}, "digest_off": {"$ne": True}}
FIELDS = {"username": 1, "follows": 1, "last_read_seq": 1, "preferences": 1, "email": 1}


@dataclass(frozen=True, slots=True)
class Due:
    """A user whose digest for their local day may go now."""

    user: dict[str, Any]
    preferences: Preferences
    shows: list[str]  # followed, at the digest level
    topics: list[str]  # every slug at the digest level: the personal updates listed are of these
    local: datetime

    @property
    def key(self) -> str:
        return f"digest:{self.user['_id']}:{self.local.date().isoformat()}"


def due(user: dict[str, Any], now: datetime, titles: Collection[str]) -> Due | None:
    """None before the user's digest hour on their clock, or when neither a show they follow nor a personal topic
    is at the digest level. The shows are the followed ones of the catalogue (`titles`): a show gone from it is
    neither listed nor counted, as on the pages."""
    preferences = preferences_of(user)
    topics, local = preferences.at_level(preferences.shows, DIGEST), preferences.local(now)
    if not topics or local.hour < preferences.digest_hour:
        return None
    return Due(
        user, preferences, preferences.at_level(followed(user.get("follows", []), titles), DIGEST), topics, local
    )


def _open(record: dict[str, Any] | None, now: datetime) -> bool:
    """Whether a day's digest may still go: never tried, or failed and its next try has come."""
    return record is None or (record["status"] == FAILED and record["retry_at"] <= now.timestamp())


async def send_digests(db: Database, mailer: Mailer, settings: Settings, now: datetime) -> int:
    """Sends every digest due at `now` (aware) that has not gone yet; returns how many went."""
    titles = await Catalogue(db).titles()  # once a round
    dues = [found async for user in db.users.find(RECIPIENTS, FIELDS) if (found := due(user, now, titles)) is not None]
    if not dues:
        return 0
    records = {record["_id"]: record async for record in db.sends.find({"_id": {"$in": [d.key for d in dues]}})}
    turns = asyncio.Semaphore(AT_ONCE)

    async def send(found: Due) -> bool:
        async with turns:
            return await _send(db, mailer, settings, found, records.get(found.key), now, titles)

    sent = sum(await asyncio.gather(*(send(found) for found in dues if _open(records.get(found.key), now))))
    if sent:
        log.info("%d digest%s sent", sent, "" if sent == 1 else "s")
    return sent


async def _send(
    db: Database,
    mailer: Mailer,
    settings: Settings,
    found: Due,
    record: dict[str, Any] | None,
    now: datetime,
    titles: dict[str, str],
) -> bool:
    user = found.user
    last_read = user.get("last_read_seq", 0)
    newest = await unread_newest(db, found.shows, user, last_read, MOST, titles, found.topics)
    if not newest:
        return False
    total = len(newest)
    if total == MOST:  # there may be more: counted, for "and N more"
        total = max(total, await unread(db, found.shows, user, last_read, topics=found.topics))
    attempt = await _claim(db, settings, found, record, now)
    if attempt is None:
        return False
    try:
        await mailer.send(_letter(settings, found, newest, total))
    except NotSent as error:
        await _failed(db, found.key, attempt, now)
        log.warning("digest %s not sent (attempt %d of %d): %s", found.key, attempt, MAX_ATTEMPTS, error)
        return False
    await db.sends.update_one({"_id": found.key}, {"$set": {"status": SENT}})
    return True


async def _claim(
    db: Database, settings: Settings, found: Due, record: dict[str, Any] | None, now: datetime
) -> int | None:
    """The attempt this caller makes, recorded before the mail leaves; None when another caller has it already."""
    if record is None:
        try:
            await db.sends.insert_one({
                "_id": found.key, "user_id": found.user["_id"], "kind": "digest", "status": SENDING,
                "attempts": 1, "created_at": now, "expires_at": kept_until(settings),
            })  # fmt: skip
        except DuplicateKeyError:
            return None
        return 1
    attempts = record["attempts"]
    taken = await db.sends.update_one(
        {"_id": found.key, "status": FAILED, "attempts": attempts},
        {"$set": {"status": SENDING}, "$inc": {"attempts": 1}},
    )
    return attempts + 1 if taken.modified_count else None


async def _failed(db: Database, key: str, attempt: int, now: datetime) -> None:
    """The next try waits RETRY_AFTER, doubled each time; `retry_at` is epoch seconds, since the embedded server
    would store a date given to $set as a string."""
    if attempt >= MAX_ATTEMPTS:
        await db.sends.update_one({"_id": key}, {"$set": {"status": GAVE_UP}})
        return
    retry_at = now.timestamp() + RETRY_AFTER * 2 ** (attempt - 1)
    await db.sends.update_one({"_id": key}, {"$set": {"status": FAILED, "retry_at": retry_at}})


def _letter(settings: Settings, found: Due, newest: list[dict[str, Any]], total: int) -> EmailMessage:
    user, address = found.user, found.user["email"]["address"]
    unsubscribe = links.unsubscribe_link(settings, user["_id"], address)
    listed = [
        {**update, "time": found.preferences.local(as_datetime(update["created_at"])).strftime("%a %d %b %H:%M"),
         "created_at": iso_utc(update["created_at"])}
        for update in newest
    ]  # fmt: skip
    context = {
        "username": user["username"], "updates": listed, "total": total, "more": total - len(listed),
        "zone": found.preferences.time_zone,
        "notifications": links.absolute(settings, "/notifications"),
        "preferences": links.absolute(settings, "/preferences"), "unsubscribe": unsubscribe,
    }  # fmt: skip
    subject = f"Gossip: {total} unread update{'' if total == 1 else 's'}"
    headers = {"List-Unsubscribe": f"<{unsubscribe}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    return letter(settings, address, subject, "digest", context, headers)


def digest_job(core: Core) -> Callable[[datetime], Awaitable[None]]:
    """The job the scheduler runs with its clock (services/auth/scheduler.py `scheduling`)."""
    db, settings, mailer = core["db"], core["settings"], mailer_for(core["settings"])

    async def run(now: datetime) -> None:
        await send_digests(db, mailer, settings, now)

    return run
