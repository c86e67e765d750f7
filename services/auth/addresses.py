"""A user's email address: given, proved theirs through a signed link mailed to it, removed; and whether the digest
goes to it. No HTTP in here.

Stored on the user as `email` {"address", "added_at", "verified_at" once proved} and `digest_off` (true after an
unsubscribe). Nothing but the check itself is mailed to an address until it is verified, and a new address starts
unverified again."""

from __future__ import annotations

from typing import Any

from email_validator import EmailNotValidError, validate_email

from services.auth import links, throttle
from services.auth.letters import letter
from services.auth.mailer import NotSent
from services.auth.state import Auth
from shared.db import Database, with_now
from shared.errors import ApiError
from shared.settings import Settings

MAX_ADDRESS = 254  # characters: the most an address can have and still be sent to (RFC 5321's path limit)
VERIFIED, ALREADY, PENDING = "verified", "already verified", "pending"


def checked(raw: str) -> str:
    """The address in its normal form (the domain lower-cased and in Unicode), or a 422 naming the field. Its syntax
    only: whether the domain takes mail would need the network, and the mailed link proves it anyway."""
    if not raw.strip():
        raise ApiError(422, detail="Give an email address.", fields={"email": "required"})
    try:
        address = validate_email(raw.strip(), check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ApiError(422, detail="That is not an email address.", fields={"email": str(error)}) from None
    if max(len(raw), len(address)) > MAX_ADDRESS:  # as given, as the API document counts it, and as mail goes to it
        raise ApiError(422, detail="That address is too long.", fields={"email": f"at most {MAX_ADDRESS} characters"})
    return address


async def _user(db: Database, user_id: str) -> dict[str, Any]:
    user = await db.users.find_one({"_id": user_id}, {"username": 1, "email": 1, "digest_off": 1})
    if user is None:
        raise ApiError(401, detail="This account no longer exists.")
    return user


def status(user: dict[str, Any]) -> dict[str, Any]:
    """What GET /api/me/email answers and the Preferences page shows: `digest` is false once unsubscribed."""
    email = user.get("email") or {}
    return {
        "email": email.get("address"),
        "verified": "verified_at" in email,
        "digest": not user.get("digest_off", False),
    }


async def status_of(db: Database, user_id: str) -> dict[str, Any]:
    return status(await _user(db, user_id))


async def _take_slot(state: Auth, user: dict[str, Any], address: str) -> None:
    """Before anything is written or sent: a refused change leaves the address as it was."""
    await throttle.take_check_mail_slot(state["buckets"], state["settings"], user["_id"], address)


async def _mail_check(state: Auth, user: dict[str, Any], address: str) -> None:
    """The link that proves the address, mailed to it."""
    settings = state["settings"]
    context = {"username": user["username"], "link": links.verify_link(settings, user["_id"], address)}
    try:
        await state["mailer"].send(letter(settings, address, "Confirm your address for Gossip", "verify", context))
    except NotSent:
        detail = "The mail to check this address could not be sent just now. Ask for it again in a while."
        raise ApiError(503, "not_sent", detail) from None


async def change(state: Auth, user_id: str, raw: str) -> dict[str, Any]:
    """Sets the address and mails the check to it. The same address again keeps it as it is, and mails the check
    again if it is not verified yet; a new one replaces the old and starts unverified."""
    address, db = checked(raw), state["db"]
    user = await _user(db, user_id)
    stored = user.get("email") or {}
    if stored.get("address") == address and "verified_at" in stored:
        return status(user)
    await _take_slot(state, user, address)
    if stored.get("address") != address:
        change = {"$set": {"email.address": address}, "$unset": {"email.verified_at": ""}}
        await db.users.update_one({"_id": user_id}, with_now(change, "email.added_at"))
    await _mail_check(state, user, address)
    return status({**user, "email": {"address": address}})


async def resend(state: Auth, user_id: str) -> None:
    user = await _user(state["db"], user_id)
    stored = user.get("email") or {}
    if "address" not in stored:
        raise ApiError(409, "no_address", "There is no address to check: add one first.")
    if "verified_at" in stored:
        raise ApiError(409, "verified", "This address is verified already.")
    await _take_slot(state, user, stored["address"])
    await _mail_check(state, user, stored["address"])


async def remove(db: Database, user_id: str) -> None:
    """Idempotent. Links sent to the address stop working, since it is no longer the user's."""
    await db.users.update_one({"_id": user_id}, {"$unset": {"email": ""}})


STALE = "This link is for an address that is no longer on the account it was sent for."


async def pending(db: Database, token: str, settings: Settings) -> str:
    """What following a verification link would do, changing nothing: PENDING, ALREADY, or the 400 `verify` gives.
    The page a link opens says this and asks; only its button verifies, since mail programs' link scanners open
    every link in a mail."""
    user_id, address = links.verify_claim(settings, token)
    user = await db.users.find_one({"_id": user_id, "email.address": address}, {"email": 1})
    if user is None:
        raise ApiError(400, "stale_link", STALE)
    return ALREADY if "verified_at" in user["email"] else PENDING


async def verify(db: Database, token: str, settings: Settings) -> str:
    """VERIFIED or ALREADY, or a 400 for a link that is expired, broken or for an address no longer the user's. A
    newly verified address gets the digest even if an earlier one was unsubscribed."""
    user_id, address = links.verify_claim(settings, token)
    done = await db.users.update_one(
        {"_id": user_id, "email.address": address, "email.verified_at": {"$exists": False}},
        with_now({"$unset": {"digest_off": ""}}, "email.verified_at"),
    )
    if done.matched_count:
        return VERIFIED
    if await db.users.find_one({"_id": user_id, "email.address": address}, {"_id": 1}):
        return ALREADY
    raise ApiError(400, "stale_link", STALE)


async def unsubscribe(db: Database, token: str, settings: Settings) -> bool:
    """Turns the digest off for the link's user, if the address is still theirs; False when it is not (it gets no
    mail from Gossip anyway)."""
    user_id, address = links.unsubscribe_claim(settings, token)
    done = await db.users.update_one({"_id": user_id, "email.address": address}, {"$set": {"digest_off": True}})
    return bool(done.matched_count)


async def set_digest(db: Database, user_id: str, on: bool) -> None:
    change = {"$unset": {"digest_off": ""}} if on else {"$set": {"digest_off": True}}
    await db.users.update_one({"_id": user_id}, change)
