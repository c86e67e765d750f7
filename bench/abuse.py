"""`make abuse`: one person with a script, against Gossip served as `make run` serves it (one process, all three
services, default settings, no trusted proxy). A line per abuse, each with its target.

Clients come from many addresses: Linux routes all of 127/8 to the loopback, so 127.x.y.z are distinct client
addresses to the server. Each abuse uses addresses of its own, so that no limit one of them reached weighs on the
next.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import psutil

from bench.cluster import sign_in, stored_update, token_of
from bench.fuzz import fuzz
from bench.http import Answer, Connection, exchange, json_request
from bench.report import Result
from bench.sse import feed_request
from dev.processes import ChildProcess, free_port
from shared.db import Database, connect, next_seq
from shared.settings import Settings

MiB = 1 << 20
PASSWORD = "a-long-password"  # noqa: S105 (the accounts the scenario registers)


def address(block: int, number: int) -> str:
    """The `number`th client address of a block: 127.block.x.y."""
    return f"127.{block}.{number // 250}.{number % 250 + 1}"


def counted(statuses: Counter[int]) -> str:
    """Statuses and how many of each, as `401:12 503:388`."""
    return " ".join(f"{status}:{count}" for status, count in sorted(statuses.items()))


def statuses(answers: list[Answer]) -> Counter[int]:
    return Counter(answer.status for answer in answers)


@dataclass
class Served:
    """`python -m dev.run` on a free port with a database of its own: what `make run` serves."""

    process: ChildProcess
    settings: Settings
    db: Database

    @property
    def port(self) -> int:
        return self.process.port

    def _psutil(self) -> psutil.Process:
        assert self.process.process is not None
        return psutil.Process(self.process.process.pid)

    def rss(self) -> int:
        return int(self._psutil().memory_info().rss)

    def fds(self) -> int:
        """The serving process's client connections: sockets on its own port. Not all its open files, which the
        database pool and the background chores (presence, the scheduler) grow and shrink on their own."""
        return sum(1 for link in self._psutil().net_connections("tcp") if link.laddr and link.laddr.port == self.port)

    async def register(self, username: str, block: int) -> dict[str, str]:
        """A user registered over the API, from an address of `block`; returns the cookies it was given (the
        session's, and the device cookie of a browser that has signed in to the account)."""
        body = {"username": username, "password": PASSWORD}
        answer = await exchange(self.port, json_request("POST", "/api/auth/register", body), address(block, 0))
        assert answer.status == 201, answer
        return answer.cookies


@contextlib.asynccontextmanager
async def serving(mongo_url: str, **variables: str) -> AsyncIterator[Served]:
    """`variables` set more of the environment (the tests shorten SEND_TIMEOUT)."""
    port = free_port()
    own = {"SECRET_KEY": secrets.token_urlsafe(32), "MONGO_URL": mongo_url, "MONGO_DB": f"bench_{secrets.token_hex(4)}"}
    env = {**os.environ, **own, **variables, "HOST": "127.0.0.1", "PORT": str(port)}
    settings = Settings.from_env(env)  # from the very mapping the child reads
    client = connect(mongo_url)
    try:
        with ChildProcess([sys.executable, "-m", "dev.run"], env, port) as process:
            yield Served(process, settings, client[settings.mongo_db])
    finally:
        await client.drop_database(settings.mongo_db)
        await client.close()


async def during(work: Awaitable[object], probe: Callable[[], Awaitable[float]]) -> list[float]:
    """Runs `probe` again and again while `work` runs; its results."""
    task, found = asyncio.ensure_future(work), []
    while not task.done():
        found.append(await probe())
    await task
    return found


async def logins(served: Served, count: int = 400) -> Result:
    """Logins for unknown names at once, each from an address of its own: only the hashing limit stands in the way.
    Meanwhile the serving process's memory is sampled and /readyz asked, one request after the other."""
    bodies = [{"username": f"stranger{n}", "password": "not-the-password"} for n in range(count)]
    flood = asyncio.gather(*(
        exchange(served.port, json_request("POST", "/api/auth/login", body), address(10, n))
        for n, body in enumerate(bodies)
    ))  # fmt: skip
    readiness = await Connection.open(served.port)

    async def ready() -> float:
        start = time.perf_counter()
        answer = await readiness.get("/readyz")
        assert answer.status == 200, answer
        return (time.perf_counter() - start) * 1000

    async def rss() -> float:
        await asyncio.sleep(0.02)
        return served.rss() / MiB

    sampled = asyncio.ensure_future(during(flood, rss))
    readyz = await during(sampled, ready)
    await readiness.close()
    answers = statuses(flood.result())
    peak, p99 = max(await sampled), statistics.quantiles(readyz, n=100)[98] if len(readyz) > 1 else max(readyz)
    refused_or_checked = answers[401] > 0 and set(answers) <= {401, 429, 503}
    return Result(
        "logins",
        {"logins": count, "addresses": count, "answers": counted(answers), "peak RSS MiB": peak, "readyz p99 ms": p99},
        {"≤ 512 MiB": peak <= 512, "some 401, the rest 429/503": refused_or_checked, "readyz p99 ≤ 250 ms": p99 <= 250},
    )


async def wrong_passwords(served: Served, count: int = 40) -> Result:
    await served.register("victim", 20)
    body = {"username": "victim", "password": "not-the-password"}
    answers = await asyncio.gather(*(
        exchange(served.port, json_request("POST", "/api/auth/login", body), address(21, 0)) for _ in range(count)
    ))  # fmt: skip
    limit, got = served.settings.login_failures_per_user_address, statuses(answers)
    target = {f"{limit} reach a 401, the rest 429": got == Counter({401: limit, 429: count - limit})}
    return Result("wrong-pw", {"attempts": count, "answers": counted(got)}, target)


async def lockout(served: Served, addresses: int = 40, tries: int = 6, at_once: int = 2) -> Result:
    """A stranger guesses one account's password from many addresses, `tries` from each and a few addresses at a
    time (so that it is the limits that answer, not a busy server), and its owner signs in meanwhile: from a new
    browser at their own address early on, and after the guess from the browser they signed in with before (its
    device cookie), which the account-wide cap does not refuse. Checked guesses stay within that cap and its
    refill over the run."""
    cookies = await served.register("owner", 40)
    known = {"cookie": f"gossip_device={cookies['gossip_device']}"}
    body, right = {"username": "owner", "password": "not-the-password"}, {"username": "owner", "password": PASSWORD}

    gate = asyncio.Semaphore(at_once)

    async def guess(number: int) -> list[int]:
        async with gate:
            return [(await exchange(served.port, json_request("POST", "/api/auth/login", body),
                                    address(41, number))).status for _ in range(tries)]  # fmt: skip

    start = time.monotonic()
    first = await asyncio.gather(*(guess(n) for n in range(3)))  # a few addresses: the old lockout
    fresh = await exchange(served.port, json_request("POST", "/api/auth/login", right), address(40, 0))
    rest = await asyncio.gather(*(guess(n) for n in range(3, addresses)))
    owner = await exchange(served.port, json_request("POST", "/api/auth/login", right, known), address(40, 0))
    wrong, seconds = Counter(status for statuses in [*first, *rest] for status in statuses), time.monotonic() - start
    settings = served.settings
    cap = int(settings.login_failures_per_user * (1 + seconds / settings.login_window))  # the cap, and its refill
    target = {
        "owner's new browser signs in": fresh.status == 200,
        "owner's known browser signs in": owner.status == 200,
        f"≤ {cap} guesses checked": wrong[401] <= cap,
    }
    figures = {"addresses": addresses, "guesses": addresses * tries, "answers": counted(wrong), "s": seconds,
               "owner": f"{fresh.status}/{owner.status}"}  # fmt: skip
    return Result("lockout", figures, target)


async def registrations(served: Served, count: int = 100, at_once: int = 4) -> Result:
    """From one address, a few at a time, so that it is the limit that refuses them and not a busy server."""
    gate = asyncio.Semaphore(at_once)

    async def register(number: int) -> Answer:
        body = {"username": f"sockpuppet{number}", "password": PASSWORD}
        async with gate:
            return await exchange(served.port, json_request("POST", "/api/auth/register", body), address(30, 0))

    answers = await asyncio.gather(*(register(n) for n in range(count)))
    limit, got = served.settings.registrations_per_address, statuses(answers)
    target = {f"{limit} succeed, the rest 429": got == Counter({201: limit, 429: count - limit})}
    return Result("register", {"attempts": count, "answers": counted(got)}, target)


async def feeds(served: Served, count: int = 300) -> Result:
    """One user opens feeds, fifty at a time; those that open stay open (unread) until every one was answered."""
    (cookie,) = await sign_in(served.db, served.settings, ["binge"], [["flash"]])
    held: list[asyncio.StreamWriter] = []
    gate = asyncio.Semaphore(50)

    async def one() -> int:
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
            writer.write(feed_request("/events", cookie))
            status = int((await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)).split()[1])
            held.append(writer)
            return status

    got = Counter(await asyncio.gather(*(one() for _ in range(count))))
    for writer in held:
        writer.close()
    limit = served.settings.feeds_per_user
    target = {f"{limit} open, the rest 429": got == Counter({200: limit, 429: count - limit})}
    return Result("feeds", {"attempts": count, "answers": counted(got)}, target)


async def publishes(served: Served, count: int = 600, clients: int = 8) -> Result:
    token = await token_of(served.db, served.settings, "spammer")
    headers, numbers, answers = {"authorization": f"Bearer {token}"}, iter(range(count)), []
    start = time.perf_counter()

    async def client() -> None:
        connection = await Connection.open(served.port)
        for number in numbers:
            answers.append(await connection.send("POST", "/api/updates", {"show": "flash", "text": f"{number}"},
                                                 headers))  # fmt: skip
        await connection.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    took = time.perf_counter() - start
    refused = [answer for answer in answers if answer.status == 429]
    with_retry = all(answer.headers.get("retry-after", "").isdigit() for answer in refused)
    return Result(
        "publish",
        {"publishes": count, "clients": clients, "answers": counted(statuses(answers)), "s": took},
        {"429s with Retry-After": bool(refused) and with_retry},
    )


async def stalled(served: Served, count: int = 20, megabytes: int = 5) -> Result:
    """Feeds whose clients never read, while `megabytes` of updates per feed are written: the open files of the
    serving process must come back to where they were, though those clients never read again. Five MB is more than
    the kernel buffers for a loopback socket (4 MB), so the sends stall; less can sit in the kernel unread."""
    cookies = await sign_in(served.db, served.settings, [f"sloth{n}" for n in range(count)], [["flash"]] * count)
    baseline, held = served.fds(), []
    for cookie in cookies:
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.setblocking(False)
        await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", served.port))
        await asyncio.get_running_loop().sock_sendall(raw, feed_request("/events", cookie))
        held.append(raw)
    text = "€" * 1000  # 3 KB a frame
    updates = megabytes * MiB // 3100
    for _ in range(0, updates, 200):
        last = await next_seq(served.db, count=200)
        await served.db.updates.insert_many(
            [stored_update(seq, "flash", text, "flood") for seq in range(last - 199, last + 1)]
        )
    published, bound = time.perf_counter(), served.settings.send_timeout + 30
    for _ in range(int(bound + 30) * 2):  # twice a second, up to half a minute past the bound
        if served.fds() <= baseline:
            break
        await asyncio.sleep(0.5)
    back = time.perf_counter() - published
    for raw in held:
        raw.close()
    return Result(
        "stalled",
        {"feeds": count, "MB each": megabytes, "connections before": baseline, "back within s": back},
        {f"≤ SEND_TIMEOUT + 30 = {bound:.0f} s": back <= bound},
    )


async def fuzzing(served: Served, count: int = 10_000) -> Result:
    (cookie,) = await sign_in(served.db, served.settings, ["fuzzer"], [["flash"]])
    token = await token_of(served.db, served.settings, "fuzzer-script")
    tally = await fuzz(served.port, token, cookie, count)
    figures = {"requests": count, "resets": tally.resets, "5xx": tally.server_errors, "unanswered": tally.unanswered,
               "answers": counted(tally.statuses)}  # fmt: skip
    clean = tally.resets == tally.server_errors == tally.unanswered == 0
    return Result("fuzz", figures, {"0 resets, 0 5xx": clean})


ABUSES: list[Callable[[Served], Awaitable[Result]]] = [
    logins, wrong_passwords, lockout, registrations, feeds, publishes, stalled, fuzzing,
]  # fmt: skip


async def abuse(mongo_url: str) -> AsyncIterator[Result]:
    async with serving(mongo_url) as served:
        for one in ABUSES:
            yield await one(served)
