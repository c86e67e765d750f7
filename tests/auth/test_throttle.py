"""Failed logins and registrations, limited per account and per client address over real HTTP: token buckets in
MongoDB, taken before the password is checked, so that concurrent attempts cannot exceed them either."""

from __future__ import annotations

import asyncio
import dataclasses

import httpx
import pytest
from prometheus_client import REGISTRY

from dev.processes import ServiceProcess
from services.auth.throttle import (
    CHECKS,
    FAILED,
    REGISTERED,
    client,
    logged_in,
    take_check_mail_slot,
    take_login_slot,
)
from shared.db import Database
from shared.errors import ApiError
from shared.limits import Buckets
from shared.settings import Settings
from tests.support.accounts import PASSWORD, json_error, registered
from tests.support.http import async_client, async_transport
from tests.support.servers import gauge, serving

WRONG = "not-the-password"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Windows long enough that no failure is forgiven while a test runs, small limits per address (a hash takes a
    tenth of a second or more), and a long wait for a hashing turn, since these tests send attempts at once and
    count what each was answered."""
    return dataclasses.replace(
        settings, login_window=3600, login_failures_per_address=10, registrations_per_address=3,
        registration_window=3600, hash_wait=30,
    )  # fmt: skip


def from_address(server: str, address: str) -> httpx.AsyncClient:
    """A client whose connections come from `address`: all of 127/8 is loopback on Linux."""
    transport = async_transport(local_address=address)
    return async_client(base_url=server, transport=transport, timeout=30)


async def login(http: httpx.AsyncClient, username: str, password: str = WRONG) -> httpx.Response:
    return await http.post("/api/auth/login", json={"username": username, "password": password})


def refusals(limit: str) -> float:
    """How many refusals this process's services have counted for `limit` (the test servers run in it)."""
    return REGISTRY.get_sample_value("gossip_refusals_total", {"limit": limit}) or 0.0


async def test_failed_logins_are_throttled_per_account(alice: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    statuses = [(await login(client, "alice")).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    throttled = await login(client, "alice", PASSWORD)
    assert json_error(throttled)[:2] == (429, "throttled")  # even the right password waits
    assert 1 <= int(throttled.headers["retry-after"]) <= 720  # a slot comes back every 3600 s / 5


@pytest.mark.parametrize(
    ("address", "counted"),
    [
        ("127.0.0.9", "127.0.0.9"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),  # the same host, by another of its addresses
        ("::ffff:10.0.0.1", "10.0.0.1"),
        ("unknown", "unknown"),
    ],
)
def test_a_limit_per_address_counts_an_ipv6_client_by_its_64(address: str, counted: str) -> None:
    assert client(address) == counted


async def test_a_long_username_guessed_makes_no_long_bucket_key(client: httpx.AsyncClient, db: Database) -> None:
    assert (await login(client, "x" * 10_000)).status_code == 401
    assert [len(bucket["_id"]) async for bucket in db.buckets.find({"_id": {"$regex": "^login:user:"}})] == [
        len("login:user:") + 64
    ]


async def test_a_strangers_flood_from_many_addresses_does_not_lock_the_owner_out(settings: Settings) -> None:
    """Five wrong passwords a minute used to keep an account's owner out for good. Now the tight limit is per
    (account, address), the account-wide cap is higher, and the owner's known browser is not refused by that cap."""
    capped = dataclasses.replace(settings, login_failures_per_user=12)
    with serving(capped) as server:
        async with from_address(server, "127.0.1.1") as known, from_address(server, "127.0.1.1") as fresh:
            assert (await known.post("/api/auth/register", json={"username": "alice", "password": PASSWORD})).is_success
            flood = [from_address(server, f"127.0.2.{n}") for n in range(1, 6)]
            first = [(await login(http, "alice")).status_code for http in flood[:2] for _ in range(8)]
            assert first == ([401] * 5 + [429] * 3) * 2  # five per address, then refused there
            assert (await login(fresh, "alice", PASSWORD)).status_code == 200  # the owner, from their own address

            rest = [(await login(http, "alice")).status_code for http in flood[2:] for _ in range(8)]
            assert rest.count(401) == 2 and set(rest) == {401, 429}  # the account-wide cap stops the guess at 12
            unknown, forged = from_address(server, "127.0.1.1"), from_address(server, "127.0.1.1")
            assert (await login(unknown, "alice", PASSWORD)).status_code == 429  # a browser new to the account
            forged.cookies.set("gossip_device", "alice")
            assert (await login(forged, "alice", PASSWORD)).status_code == 429  # a device cookie must be signed
            assert (await login(known, "alice", PASSWORD)).status_code == 200  # the browsers that signed in before
            assert (await login(fresh, "alice", PASSWORD)).status_code == 200
            for http in [*flood, unknown, forged]:
                await http.aclose()


async def test_failed_logins_are_throttled_per_address(server: str) -> None:
    before = refusals("login")
    async with from_address(server, "127.0.0.2") as http, from_address(server, "127.0.0.3") as other:
        responses = [await login(http, f"user{i}") for i in range(11)]
        assert [response.status_code for response in responses] == [401] * 10 + [429]
        assert responses[-1].json()["detail"] == FAILED
        assert (await login(other, "user0")).status_code == 401  # another address has its own
    assert refusals("login") == before + 1


async def test_attempts_a_locked_account_refuses_do_not_use_up_the_addresses_tries(server: str) -> None:
    """They check no password; counted against the address, they would lock out everyone behind it."""
    async with registered(server, "alice"), from_address(server, "127.0.0.4") as http:
        assert [(await login(http, "alice")).status_code for _ in range(9)] == [401] * 5 + [429] * 4
        assert [(await login(http, f"user{i}")).status_code for i in range(6)] == [401] * 5 + [429]


async def test_concurrent_wrong_passwords_reach_the_check_at_most_the_limit(
    alice: httpx.AsyncClient, server: str
) -> None:
    """Counted before the check: forty at once reached it forty times when the count was read, then written."""
    async with from_address(server, "127.0.0.4") as http:
        responses = await asyncio.gather(*(login(http, "alice") for _ in range(40)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [401] * 5 + [429] * 35
    assert all(r.headers["retry-after"].isdigit() for r in responses if r.status_code == 429)


async def test_a_good_login_forgives_the_accounts_failures(alice: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    for _ in range(4):
        assert (await login(client, "alice")).status_code == 401
    assert (await login(client, "alice", PASSWORD)).status_code == 200
    assert [(await login(client, "alice")).status_code for _ in range(6)] == [401] * 5 + [429]


async def test_a_throttled_login_hashes_nothing(alice: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    for _ in range(5):
        await login(client, "alice")
    hashes = gauge(str(client.base_url), "gossip_password_hashes_total")
    assert {(await login(client, "alice")).status_code for _ in range(10)} == {429}
    assert gauge(str(client.base_url), "gossip_password_hashes_total") == hashes


async def test_registrations_are_limited_per_address(server: str) -> None:
    before = refusals("registration")
    async with from_address(server, "127.0.0.5") as http:
        bodies = [{"username": f"new{i}", "password": PASSWORD} for i in range(10)]
        responses = await asyncio.gather(*(http.post("/api/auth/register", json=body) for body in bodies))
        assert sorted(response.status_code for response in responses) == [201] * 3 + [429] * 7
        refused = next(response for response in responses if response.status_code == 429)
        assert json_error(refused)[:2] == (429, "throttled") and int(refused.headers["retry-after"]) >= 1
        assert refused.json()["detail"] == REGISTERED
    assert refusals("registration") == before + 7
    async with registered(server, "elsewhere"):  # another address may still register
        pass


async def test_two_auth_processes_share_one_throttle(alice: httpx.AsyncClient, settings: Settings) -> None:
    """As docker-compose can run them: wrong passwords sent to either process use up the same five tries, and the
    account stays refused at both, the right password included."""
    window = {"LOGIN_WINDOW": "3600"}
    first, second = (ServiceProcess("services.auth.app", settings, **window) for _ in range(2))
    await asyncio.gather(asyncio.to_thread(first.start), asyncio.to_thread(second.start))  # each waits for /readyz
    try:
        async with async_client(timeout=30) as http:
            statuses = [
                (
                    await http.post(f"{process.url}/api/auth/login", json={"username": "alice", "password": WRONG})
                ).status_code
                for process in (first, second) * 4
            ]
            right = {"username": "alice", "password": PASSWORD}
            refused = [(await http.post(f"{p.url}/api/auth/login", json=right)).status_code for p in (first, second)]
    finally:
        first.stop()
        second.stop()
    assert statuses == [401] * 5 + [429] * 3
    assert refused == [429, 429]


async def test_check_mails_are_limited_per_user_and_per_address_and_one_refused_takes_neither(
    settings: Settings, db: Database
) -> None:
    """A mail refused for its user gives back the slot its address gave, and the reverse: no mail went."""
    limited, buckets = dataclasses.replace(settings, verification_mails=2, verification_window=3600), Buckets(db)
    before = refusals("verification")
    for to in ("a@example.com", "b@example.com"):
        await take_check_mail_slot(buckets, limited, "u1", to)
    with pytest.raises(ApiError) as refused:
        await take_check_mail_slot(buckets, limited, "u1", "c@example.com")  # u1 has sent its two
    assert (refused.value.status, refused.value.detail) == (429, CHECKS)
    for user in ("u2", "u3"):  # c@example.com's slot went back: two others may still mail it
        await take_check_mail_slot(buckets, limited, user, "c@example.com")
    with pytest.raises(ApiError):
        await take_check_mail_slot(buckets, limited, "u4", "c@example.com")
    assert refusals("verification") == before + 2


async def test_a_known_browsers_good_login_gives_back_no_account_wide_failure(settings: Settings, db: Database) -> None:
    """It took none (the account-wide cap does not ask a known browser), so it gives none back."""
    buckets = Buckets(db)
    for address in ("10.0.0.1", "10.0.0.2"):
        await take_login_slot(buckets, settings, "alice", address)
    account = await db.buckets.find_one({"_id": "login:user:alice"})
    assert account is not None  # unknown browsers, by default, count against the account as a whole
    await logged_in(buckets, settings, "alice", "10.0.0.3", known=True)
    assert await db.buckets.find_one({"_id": "login:user:alice"}) == account
