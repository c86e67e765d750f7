"""The load generator's HTTP: keep-alive HTTP/1.1 connections that post JSON and read the answer (a publisher keeps
a few), and single exchanges on a connection of their own, from a chosen loopback address.

As lean as the feed client, so that the figures measure the services rather than the client.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case; of a repeated header, the last
    body: bytes
    cookies: dict[str, str] = field(default_factory=dict)  # every Set-Cookie's name and value

    def json(self) -> Any:
        return json.loads(self.body)


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    """One response: Content-Length or chunked; a response with neither ends with the connection (but an
    interim `100 Continue` has no body)."""
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    fields = [(name.strip().lower(), value.strip()) for name, _, value in (line.partition(":") for line in lines[1:])]
    headers = dict(fields)
    cookies = dict(value.split(";")[0].split("=", 1) for name, value in fields if name == "set-cookie")
    status = int(lines[0].split()[1])
    if status < 200 or status in (204, 304):
        body = b""
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
    else:
        body = await reader.read()
    return Answer(status, headers, body, cookies)


def request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    length = f"content-length: {len(body)}\r\n" if body or method in ("POST", "PUT") else ""
    return f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n{length}{head}\r\n".encode() + body


def json_request(method: str, path: str, value: Any, headers: dict[str, str] | None = None) -> bytes:
    """Compact JSON, as the stream service writes it: an update posted to nchan is then a frame's data that starts
    `{"seq":`, as Gossip's do."""
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    return request(method, path, body, {"content-type": "application/json", **(headers or {})})


async def exchange(port: int, raw: bytes, address: str = "127.0.0.1", timeout: float = 60.0) -> Answer:
    """One request on a connection of its own, from `address` (all of 127/8 is loopback on Linux)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
    try:
        writer.write(raw)
        return await asyncio.wait_for(read_answer(reader), timeout)
    finally:
        writer.close()


class Connection:
    """A keep-alive connection; each answer is waited for at most `timeout` seconds, so a hung server ends a load
    loop with an error instead of holding it for ever."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float = 60.0) -> None:
        self.reader, self.writer, self.timeout = reader, writer, timeout

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def get(self, path: str) -> Answer:
        return await self._ask(request("GET", path))

    async def send(self, method: str, path: str, body: Any, headers: dict[str, str]) -> Answer:
        return await self._ask(json_request(method, path, body, headers))

    async def _ask(self, raw: bytes) -> Answer:
        self.writer.write(raw)
        return await asyncio.wait_for(read_answer(self.reader), self.timeout)

    async def post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
        answer = await self.send("POST", path, body, headers)
        return answer.status, answer.json()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


# Posts one update (show, text) over a connection and returns its seq; raises if the server refused it.
Post = Callable[[Connection, str, str], Awaitable[int]]


class Publisher:
    """Posts updates over a few keep-alive connections; `sent[seq]` is when the post went out, `took` how long each
    publish waited for its answer (seconds), in the order they were answered."""

    def __init__(self, connections: list[Connection], post: Post) -> None:
        self._post = post
        self.sent: dict[int, float] = {}
        self.took: list[float] = []
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()
        for connection in connections:
            self._idle.put_nowait(connection)

    async def publish(self, show: str, text: str) -> int:
        connection = await self._idle.get()
        try:
            started = time.perf_counter()
            seq = await self._post(connection, show, text)
        finally:
            self._idle.put_nowait(connection)
        self.sent[seq] = started
        self.took.append(time.perf_counter() - started)
        return seq

    async def close(self) -> None:
        while not self._idle.empty():
            await self._idle.get_nowait().close()
