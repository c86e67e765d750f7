"""What a scenario runs against: the ingest and stream services as their own uvicorn processes on loopback, a
database of its own on the embedded server, users signed in in bulk, and a publisher with an API token."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import psutil

from bench.http import Connection
from dev.processes import ServiceProcess
from services.auth import tokens
from services.auth.accounts import user_document
from shared.auth import Caller, session_document
from shared.db import Database, connect, prepare
from shared.settings import Settings

STREAM_OPTIONS = ("--backlog", "4096")  # the kernel's somaxconn here: thousands of feeds reconnect at once
UNLIMITED = {"PUBLISHES_PER_AUTHOR": str(10**9)}  # the load scenarios measure throughput, not the rate limit


class Publisher:
    """Posts updates over a few keep-alive connections to ingest; `sent[seq]` is when the post went out."""

    def __init__(self, connections: list[Connection], token: str) -> None:
        self.headers = {"authorization": f"Bearer {token}"}
        self.sent: dict[int, float] = {}
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()
        for connection in connections:
            self._idle.put_nowait(connection)

    async def publish(self, show: str, text: str) -> int:
        connection = await self._idle.get()
        try:
            started = time.perf_counter()
            status, body = await connection.post("/api/updates", {"show": show, "text": text}, self.headers)
        finally:
            self._idle.put_nowait(connection)
        if status != 201:
            raise RuntimeError(f"publish answered {status}: {body}")
        self.sent[body["seq"]] = started
        return int(body["seq"])

    async def close(self) -> None:
        while not self._idle.empty():
            await self._idle.get_nowait().close()


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
    return created["token"]


@dataclass
class Deployment:
    settings: Settings
    db: Database
    ingest: ServiceProcess
    streams: list[ServiceProcess]
    publishers: list[Publisher] = field(default_factory=list)
    viewers: int = 0

    @property
    def stream_port(self) -> int:
        return self.streams[0].port

    def _stream(self, index: int) -> psutil.Process:
        process = self.streams[index].process
        assert process is not None
        return psutil.Process(process.pid)

    def stream_rss(self, index: int = 0) -> int:
        return int(self._stream(index).memory_info().rss)

    def stream_usage(self, index: int = 0) -> tuple[float, int]:
        """CPU seconds the stream process has spent, and how many writes it has made (Linux counts them)."""
        process = self._stream(index)
        times = process.cpu_times()
        return times.user + times.system, process.io_counters().write_count

    async def sign_in(self, follows: Sequence[Sequence[str]]) -> list[str]:
        cookies = await sign_in(self.db, self.settings, [f"viewer{self.viewers + n}" for n in range(len(follows))],
                                follows)  # fmt: skip
        self.viewers += len(follows)
        return cookies

    async def publisher(self, connections: int = 1) -> Publisher:
        token = await token_of(self.db, self.settings, f"publisher{len(self.publishers)}")
        publisher = Publisher([await Connection.open(self.ingest.port) for _ in range(connections)], token)
        self.publishers.append(publisher)
        return publisher


@contextlib.asynccontextmanager
async def deployment(mongo_url: str, name: str, streams: int = 1) -> AsyncIterator[Deployment]:
    """A database of the scenario's own, and fresh service processes: no scenario measures another's leftovers."""
    settings = Settings(secret_key=secrets.token_urlsafe(32), mongo_url=mongo_url,
                        mongo_db=f"bench_{name}_{secrets.token_hex(4)}")  # fmt: skip
    client = connect(mongo_url)
    db = client[settings.mongo_db]
    await prepare(db)
    ingest = ServiceProcess("services.ingest.app", settings, **UNLIMITED)
    stream_processes = [ServiceProcess("services.stream.app", settings, *STREAM_OPTIONS) for _ in range(streams)]
    processes = [ingest, *stream_processes]
    try:
        await asyncio.gather(*(asyncio.to_thread(process.start) for process in processes))
        deployed = Deployment(settings, db, ingest, stream_processes)
        try:
            yield deployed
        finally:
            for publisher in deployed.publishers:
                await publisher.close()
    finally:
        await asyncio.gather(*(asyncio.to_thread(process.stop) for process in processes if process.process))
        await client.drop_database(settings.mongo_db)
        await client.close()
