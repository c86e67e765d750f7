"""The load generator's feed: one SSE connection as a bare asyncio protocol.

A Python HTTP client costs more per event than the server under test, so this one does only what the figures
need: it writes one GET, reads the chunked body and notes each update's `id` (its seq) with the moment it arrived.
Comments (pings), `retry:` and `follows` events carry no `id` and are passed over.
"""

from __future__ import annotations

import asyncio
import re
import time
from array import array
from typing import cast

ID = re.compile(rb"\nid: (\d+)")  # a line start is a newline: a literal prefix, which the regex engine finds fast


def feed_request(path: str, cookie: str, last_event_id: int | None = None) -> bytes:
    resume = f"last-event-id: {last_event_id}\r\n" if last_event_id is not None else ""
    return (
        f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n"
        f"cookie: gossip_session={cookie}\r\n{resume}\r\n"
    ).encode()


class Feed(asyncio.Protocol):
    """`seqs[i]` arrived at `times[i]` (time.perf_counter, the same clock in every process on the machine)."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.seqs: array[int] = array("q")
        self.times: array[float] = array("d")
        self.status = 0
        self.opened: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.BaseTransport | None = None
        self._rest = b""  # what arrived after the last whole chunk
        self._wanted: tuple[int, asyncio.Future[None]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        cast(asyncio.WriteTransport, transport).write(self.request)  # uvloop's transports are not asyncio's classes

    def data_received(self, data: bytes) -> None:
        """Reads whole chunks in place (uvicorn sends each write of the stream service as one chunk, and each
        write holds whole frames); a partial one waits in `_rest` for the next read."""
        now = time.perf_counter()
        if self.status not in (0, 200):
            return  # refused: the body is an error, not a stream, and the connection is closing
        buffer = self._rest + data if self._rest else data
        at = 0 if self.status else self._read_head(buffer)
        while at >= 0 and (line_end := buffer.find(b"\r\n", at)) >= 0:
            end = line_end + 2 + int(buffer[at:line_end], 16)
            if end + 2 > len(buffer):
                break
            for match in ID.finditer(buffer, line_end + 1, end):  # from the chunk line's \n: frames start on a line
                self.seqs.append(int(match.group(1)))
                self.times.append(now)
            at = end + 2
        self._rest = buffer[at:] if at >= 0 else buffer
        self._check_wanted()

    def holding(self, count: int) -> asyncio.Future[None]:
        """Done once the feed has received `count` updates in all."""
        self._wanted = (count, asyncio.get_running_loop().create_future())
        self._check_wanted()
        return self._wanted[1]

    def _check_wanted(self) -> None:
        if self._wanted and len(self.seqs) >= self._wanted[0] and not self._wanted[1].done():
            self._wanted[1].set_result(None)

    def _read_head(self, buffer: bytes) -> int:
        """Where the body starts, once the status line and headers are in; -1 before."""
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return -1
        self.status = int(buffer[9:12])
        if not self.opened.done():
            self.opened.set_result(self.status)
        if self.status != 200:
            self.close()
            return -1
        return end + 4

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed before the response"))
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    @property
    def last(self) -> int | None:
        return self.seqs[-1] if self.seqs else None


async def open_feeds(port: int, requests: list[bytes], concurrency: int = 500, timeout: float = 120.0) -> list[Feed]:
    """Connects every feed and waits for each to answer 200, a bounded number at a time so the listen queue holds."""
    gate = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()

    async def connect(request: bytes) -> Feed:
        async with gate:
            _, feed = await loop.create_connection(lambda: Feed(request), "127.0.0.1", port)
            status = await feed.opened
        if status != 200:
            raise RuntimeError(f"a feed was answered {status}")
        return feed

    return await asyncio.wait_for(asyncio.gather(*(connect(request) for request in requests)), timeout)
