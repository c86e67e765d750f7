"""A user's own data: everything Gossip holds about them, to take away (GET /api/me/export), and the deletion of
their account (DELETE /api/me). No HTTP in it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bson import ObjectId

from services.auth import accounts
from services.auth.state import Auth
from shared.auth import Caller
from shared.catalogue import Catalogue
from shared.db import EXPIRING, Database, iso_utc, utcnow
from shared.errors import ApiError
from shared.updates import DELETED_AUTHOR, WIRE_FIELDS, shown, wire

# The collections that hold a user's own data, keyed by `user_id`: an export lists them, a deletion clears them. Each
# with the fields an export leaves out: the owner again, and what stands for a credential (the hash a session or a
# token is found by, a push subscription's keys). A part that stores more per user adds its collection here.
OWN_DATA: dict[str, tuple[str, ...]] = {
    "sessions": ("_id", "user_id", "username"),
    "tokens": ("_id", "user_id", "username", "slot"),
    "devices": ("user_id", "keys"),
    "sends": ("user_id",),
}
USER_LEFT_OUT = ("_id", "password_hash", "username_key")  # the user document's own, besides


def _plain(value: Any) -> Any:
    """A stored value as JSON: dates as ISO 8601 UTC text, ObjectIds as hex."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _without(document: Mapping[str, Any], left_out: tuple[str, ...]) -> dict[str, Any]:
    return {key: _plain(value) for key, value in document.items() if key not in left_out}


async def export(db: Database, catalogue: Catalogue, user_id: str) -> dict[str, Any]:
    """Everything about the user: their document (preferences, email address, read mark and follows among it), their
    sessions, API tokens, devices and sends, and the updates they published. Never a hash of anything."""
    user = await db.users.find_one({"_id": user_id})
    if user is None:
        raise ApiError(401, detail="This account no longer exists.")
    now = utcnow()
    found: dict[str, Any] = {"exported_at": iso_utc(now), "user": _without(user, USER_LEFT_OUT)}
    for name, left_out in OWN_DATA.items():
        unexpired = {"expires_at": {"$gt": now}} if name in EXPIRING else {}  # whether or not it is deleted yet
        documents = db[name].find({"user_id": user_id, **unexpired}).sort("_id", 1)
        found[name] = [_without(document, left_out) async for document in documents]
    published = await db.updates.find({"author_id": user_id}, WIRE_FIELDS).sort("seq", 1).to_list()
    found["updates"] = [wire(update) for update in shown(published, await catalogue.titles())]
    return found


async def delete(state: Auth, caller: Caller, password: str, address: str) -> None:
    """Only with the password, checked as a login is (throttled, so that this cannot be used to guess it). The
    sessions and tokens go first, so nothing more is published; then the updates stay as by a deleted user (the
    name and the idempotency keys it scoped leave them, so a new owner of the name inherits nothing); then the rest
    of the user's data, the user document last, so that a deletion cut short is done again by asking again. Ending
    the sessions ends their open feeds (the stream hears the deletions)."""
    try:
        user = await accounts.authenticate(state, caller.username, password, address)
    except ApiError as error:
        if error.status == 401:
            raise ApiError(401, "wrong_credentials", "Wrong password.", {"password": "wrong password"}) from None
        raise
    if user["_id"] != caller.user_id:  # the session's name is another account's now: this one has gone
        raise ApiError(401, detail="This account no longer exists.")
    db = state["db"]
    for name in ("sessions", "tokens"):
        await db[name].delete_many({"user_id": caller.user_id})
    await db.updates.update_many(
        {"author_id": caller.user_id},
        {"$set": {"author": DELETED_AUTHOR}, "$unset": {"author_id": "", "idempotency_key": ""}},
    )
    for name in OWN_DATA.keys() - {"sessions", "tokens"}:
        await db[name].delete_many({"user_id": caller.user_id})
    await db.users.delete_one({"_id": caller.user_id})
