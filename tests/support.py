"""What the fixtures are built from: uvicorn on a free loopback port, and waiting on a condition."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Self

import httpx
import uvicorn
from starlette.types import ASGIApp

from shared.db import utcnow
from shared.embedded import free_port
from shared.settings import Settings

PASSWORD = "a-long-pass"


class LiveServer:
    """A real uvicorn serving a real socket, in a thread of the test process so that it starts in milliseconds."""

    def __init__(self, app: ASGIApp, graceful: float = 3.0) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=graceful)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self, timeout: float = 15.0) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start; see the log above")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()
        if self.thread.is_alive():
            raise RuntimeError(f"uvicorn did not shut down within {timeout} s")


async def wait_until(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll a condition (plain or async) until it is truthy; fail with a clear message at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {check}")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def registered(server: str, username: str) -> AsyncIterator[httpx.AsyncClient]:
    """A new client with its own cookie jar, registered and logged in as `username`."""
    async with httpx.AsyncClient(base_url=server, timeout=10) as http:
        response = await http.post("/api/auth/register", json={"username": username, "password": PASSWORD})
        assert response.status_code == 201, response.text
        yield http


async def csrf_of(http: httpx.AsyncClient, path: str) -> str:
    """The CSRF token a page's form carries; getting the page also gives the client its CSRF cookie."""
    page = await http.get(path)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def json_error(response: httpx.Response) -> tuple[int, str, dict[str, Any]]:
    body = response.json()
    return response.status_code, body["error"], body["fields"]


@dataclasses.dataclass(frozen=True)
class Event:
    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class EventReader:
    """Server-Sent Events parsed from an httpx streaming response: comments skipped, fields joined per event."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 5.0) -> Event:
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> Event:
        fields: dict[str, list[str]] = {}
        async for line in self._lines:
            if line == "":
                if "data" in fields:
                    return Event(
                        fields.get("event", ["message"])[-1], "\n".join(fields["data"]), fields.get("id", [None])[-1]
                    )
                fields = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)
        raise EOFError("the stream ended")

    async def updates(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The next `count` update events' data, skipping other event types."""
        found: list[dict[str, Any]] = []

        async def collect() -> None:
            while len(found) < count:
                event = await self._next()
                if event.event == "update":
                    assert event.id == str(event.json()["seq"])
                    found.append(event.json())

        await asyncio.wait_for(collect(), timeout)
        return found


@contextlib.asynccontextmanager
async def events(http: httpx.AsyncClient, path: str = "/events", **headers: str) -> AsyncIterator[EventReader]:
    async with http.stream("GET", path, headers=headers, timeout=httpx.Timeout(10, read=None)) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        yield EventReader(response)


def stored_update(seq: int, show: str = "flash", text: str = "", author: str = "test") -> dict[str, Any]:
    """An update as ingest stores it, for writing straight into MongoDB with a chosen seq."""
    return {"seq": seq, "show": show, "title": "The Flash", "text": text or f"update {seq}", "author": author,
            "created_at": utcnow()}  # fmt: skip


async def publish(http: httpx.AsyncClient, show: str, text: str) -> dict[str, Any]:
    response = await http.post("/api/updates", json={"show": show, "text": text})
    assert response.status_code == 201, response.text
    return response.json()


class ChildProcess:
    """A server as a child process on a loopback port: waited for until it answers, always stopped, output kept."""

    def __init__(self, command: list[str], env: Mapping[str, str], port: int, ready_path: str = "/readyz") -> None:
        self.command, self.env, self.port = command, dict(env), port
        self.url = f"http://127.0.0.1:{port}"
        self.ready_url = self.url + ready_path
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tempfile.TemporaryFile()  # a file, not a pipe: a pipe nobody reads would block a chatty process

    def start(self, timeout: float = 20.0) -> Self:
        self.process = subprocess.Popen(self.command, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.command} did not become ready:\n{self.output()}")
            time.sleep(0.05)
        return self

    def _ready(self) -> bool:
        try:
            return httpx.get(self.ready_url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout: float = 10.0) -> float:
        """SIGTERM, as an orchestrator sends it; returns how long the process took to exit."""
        assert self.process is not None
        start = time.monotonic()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return time.monotonic() - start

    def output(self) -> str:
        """Everything the process has written so far, its log lines included."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServiceProcess(ChildProcess):
    """One service as its own uvicorn process on a free loopback port, as it runs in production."""

    def __init__(self, module: str, settings: Settings, *options: str, **env: str) -> None:
        port = free_port()
        command = [
            sys.executable, "-m", "uvicorn", f"{module}:app", "--host", "127.0.0.1", "--port", str(port),
            "--timeout-graceful-shutdown", "5", *options,
        ]  # fmt: skip
        variables = {
            **os.environ, "SECRET_KEY": settings.secret_key, "MONGO_URL": settings.mongo_url,
            "MONGO_DB": settings.mongo_db, "PING_INTERVAL": str(settings.ping_interval), **env,
        }  # fmt: skip
        super().__init__(command, variables, port)


async def api_token(http: httpx.AsyncClient, name: str = "script") -> str:
    """A new API token of the client's user: what a script publishes with, as `Authorization: Bearer <token>`."""
    response = await http.post("/api/me/tokens", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["token"]


def gauge(url: str, name: str) -> float:
    """A metric's current value, read from a service's /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return float(next(line for line in text.splitlines() if line.startswith(name + " ")).split()[1])
