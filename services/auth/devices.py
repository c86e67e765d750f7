"""A user's push devices: the browsers' push subscriptions, added, listed and removed by their owner, with no HTTP
in it. A user holds at most DEVICES_PER_USER: each device takes a numbered slot, unique per user, so that concurrent
additions cannot exceed it (as API tokens do). An endpoint belongs to one user: the browser's subscription follows
whoever registered it last, so a shared browser never shows one person's notifications to the next."""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from pymongo.errors import DuplicateKeyError

from services.auth.webpush import unb64url
from shared.db import Database, iso_utc, new_id, utcnow
from shared.errors import ApiError
from shared.updates import NO_CONTROL, NOT_BLANK

DEVICES_PER_USER = 10
ENDPOINT_MAX = 2048
NAME_MAX = 64
NAME_RULE = f"1 to {NAME_MAX} characters, not all blank, no control characters"
# A push service's URL: https, a host name or IPv4 address, a port, then any visible ASCII. The API document gives
# these patterns to clients as they are.
ENDPOINT = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[!-~]*)?$")
ENDPOINT_RULE = f"an https:// URL of at most {ENDPOINT_MAX} characters"
LOOPBACK_ENDPOINT = re.compile(
    r"^http://(127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}|localhost|\[::1\])(:[0-9]{1,5})?(/[!-~]*)?$"
)
# The browser's keys in base64url, padded or not: the P-256 point is 65 bytes, the auth secret 16.
P256DH = re.compile(r"^[A-Za-z0-9_-]{87}=?$")
AUTH = re.compile(r"^[A-Za-z0-9_-]{22}(==)?$")
BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
            ("Chromium/", "Chromium"), ("Safari/", "Safari"))  # fmt: skip
SYSTEMS = (("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iOS"), ("CrOS", "ChromeOS"), ("Windows", "Windows"),
           ("Mac OS X", "macOS"), ("Linux", "Linux"))  # fmt: skip


def device_name(user_agent: str) -> str:
    """A name a person recognises their browser by, such as "Chrome on Linux", from its User-Agent."""
    browser = next((name for mark, name in BROWSERS if mark in user_agent), "A browser")
    system = next((name for mark, name in SYSTEMS if mark in user_agent), None)
    return f"{browser} on {system}" if system else browser


def _endpoint_problem(endpoint: object, allow_http_loopback: bool) -> str | None:
    rule = ENDPOINT_RULE + (", or http:// on loopback" if allow_http_loopback else "")
    if not isinstance(endpoint, str) or len(endpoint) > ENDPOINT_MAX:
        return rule
    if ENDPOINT.match(endpoint) or (allow_http_loopback and LOOPBACK_ENDPOINT.match(endpoint)):
        return None
    return rule


def _key(value: object, pattern: re.Pattern[str]) -> bytes | None:
    if not isinstance(value, str) or not pattern.match(value):
        return None
    try:
        return unb64url(value)
    except (binascii.Error, ValueError):
        return None


def _p256dh_problem(value: object) -> str | None:
    """The browser's public key: an uncompressed P-256 point, checked to be on the curve."""
    raw = _key(value, P256DH)
    if raw is not None:
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        except ValueError:
            raw = None
    return None if raw is not None else "base64url of an uncompressed P-256 public key (65 bytes)"


def _is_name(name: object) -> bool:
    if not isinstance(name, str) or len(name) > NAME_MAX or not NOT_BLANK.search(name) or not NO_CONTROL.match(name):
        return False
    try:
        name.encode("utf-8")  # JSON can carry a lone surrogate, which no database can store
    except UnicodeEncodeError:
        return False
    return True


def check(body: Mapping[str, Any], allow_http_loopback: bool) -> tuple[str, dict[str, str], str | None]:
    """The endpoint, the keys and the given name (or None) of a subscription as PushSubscription.toJSON() gives it,
    plus an optional name; every problem named by its field at once (422)."""
    fields: dict[str, str] = {}
    if problem := _endpoint_problem(body.get("endpoint"), allow_http_loopback):
        fields["endpoint"] = problem
    expiration = body.get("expirationTime")
    if expiration is not None and (type(expiration) not in (int, float) or expiration < 0):
        fields["expirationTime"] = "null, or a time in milliseconds since the epoch"
    keys = body.get("keys")
    if not isinstance(keys, dict):
        fields["keys"] = 'an object {"p256dh", "auth"}'
        keys = {}
    elif problem := _p256dh_problem(keys.get("p256dh")):
        fields["keys.p256dh"] = problem
    if keys and _key(keys.get("auth"), AUTH) is None:
        fields["keys.auth"] = "base64url of the 16-byte authentication secret"
    name = body.get("name")
    if name is not None and not _is_name(name):
        fields["name"] = NAME_RULE
    if fields:
        raise ApiError(422, detail="This is not a push subscription: see fields.", fields=fields)
    return body["endpoint"], {"p256dh": keys["p256dh"], "auth": keys["auth"]}, name


async def add(db: Database, user_id: str, endpoint: str, keys: dict[str, str], name: str) -> tuple[str, bool]:
    """The device's id, and whether it is new. The same endpoint again is the same device (its keys refreshed);
    another user's endpoint becomes this user's."""
    for _ in range(DEVICES_PER_USER + 2):  # each retry follows another addition that won a race, of which few can be
        existing = await db.devices.find_one({"endpoint": endpoint}, {"user_id": 1})
        if existing is not None and existing["user_id"] == user_id:
            await db.devices.update_one({"_id": existing["_id"]}, {"$set": {"keys": keys}})
            return existing["_id"], False
        if existing is not None:
            await db.devices.delete_one({"_id": existing["_id"]})
        slots = {device.get("slot") for device in await db.devices.find({"user_id": user_id}, {"slot": 1}).to_list()}
        if len(slots) >= DEVICES_PER_USER:
            detail = f"You have {len(slots)} devices with push on, the most one may. Remove one you no longer use."
            raise ApiError(409, "too_many_devices", detail, {"endpoint": f"at most {DEVICES_PER_USER} devices"})
        device_id = new_id()
        device = {
            "_id": device_id, "user_id": user_id, "endpoint": endpoint, "keys": keys, "name": name,
            "added_at": utcnow(), "slot": min(set(range(DEVICES_PER_USER)) - slots),
        }  # fmt: skip
        try:
            await db.devices.insert_one(device)
        except DuplicateKeyError:
            continue
        return device_id, True
    raise ApiError(503, detail="Too many devices are being added at once; try again.", headers={"Retry-After": "1"})


async def listing(db: Database, user_id: str) -> list[dict[str, str]]:
    """Names and dates, oldest first; never the endpoint or the keys, which are the browser's secrets."""
    found = db.devices.find({"user_id": user_id}, {"name": 1, "added_at": 1}).sort("added_at", 1)
    return [{"id": d["_id"], "name": d["name"], "added_at": iso_utc(d["added_at"])} async for d in found]


async def remove(db: Database, user_id: str, device_id: str) -> None:
    result = await db.devices.delete_one({"_id": device_id, "user_id": user_id})
    if result.deleted_count == 0:
        raise ApiError(404, detail="You have no device with that id.", fields={"id": "no such device"})
