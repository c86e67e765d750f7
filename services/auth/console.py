"""The operator console: what it shows, read from MongoDB, and what an admin may do there, each action recorded in
`audit`. No HTTP in it; who is an admin is the ADMIN_USERS setting's to say."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from shared import presence, refusals
from shared.db import Database, iso_utc, new_id, username_key
from shared.errors import ApiError
from shared.limits import Rate
from shared.settings import Settings

MINUTES = 10  # publishes per minute are shown for this many minutes back, the current one included
PUBLISHES_READ = 20_000  # the most publishes read for them: the read stays bounded however busy the site is
REJECTED_SHOWN = 20
AUDIT_SHOWN = 20
TEXT_SHOWN = 200  # characters of a rejected document's text and show


def is_admin(admins: Iterable[str], username: str) -> bool:
    """Usernames are unique whatever their case, so the setting's are compared the same way."""
    return username_key(username) in {username_key(name) for name in admins}


def _when(at: Any) -> str | None:
    return iso_utc(at) if isinstance(at, datetime) else None


def _process(report: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "process": report["_id"], "users": len(report.get("users") or {}), "feeds": report.get("feeds", 0),
        "show_feeds": report.get("show_feeds") or {}, "lag": report.get("lag"),
        "reported_at": _when(report.get("reported_at")),
    }  # fmt: skip


def _feeds_per_show(processes: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for process in processes:
        total.update(process["show_feeds"])
    return dict(sorted(total.items()))


async def _publishes(db: Database, now: datetime) -> dict[str, Any]:
    """Numbered updates per minute, by their created_at, over the last MINUTES minutes: one read of at most
    PUBLISHES_READ dates, newest first; `capped` says the oldest minutes are short of what was published."""
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=MINUTES - 1)
    found = await (
        db.updates.find({"created_at": {"$gte": start}, "seq": {"$exists": True}}, {"created_at": 1, "_id": 0})
        .sort("created_at", -1)
        .limit(PUBLISHES_READ)
        .to_list()
    )
    minutes = Counter(
        document["created_at"].replace(second=0, microsecond=0)
        for document in found
        if isinstance(document.get("created_at"), datetime)
    )
    steps = (start + timedelta(minutes=step) for step in range(MINUTES))
    per_minute = [{"minute": _when(minute), "count": minutes[minute]} for minute in steps]
    return {"per_minute": per_minute, "capped": len(found) >= PUBLISHES_READ}


def _ids(text: str) -> list[object]:
    """The stored _id the console showed as `text` (its str): an ObjectId's hex, else a string or a number."""
    candidates: list[object] = [text]
    if ObjectId.is_valid(text):
        candidates.append(ObjectId(text))
    if text.lstrip("-").isdigit():
        candidates.append(int(text))
    return candidates


def _shown(value: Any) -> str:
    return str(value)[:TEXT_SHOWN] if value is not None else ""


async def _rejected(db: Database) -> list[dict[str, Any]]:
    """The newest documents of `updates` marked `rejected`, newest _id first (an ObjectId's order is its insert's)."""
    found = await db.updates.find({"rejected": {"$exists": True}}).sort("_id", -1).limit(REJECTED_SHOWN).to_list()
    return [
        {"_id": str(document["_id"]), "reason": _shown(document["rejected"]),
         "show": _shown(document.get("show")), "text": _shown(document.get("text"))}
        for document in found
    ]  # fmt: skip


async def _audit(db: Database) -> list[dict[str, Any]]:
    found = await db.audit.find({}, {"_id": 0}).sort("at", -1).limit(AUDIT_SHOWN).to_list()
    return [{**entry, "at": _when(entry.get("at"))} for entry in found]


def _bucket_kinds(settings: Settings) -> list[tuple[str, str, Rate]]:
    """The token buckets of `buckets` by the start of their key (services/auth/throttle.py, ingest's publishing
    Limit), with the limit they count for and their rate."""
    login = settings.login_window
    return [
        ("login:addr:", "login", Rate(settings.login_failures_per_address, login)),
        ("login:user-addr:", "login", Rate(settings.login_failures_per_user_address, login)),
        ("login:user:", "login", Rate(settings.login_failures_per_user, login)),
        ("register:addr:", "registration", Rate(settings.registrations_per_address, settings.registration_window)),
        ("publish:", "publish", Rate(settings.publishes_per_author, settings.publish_window)),
    ]


async def _empty_buckets(db: Database, settings: Settings) -> dict[str, int]:
    """Per limit, the buckets with no token left now, whose next request would be refused: its `full_at` is further
    off than the time one token takes to come back (shared/limits.py). One count per kind of bucket."""
    empty: Counter[str] = Counter()
    now = time.time()
    for prefix, limit, rate in _bucket_kinds(settings):
        wanted = {"_id": {"$regex": f"^{re.escape(prefix)}"}, "full_at": {"$gt": now + rate.seconds - rate.interval}}
        empty[limit] += await db.buckets.count_documents(wanted)
    return {limit: empty[limit] for limit in ("login", "registration", "publish")}


async def overview(db: Database, settings: Settings, now: datetime) -> dict[str, Any]:
    """Everything the console shows, each part from its source: the stream processes' presence reports (feeds, lag),
    every process's refusal counts (`refusals`), `buckets` (the limits refusing now), `updates` (publishes, rejected
    documents) and `audit`."""
    processes = [_process(report) for report in await presence.current(db, now)]
    return {
        "at": _when(now), "processes": processes, "feeds_per_show": _feeds_per_show(processes),
        "refusals": await refusals.totals(db, now), "empty_buckets": await _empty_buckets(db, settings),
        "publishes": await _publishes(db, now),
        "rejected": await _rejected(db), "audit": await _audit(db),
    }  # fmt: skip


async def _record(db: Database, admin: str, what: str, target: str, now: datetime) -> None:
    """insert_one, which keeps `at` a date on the embedded server too."""
    await db.audit.insert_one({"_id": new_id(), "at": now, "who": admin, "what": what, "target": target})


async def release(db: Database, admin: str, document_id: str, now: datetime) -> None:
    """The document loses its `rejected` mark, and any seq or claim with it, so that a stream process adopts it
    afresh as another program's insert: numbered anew and delivered, or rejected again if it is still wrong."""
    released = await db.updates.update_one(
        {"_id": {"$in": _ids(document_id)}, "rejected": {"$exists": True}},
        {"$unset": {"rejected": "", "seq": "", "claim": ""}},
    )
    if not released.matched_count:
        raise ApiError(404, detail=f"No rejected document has the _id {document_id!r}.")
    await _record(db, admin, "release", f"update {document_id}", now)


async def retract(db: Database, admin: str, seq: int, now: datetime) -> None:
    """Deleted: every stream process tells its feeds `retract`, and history no longer has it."""
    if not (await db.updates.delete_one({"seq": seq})).deleted_count:
        raise ApiError(404, detail=f"There is no update {seq}.")
    await _record(db, admin, "retract", f"update seq {seq}", now)


async def end_sessions(db: Database, admin: str, username: str, now: datetime) -> int:
    """Every session of the user is deleted: their open feeds end, and they must log in again."""
    user = await db.users.find_one({"username_key": username_key(username)}, {"_id": 1, "username": 1})
    if user is None:
        raise ApiError(404, detail=f"There is no user {username!r}.")
    ended = (await db.sessions.delete_many({"user_id": user["_id"]})).deleted_count
    await _record(db, admin, "end_sessions", f"user {user['username']} ({ended} sessions)", now)
    return ended
