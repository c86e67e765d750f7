"""What a scenario runs against: the ingest and stream services as their own uvicorn processes on loopback, a
database of its own on the embedded server, users signed in in bulk, and a publisher with an API token; or, for the
scenarios that compare, nchan (bench/nchan.py) with the same load client."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import psutil

from bench.crowd import Share
from bench.http import Connection, Post, Publisher
from bench.served import Histogram, served_by
from bench.sse import Feed, feed_request, open_feeds
from dev.processes import ServiceProcess
from services.auth import tokens
from services.auth.accounts import user_document
from shared.auth import Caller, session_document
from shared.db import SHOWS, Database, connect, prepare, utcnow
from shared.settings import Settings
from shared.updates import digest, update_id

STREAM_OPTIONS = ("--backlog", "4096")  # the kernel's somaxconn here: thousands of feeds reconnect at once
STARTUP = 60.0  # seconds for a service process to answer: several start at once, on a machine others share
UNLIMITED = {"PUBLISHES_PER_AUTHOR": str(10**9)}  # the load scenarios measure throughput, not the rate limit


def stored_update(seq: int, show: str, text: str, author: str) -> dict[str, Any]:
    """An update as ingest stores it, `_id` and `announced` included, for writing straight to the database: the
    watcher then takes it for one of ingest's, not for another program's."""
    created_at = utcnow()
    return {"_id": update_id(seq, created_at), "seq": seq, "show": show, "title": SHOWS[show], "text": text,
            "announced": digest(text), "author": author, "author_id": author, "created_at": created_at}  # fmt: skip


class Refused(RuntimeError):
    """A publish answered with another status than 201."""

    def __init__(self, status: int, body: object) -> None:
        super().__init__(f"publish answered {status}: {body}")
        self.status = status


def bearer_post(token: str) -> Post:
    """Posts an update with an API token, as a script does; raises Refused unless it was stored."""
    headers = {"authorization": f"Bearer {token}"}

    async def post(connection: Connection, show: str, text: str) -> int:
        status, body = await connection.post("/api/updates", {"show": show, "text": text}, headers)
        if status != 201:
            raise Refused(status, body)
        return int(body["seq"])

    return post


@dataclass(frozen=True, slots=True)
class Setup:
    """What every scenario is given: the embedded database, and nginx with nchan where the machine has it."""

    mongo_url: str
    nginx: str | None = None


class Usage(NamedTuple):
    """Of the processes that hold the feeds: CPU seconds spent, writes made (Linux counts them), resident bytes, and
    the proportional set size (a page shared by several of them counted once in all, as nginx's workers share
    nchan's memory)."""

    cpu: float
    writes: int
    rss: int
    pss: int

    @classmethod
    def of(cls, processes: Sequence[psutil.Process]) -> Usage:
        cpu = writes = rss = pss = 0.0
        for process in processes:
            times = process.cpu_times()
            cpu += times.user + times.system
            writes += process.io_counters().write_count
            memory = process.memory_full_info()
            rss += memory.rss
            pss += memory.pss
        return cls(cpu, int(writes), int(rss), int(pss))


class Side(Protocol):
    """A system a comparing scenario runs against, Gossip or nchan: the same load client for both."""

    name: str

    async def followers(self, count: int) -> list[Feed]:
        """`count` open feeds that each carry the show flash."""
        ...

    async def publisher(self, connections: int = 1) -> Publisher: ...

    def usage(self) -> Usage: ...

    async def served(self) -> Histogram | None:
        """The latency histogram of the process that holds the feeds, None where it keeps none (nchan)."""
        ...

    async def shares(self, shows: Sequence[str], per_user: int = 1) -> list[Share]:
        """Feed i carrying show shows[i], shared out between the side's server processes (bench/crowd.py); where
        feeds have users, `per_user` feeds in a row are one user's, so they must carry the same show."""
        ...


async def sign_in(
    db: Database, settings: Settings, names: Sequence[str], follows: Sequence[Sequence[str]]
) -> list[str]:
    """One user per name, following those shows, each with a session: their cookies, as a login gives them."""
    users, cookies, sessions = [], [], []
    for name, shows in zip(names, follows, strict=True):
        users.append(user := user_document(name, "", shows))
        cookie, session = session_document(settings, user["_id"], user["username"])
        cookies.append(cookie)
        sessions.append(session)
    for start in range(0, len(users), 1000):
        await db.users.insert_many(users[start : start + 1000])
        await db.sessions.insert_many(sessions[start : start + 1000])
    return cookies


async def token_of(db: Database, settings: Settings, name: str) -> str:
    """A new user's API token."""
    user = user_document(name, "")
    await db.users.insert_one(user)
    created = await tokens.create(db, Caller(user["_id"], user["username"]), "bench", settings.tokens_per_user)
    return str(created["token"])


@dataclass
class Deployment:
    name = "gossip"

    settings: Settings
    db: Database
    ingest: ServiceProcess
    streams: list[ServiceProcess]
    publishers: list[Publisher] = field(default_factory=list)
    viewers: int = 0

    @property
    def stream_port(self) -> int:
        return self.streams[0].port

    def usage(self) -> Usage:
        """Of every stream process."""
        return Usage.of([psutil.Process(stream.process.pid) for stream in self.streams if stream.process])

    async def served(self) -> Histogram:
        """Every stream process's, summed by bucket as the dashboard sums its instances."""
        return functools.reduce(Histogram.plus, [await served_by(stream.port) for stream in self.streams])

    async def sign_in(self, follows: Sequence[Sequence[str]]) -> list[str]:
        cookies = await sign_in(self.db, self.settings, [f"viewer{self.viewers + n}" for n in range(len(follows))],
                                follows)  # fmt: skip
        self.viewers += len(follows)
        return cookies

    async def publisher(self, connections: int = 1) -> Publisher:
        token = await token_of(self.db, self.settings, f"publisher{len(self.publishers)}")
        publisher = Publisher([await Connection.open(self.ingest.port) for _ in range(connections)], bearer_post(token))
        self.publishers.append(publisher)
        return publisher

    async def feeds(self, follows: Sequence[Sequence[str]], path: str = "/events") -> list[Feed]:
        """A signed-in user per entry, following those shows, each with an open feed."""
        cookies = await self.sign_in(follows)
        return await open_feeds(self.stream_port, [feed_request(path, cookie) for cookie in cookies])

    async def followers(self, count: int) -> list[Feed]:
        return await self.feeds([["flash"]] * count)

    async def shares(self, shows: Sequence[str], per_user: int = 1) -> list[Share]:
        """A user signed in per `per_user` feeds; the feeds dealt out to the stream processes in turn, as a gateway
        that balances by connections would."""
        cookies = await self.sign_in([[show] for show in shows[::per_user]])
        requests = [feed_request("/events", cookies[number // per_user]) for number in range(len(shows))]
        count = len(self.streams)
        return [Share(stream.port, requests[number::count], list(shows[number::count]))
                for number, stream in enumerate(self.streams)]  # fmt: skip


@contextlib.asynccontextmanager
async def deployment(
    mongo_url: str, name: str, streams: int = 1, rules: Path | None = None
) -> AsyncIterator[Deployment]:
    """A database of the scenario's own, and fresh service processes: no scenario measures another's leftovers.
    `rules`: the stream processes' watch rules file (none by default)."""
    settings = Settings(secret_key=secrets.token_urlsafe(32), mongo_url=mongo_url,
                        mongo_db=f"bench_{name}_{secrets.token_hex(4)}", watch_rules=rules)  # fmt: skip
    client = connect(mongo_url)
    db = client[settings.mongo_db]
    await prepare(db)
    stream = functools.partial(ServiceProcess, "services.stream.app", settings, *STREAM_OPTIONS)
    starting = [ServiceProcess("services.ingest.app", settings, **UNLIMITED), *(stream() for _ in range(streams))]
    started = await asyncio.gather(*(asyncio.to_thread(process.start, STARTUP) for process in starting),
                                   return_exceptions=True)  # fmt: skip
    processes = [process for process in started if isinstance(process, ServiceProcess)]
    try:
        if failed := [error for error in started if isinstance(error, BaseException)]:
            raise failed[0]
        ingest, *stream_processes = processes
        deployed = Deployment(settings, db, ingest, stream_processes)
        try:
            yield deployed
        finally:
            for publisher in deployed.publishers:
                await publisher.close()
    finally:
        await asyncio.gather(*(asyncio.to_thread(process.stop) for process in processes))
        await client.drop_database(settings.mongo_db)
        await client.close()
