"""`make abuse`: one person with a script, against Gossip served as `make run` serves it (one process, all three
services, default settings, no trusted proxy). A line per abuse, each with its target.

Clients come from many addresses: Linux routes all of 127/8 to the loopback, so 127.x.y.z are distinct client
addresses to the server. Each abuse uses addresses of its own, so that no limit one of them reached weighs on the
next.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import secrets
import socket
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import psutil

from bench import hostile
from bench.cluster import bearer_post, sign_in, stored_update, token_of
from bench.fuzz import fuzz
from bench.http import Answer, Connection, Publisher, exchange, json_request
from bench.report import Figure, Result
from bench.sse import SEQ_START, Feed, feed_request, open_feeds
from dev.processes import ChildProcess, on_a_free_port
from shared.db import Database, connect, last_seq, next_seq, utcnow
from shared.settings import Settings
from shared.updates import COUNT_CAP

MiB = 1 << 20
BUSY_TRIES = 5  # a person told the server is busy tries again, a few times
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

    def cpu(self) -> float:
        """CPU seconds the serving process has spent."""
        times = self._psutil().cpu_times()
        return float(times.user + times.system)

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
    own = {"SECRET_KEY": secrets.token_urlsafe(32), "MONGO_URL": mongo_url, "MONGO_DB": f"bench_{secrets.token_hex(4)}"}
    env = {**os.environ, **own, **variables, "HOST": "127.0.0.1"}
    settings = Settings.from_env(env)  # from the very mapping the child reads, but for its PORT
    client = connect(mongo_url)

    def gossip(port: int) -> ChildProcess:
        return ChildProcess([sys.executable, "-m", "dev.run"], {**env, "PORT": str(port)}, port)

    try:
        with await asyncio.to_thread(on_a_free_port, gossip) as process:
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
    browser at their own address early on, and again and again while the guessing goes on from the browser they
    signed in with before (its device cookie), which the account-wide cap does not refuse. Checked guesses stay
    within that cap and its refill over the run."""
    cookies = await served.register("owner", 40)
    known = {"cookie": f"gossip_device={cookies['gossip_device']}"}
    body, right = {"username": "owner", "password": "not-the-password"}, {"username": "owner", "password": PASSWORD}

    gate = asyncio.Semaphore(at_once)

    async def guess(number: int) -> list[int]:
        async with gate:
            return [(await exchange(served.port, json_request("POST", "/api/auth/login", body),
                                    address(41, number))).status for _ in range(tries)]  # fmt: skip

    busy = Counter[str]()

    async def sign_in() -> int:
        """As a person does: told the server is busy (503, hashing), they try again when it says."""
        for _ in range(BUSY_TRIES):
            answer = await exchange(served.port, json_request("POST", "/api/auth/login", right, known), address(40, 0))
            if answer.status != 503:
                return answer.status
            busy["503"] += 1
            await asyncio.sleep(float(answer.headers.get("retry-after", "1")))
        return answer.status

    start = time.monotonic()
    first = await asyncio.gather(*(guess(n) for n in range(3)))  # a few addresses: the old lockout
    fresh = await exchange(served.port, json_request("POST", "/api/auth/login", right), address(40, 0))
    guessing = asyncio.gather(*(guess(n) for n in range(3, addresses)))
    owner = Counter([await sign_in()])
    while not guessing.done():  # as long as the guessing, which is bounded
        await asyncio.sleep(0.5)
        owner[await sign_in()] += 1
    rest = await guessing
    wrong, seconds = Counter(status for statuses in [*first, *rest] for status in statuses), time.monotonic() - start
    settings = served.settings
    cap = int(settings.login_failures_per_user * (1 + seconds / settings.login_window))  # the cap, and its refill
    target = {
        "owner's new browser signs in": fresh.status == 200,
        "owner's known browser signs in every time": set(owner) == {200},
        f"≤ {cap} guesses checked": wrong[401] <= cap,
    }
    figures: dict[str, Figure] = {
        "addresses": addresses, "guesses": addresses * tries, "answers": counted(wrong), "s": seconds,
        "owner new": fresh.status, "owner known": counted(owner), "owner busy retries": busy["503"],
    }  # fmt: skip
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
    figures: dict[str, Figure] = {"requests": count, "resets": tally.resets, "5xx": tally.server_errors,
                                  "unanswered": tally.unanswered, "answers": counted(tally.statuses)}  # fmt: skip
    clean = tally.resets == tally.server_errors == tally.unanswered == 0
    return Result("fuzz", figures, {"0 resets, 0 5xx": clean})


async def until(check: Callable[[], Awaitable[bool]], seconds: float) -> bool:
    """Whether `check` came true within `seconds`, asked ten times a second."""
    for _ in range(int(seconds * 10) + 1):
        if await check():
            return True
        await asyncio.sleep(0.1)
    return False


class Reading:
    """A feed read as a browser would, its lines kept as they come, until a line holds `last` or it is stopped."""

    def __init__(self, http: httpx.AsyncClient, path: str, cookie: str, last: str, resume: int | None = None) -> None:
        self.lines: list[str] = []
        self.status: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        headers = {"accept": "text/event-stream", "cookie": f"gossip_session={cookie}"}
        if resume is not None:
            headers["last-event-id"] = str(resume)
        self.task = asyncio.ensure_future(self._read(http, path, headers, last))

    async def _read(self, http: httpx.AsyncClient, path: str, headers: dict[str, str], last: str) -> None:
        try:
            async with http.stream("GET", path, headers=headers) as response:
                self.status.set_result(response.status_code)
                async for line in response.aiter_lines():
                    self.lines.append(line)
                    if last in line:
                        return
        except Exception as error:
            if not self.status.done():  # refused before it was answered: whoever waits for the status hears why
                self.status.set_exception(error)
            raise

    async def updates(self, seconds: float) -> list[dict[str, Any]]:
        """What it read by the time it saw `last`, or after `seconds`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.task), seconds)
        self.task.cancel()
        return hostile.updates_in(self.lines)


async def hostile_documents(served: Served, good: int = 10, seconds: float = 60.0) -> Result:
    """Documents written straight into `updates` by anyone who can write to MongoDB, each with a forged field, once
    with a seq and once without (for the stream service to number): those that break a rule are rejected for good,
    the others go out shaped (the catalogue's title, the wire fields alone). No live feed, replay or history read
    carries anything forged, and good updates published after them all arrive."""
    lurker, fan = await sign_in(served.db, served.settings, ["lurker", "fan"], [[], ["flash"]])
    publisher = Publisher([await Connection.open(served.port)], bearer_post(await token_of(served.db, served.settings,
                                                                                          "honest")))  # fmt: skip
    now, last, before = utcnow(), f"good {good - 1}", await last_seq(served.db)
    breaking, shaped = hostile.breaking(now), hostile.shaped(now)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served.port}", timeout=seconds) as http:
        live = [Reading(http, "/events/all", lurker, last), Reading(http, "/events", fan, last)]
        opened = [await asyncio.wait_for(reading.status, seconds) for reading in live]
        for document in [*breaking, *shaped]:
            await served.db.updates.insert_one(dict(document))
            await served.db.updates.insert_one({**document, "seq": await next_seq(served.db)})

        async def settled() -> bool:  # every document rejected or numbered
            waiting = {"seq": None, "rejected": {"$exists": False}}
            return await served.db.updates.count_documents(waiting) == 0

        numbered = await until(settled, seconds)
        for number in range(good):
            await publisher.publish("flash", f"good {number}")
        await publisher.close()
        got = [await reading.updates(seconds) for reading in live]
        replay = Reading(http, "/events/all", lurker, last, resume=before)
        got.append(await replay.updates(seconds))
        cookie = {"cookie": f"gossip_session={fan}"}
        history = await http.get("/api/updates", params={"after": before, "limit": 100}, headers=cookie)
    got.append(history.json()["items"] if history.status_code == 200 else [])
    rejected = await served.db.updates.count_documents({"rejected": {"$exists": True}})
    forged = sum(hostile.hostile(item) for items in got for item in items)
    arrived = min(sum(item["text"].startswith("good ") for item in items) for items in got)
    target = {
        "0 hostile frames or items": forged == 0,
        f"{2 * len(breaking)} rejected": numbered and rejected == 2 * len(breaking),
        "every good update arrives everywhere": arrived == good and opened == [200, 200],
    }
    figures: dict[str, Figure] = {
        "documents": 2 * (len(breaking) + len(shaped)), "rejected": rejected, "hostile": forged, "good": good,
        "arrived": arrived,
    }  # fmt: skip
    return Result("hostile", figures, target)


RESYNC = re.compile(rb"event: resync\r?\ndata: (\{[^\n]*\})")


async def resume(port: int, cookie: str, after: int, frames: int) -> tuple[int, int, int | None]:
    """One reconnect from far back, after `after`: its status, the update frames read (up to `frames`, then it hangs
    up) and the `missed` of its resync event (None without one)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(feed_request("/events", cookie, last_event_id=after))
        status = int((await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)).split()[1])
        body = b""
        while (
            status == 200 and body.count(SEQ_START) < frames and (read := await asyncio.wait_for(reader.read(MiB), 30))
        ):
            body += read
        said = RESYNC.search(body)
        return status, body.count(SEQ_START), json.loads(said.group(1))["missed"] if said else None
    finally:
        writer.close()


def latencies(feeds: list[Feed], sent: dict[int, float]) -> list[float]:
    """Milliseconds from each publish in `sent` to its arrival at each feed."""
    return [(at - sent[seq]) * 1000 for feed in feeds for seq, at in zip(feed.seqs, feed.times, strict=True)
            if seq in sent]  # fmt: skip


async def watched(served: Served, feeds: list[Feed], updates: int, rate: float) -> list[float]:
    """Publishes `updates` at `rate` a second, by an author of their own (the publish limit is per author), and
    returns their latencies to every feed."""
    token = await token_of(served.db, served.settings, f"ticker{secrets.token_hex(3)}")
    publisher = Publisher([await Connection.open(served.port)], bearer_post(token))
    before = [feed.received for feed in feeds]  # each its own: a feed opened first can have more of an archive
    start = time.perf_counter()
    for number in range(updates):
        await publisher.publish("flash", f"tick {number}")
        await asyncio.sleep(max(0.0, start + (number + 1) / rate - time.perf_counter()))
    await publisher.close()
    held = (feed.holding(seen + updates) for feed, seen in zip(feeds, before, strict=True))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*held), 30)
    return latencies(feeds, publisher.sent)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else max(values, default=math.inf)


async def archive(db: Database, count: int, batch: int = 1000) -> int:
    """`count` updates of flash in the history, written straight to the database a batch at a time; the first one's
    seq."""
    first = await last_seq(db) + 1
    for done in range(0, count, batch):
        size = min(batch, count - done)
        last = await next_seq(db, count=size)
        await db.updates.insert_many([stored_update(seq, "flash", f"old {seq}", "archivist")
                                      for seq in range(last - size + 1, last + 1)])  # fmt: skip
    return first


async def resume_loop(served: Served, history: int = 5000, feeds: int = 50, updates: int = 60,
                      rate: float = 2.0) -> Result:  # fmt: skip
    """One user reconnects in a tight loop from far back in a long history (its first update), hanging up once a
    replay's worth has come, while other users' feeds carry updates (for `updates` / `rate` seconds, long enough to
    reach the feed-open limit): each resume costs at most REPLAY_LIMIT updates and a count capped at COUNT_CAP,
    resumes past FEED_OPENS_PER_USER are refused, and the other feeds' p99 stays within twice what it was without
    the loop, plus 50 ms. `updates` is at most PUBLISHES_PER_AUTHOR: each phase's author publishes them all."""
    first = await archive(served.db, history)  # no other writer meanwhile: the numbers are the archive's
    names = [f"watcher{n}" for n in range(feeds + 1)]
    looper, *cookies = await sign_in(served.db, served.settings, names, [["flash"]] * len(names))
    others = await open_feeds(served.port, [feed_request("/events", cookie) for cookie in cookies])
    quiet = await watched(served, others, updates, rate)
    settings, stop, resumes = served.settings, asyncio.Event(), []

    async def loop() -> None:
        for _ in range(100_000):  # and for as long as the updates take
            if stop.is_set():
                return
            resumes.append(await resume(served.port, looper, first, settings.replay_limit))

    looping, began, cpu = asyncio.ensure_future(loop()), time.monotonic(), served.cpu()
    during = await watched(served, others, updates, rate)
    stop.set()
    await looping
    seconds, cpu = time.monotonic() - began, served.cpu() - cpu
    for feed in others:
        feed.close()
    answered = Counter(status for status, _, _ in resumes)
    missed = [said for status, _, said in resumes if status == 200]
    cap = int(settings.feed_opens_per_user * (1 + seconds / settings.feed_open_window))
    bound = 2 * p99(quiet) + 50
    figures: dict[str, Figure] = {
        "history": history, "resumes": len(resumes), "answers": counted(answered),
        "missed said": ",".join(sorted({str(said) for said in missed})), "CPU s": cpu,
        "quiet p99 ms": p99(quiet), "loop p99 ms": p99(during),
    }  # fmt: skip
    target = {
        f"≤ {cap} resumes served": answered[200] <= cap,
        f"resumes past {settings.feed_opens_per_user} refused": answered[429] > 0,
        f"missed capped at {COUNT_CAP}": bool(missed) and all(said == COUNT_CAP for said in missed),
        f"others' p99 ≤ {bound:.0f} ms": len(during) == len(quiet) == feeds * updates and p99(during) <= bound,
    }
    return Result("resume", figures, target)


ABUSES: list[Callable[[Served], Awaitable[Result]]] = [
    logins, wrong_passwords, lockout, registrations, feeds, publishes, stalled, fuzzing, hostile_documents, resume_loop,
]  # fmt: skip


async def abuse(mongo_url: str) -> AsyncIterator[Result]:
    async with serving(mongo_url) as served:
        for one in ABUSES:
            yield await one(served)
