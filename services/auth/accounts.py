"""Accounts, follows and read marks: the logic behind the auth pages and API, with no HTTP in it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

from pymongo.errors import DuplicateKeyError

from services.auth import throttle
from services.auth.state import Auth
from shared import presence
from shared.catalogue import Catalogue
from shared.db import MAX_INT, Database, last_seq, new_id, username_key, utcnow
from shared.errors import ApiError, invalid
from shared.rulesfile import ReservedNames
from shared.state import Core
from shared.updates import personal_topics, reading
from shared.usernames import USERNAME_RULE, is_username

PASSWORD_MIN, PASSWORD_MAX = 8, 256
# What the register page says under each field before it is filled in, and the field's error once it is broken.
RULES = {
    "username": USERNAME_RULE,
    "password": f"{PASSWORD_MIN} to {PASSWORD_MAX} characters",
}


def _validate(username: str, password: str) -> None:
    fields = {}
    if not is_username(username):
        fields["username"] = RULES["username"]
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        fields["password"] = RULES["password"]
    if fields:
        raise invalid(fields)


def user_document(
    username: str, password_hash: str, follows: Iterable[str] = (), last_read_seq: int = 0
) -> dict[str, Any]:
    """The one shape of a `users` document, for registration and for whatever writes users in bulk."""
    return {
        "_id": new_id(),
        "username": username,
        "username_key": username_key(username),
        "password_hash": password_hash,
        "follows": list(follows),
        "created_at": utcnow(),
        "last_read_seq": last_read_seq,
    }


@contextlib.asynccontextmanager
async def reserving(core: Core) -> AsyncIterator[dict[str, ReservedNames]]:
    """The watch rules' names, as the rules file says them at each registration: a rule's name is the author of its
    updates, so a user of that name would take them for their own. A rules file that cannot be read when auth starts
    stops it as it stops the stream service: auth could not say which names are free (ReservedNames says what
    happens when it breaks later)."""
    yield {"reserved_names": ReservedNames(core["settings"].watch_rules)}


def _taken() -> ApiError:
    return ApiError(409, "taken", "That username is taken.", {"username": "already taken"})


async def register(state: Auth, username: str, password: str, address: str) -> dict[str, Any]:
    """Throttled per address before the password is hashed: each attempt that gets that far counts. A watch rule's
    name is refused as a taken one is, at the same point: nothing tells the two apart."""
    _validate(username, password)
    db, passwords = state["db"], state["passwords"]
    async with passwords.turn():
        await throttle.take_registration_slot(state["buckets"], state["settings"], address)
        password_hash = await passwords.hash(password)
    # what was published before one joined is not news
    user = user_document(username, password_hash, last_read_seq=await last_seq(db))
    if user["username_key"] in state["reserved_names"].current():
        raise _taken()
    try:
        await db.users.insert_one(user)
    except DuplicateKeyError:
        raise _taken() from None
    return user


async def authenticate(
    state: Auth, username: str, password: str, address: str, device: str | None = None
) -> dict[str, Any]:
    """One generic error for an unknown name and a wrong password. The failure slots are taken before the password
    is checked, and both within a hashing turn, so that a flood is refused before it reaches the database. `device`:
    the account the browser's device cookie names; signed in there before, it is spared the account-wide cap."""
    if missing := {name: "required" for name, value in (("username", username), ("password", password)) if not value}:
        raise invalid(missing)  # blank: not a wrong guess
    db, passwords, buckets, settings = state["db"], state["passwords"], state["buckets"], state["settings"]
    key = username_key(username)
    known = device == key
    async with passwords.turn(known):
        await throttle.take_login_slot(buckets, settings, key, address, known)
        user = await db.users.find_one({"username_key": key})
        if not await passwords.verify(user["password_hash"] if user else None, password):
            raise ApiError(401, "wrong_credentials", "Wrong username or password.")
        assert user is not None
        if passwords.needs_rehash(user["password_hash"]):
            rehashed = await passwords.hash(password)
            await db.users.update_one({"_id": user["_id"]}, {"$set": {"password_hash": rehashed}})
    await throttle.logged_in(buckets, settings, key, address, known)
    return user


async def me(db: Database, catalogue: Catalogue, user: dict[str, Any] | None) -> dict[str, Any]:
    """/api/me: the user as the core's `users` lookup read them (their follows of the catalogue's shows), with their
    unread count."""
    if (read := await reading(db, user, await catalogue.titles())) is None:
        raise ApiError(401, detail="This account no longer exists.")
    return {"username": read["username"], "follows": read["follows"], "unread": read["unread"]}


async def shows(db: Database, catalogue: Catalogue, follows: Iterable[str]) -> list[dict[str, Any]]:
    """The catalogue, each show marked if it is among `follows` and with how many are watching it: the caller has the
    follows already (the pages read them with the unread badge), so the listing does not read the user again, and
    the counts are one read of the presence reports for every show."""
    followed = set(follows)
    titles = await catalogue.titles()
    counts = presence.watching(await presence.current(db, utcnow()), titles)
    return [{"slug": slug, "title": title, "followed": slug in followed, "watching": counts[slug]}
            for slug, title in titles.items()]  # fmt: skip


async def watching(db: Database, catalogue: Catalogue, slug: str) -> dict[str, int]:
    """How many people have an open feed that carries the show, on any stream process: never who."""
    await _known_show(catalogue, slug)
    return {"watching": presence.watching(await presence.current(db, utcnow()), [slug])[slug]}


async def _known_show(catalogue: Catalogue, slug: str) -> None:
    if await catalogue.title(slug) is None:
        rule = await catalogue.rule()
        raise ApiError(404, detail=f"There is no show {slug!r}: a show is {rule}.", fields={"slug": rule})


async def follow(db: Database, catalogue: Catalogue, user_id: str, slug: str) -> None:
    await _known_show(catalogue, slug)
    await db.users.update_one({"_id": user_id}, {"$addToSet": {"follows": slug}})


async def unfollow(db: Database, catalogue: Catalogue, user_id: str, slug: str) -> None:
    """The show's level goes with it, in the same write: a show no longer followed is never pushed nor in a digest,
    and followed again it starts at `live`, as a new follow does. But a level is kept by slug, and a personal watch
    rule's topic may be named as a show is (the catalogue changes while rules run): while the slug is one of the
    user's personal topics too, the level is that topic's as well and stays."""
    await _known_show(catalogue, slug)
    change: dict[str, Any] = {"$pull": {"follows": slug}}
    if slug not in await personal_topics(db, user_id):
        change["$unset"] = {f"preferences.shows.{slug}": ""}
    await db.users.update_one({"_id": user_id}, change)


async def mark_read(db: Database, user_id: str, seq: object) -> None:
    """Read marks only move forward: an older tab cannot make read updates unread again.

    So a mark beyond the newest update is brought down to it; kept as sent, it would hide every later update. A JSON
    number with no fraction is an integer, however it is written (`7.0`, `7e0`).
    """
    if isinstance(seq, float) and seq.is_integer():
        seq = int(seq)
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ApiError(422, detail="seq must be a non-negative integer.", fields={"seq": "a non-negative integer"})
    if seq > MAX_INT:
        raise ApiError(422, detail="seq is beyond 64-bit integers.", fields={"seq": f"at most {MAX_INT}"})
    newest = await last_seq(db)
    await db.users.update_one({"_id": user_id}, {"$max": {"last_read_seq": min(seq, newest)}})
