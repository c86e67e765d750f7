"""Failed logins per client address, per account from one address and per account from everywhere, and
registrations per address: token buckets in MongoDB (shared/limits.py), so that every auth process agrees.

A login takes its failure slots before the password is checked, so concurrent attempts cannot exceed the limits:
forty wrong passwords sent at once from one address reach the check five times, not forty. A good password gives
the slots back.

A stranger who knows a username must not keep its owner out. So the tight limit on an account counts per (account,
address), and the account as a whole has a much higher cap, which still stops a guess spread over many addresses.
A browser that has signed in to the account before (services/auth/browsers.py) is not refused by that cap, nor
counted in it: a distributed flood cannot lock the owner's own browser out."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator
from typing import Any

from shared import tasks
from shared.limits import Buckets, Rate, refusal
from shared.settings import Settings
from shared.state import Core

FAILED = "Too many failed logins. Wait a moment and try again."
REGISTERED = "Too many accounts were registered from your address. Try again later."
SWEEP_EVERY = 60.0  # seconds between deletions of full buckets


def client(address: str) -> str:
    """Whom a per-address limit counts: an IPv4 address, or an IPv6 address's /64, since a host picks addresses
    within its /64 at will (privacy addresses), and one counted per address could try again from a fresh one."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # no address known (a server that gave none): everyone shares that bucket
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network((ip, 64), strict=False))
    return str(ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else ip)


NAME_KEPT = 64  # of a username in its bucket's key: longer than any account's, so long guesses share a bucket


def _login(settings: Settings, username_key: str, address: str, known: bool) -> list[tuple[str, Rate]]:
    """Windows are short, so that an attacker cannot lock a real user out for long. A login's username can be as
    long as its body allows: cut, it cannot make bucket keys of kilobytes, and a cut one is no account's. `known`:
    the browser has signed in to this account before, and the account-wide cap is not asked."""
    account, origin = username_key[:NAME_KEPT], client(address)
    window = settings.login_window
    slots = [
        (f"login:addr:{origin}", Rate(settings.login_failures_per_address, window)),
        (f"login:user-addr:{account}:{origin}", Rate(settings.login_failures_per_user_address, window)),
    ]
    if not known:
        slots.append((f"login:user:{account}", Rate(settings.login_failures_per_user, window)))
    return slots


async def take_login_slot(
    buckets: Buckets, settings: Settings, username_key: str, address: str, known: bool = False
) -> None:
    """429 with Retry-After once the address, the account from that address or the account as a whole has no
    failures left. All are asked at once (the caller holds a hashing turn meanwhile); a slot one of them gave is
    given back when another refuses, since a refused attempt checks no password: a locked account does not use up
    its address's tries, nor the reverse."""
    slots = _login(settings, username_key, address, known)
    waits = await asyncio.gather(*(buckets.take(key, rate) for key, rate in slots))
    if any(waits):
        await asyncio.gather(
            *(buckets.give_back(key, rate) for (key, rate), wait in zip(slots, waits, strict=True) if not wait)
        )
        raise refusal("login", 429, FAILED, max(waits))


async def logged_in(buckets: Buckets, settings: Settings, username_key: str, address: str, known: bool = False) -> None:
    """The account's earlier failures from this address are forgotten, and this attempt was no failure of the
    address nor of the account. The account-wide failures stand: the owner signing in must not give a distributed
    guess a fresh allowance."""
    address_slot, (pair_key, _), *account = _login(settings, username_key, address, known)
    given_back = (buckets.give_back(key, rate) for key, rate in [address_slot, *account])
    await asyncio.gather(buckets.fill(pair_key), *given_back)


async def take_registration_slot(buckets: Buckets, settings: Settings, address: str) -> None:
    rate = Rate(settings.registrations_per_address, settings.registration_window)
    if wait := await buckets.take(f"register:addr:{client(address)}", rate):
        raise refusal("registration", 429, REGISTERED, wait)


CHECKS = "Too many mails to check an address were sent. Wait a while and try again."


async def take_check_mail_slot(buckets: Buckets, settings: Settings, user_id: str, address: str) -> None:
    """Per user and per address, so that neither one account nor many can mail-bomb an address through Gossip. A
    slot one gave is given back when the other refuses, since no mail goes then."""
    rate = Rate(settings.verification_mails, settings.verification_window)
    keys = (f"check:user:{user_id}", f"check:to:{address.casefold()}")
    waits = await asyncio.gather(*(buckets.take(key, rate) for key in keys))
    if any(waits):
        await asyncio.gather(*(buckets.give_back(key, rate) for key, wait in zip(keys, waits, strict=True) if not wait))
        raise refusal("verification", 429, CHECKS, max(waits))


@contextlib.asynccontextmanager
async def sweeping(core: Core) -> AsyncIterator[dict[str, Any]]:
    """Every auth process deletes the full buckets once a minute: its per-address limits are what would accumulate.
    The sweep takes every service's full buckets alike, so no other service sweeps."""
    async with tasks.repeating(core["buckets"].sweep, SWEEP_EVERY, "the sweep of full buckets"):
        yield {}
