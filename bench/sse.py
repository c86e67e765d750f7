"""The load generator's feed: one SSE connection as a bare asyncio protocol.

A Python HTTP client costs more per event than the server under test, and shares the machine with it, so this one
does as little as it can while the load runs: it writes one GET, and each read notes only its moment, its bytes and
how many update frames ended in it. The frames are read afterwards (`seqs`, `times`): each update's seq is the first
field of its data. Comments (pings), `retry:` and `follows` events carry no seq and are passed over. The same client
reads Gossip (uvicorn sends a chunked body) and nchan (a plain body until the connection closes).
"""

from __future__ import annotations

import asyncio
import re
import time
from array import array
from typing import cast

from bench.http import request

SEQ_START = b'\ndata: {"seq":'  # a line start is a newline: a literal prefix, found fast
SEQ = re.compile(re.escape(SEQ_START) + rb"(\d+)")
FRAME_END = b"\n\n"
LAST_CHUNK = b"\r\n0\r\n\r\n"  # a chunked body's end: the previous chunk's CRLF, then a chunk of length 0


def feed_request(path: str, cookie: str, last_event_id: int | None = None) -> bytes:
    headers = {"accept": "text/event-stream", "cookie": f"gossip_session={cookie}"}
    if last_event_id is not None:
        headers["last-event-id"] = str(last_event_id)
    return request("GET", path, headers=headers)


class Feed(asyncio.Protocol):
    """`seqs[i]` arrived at `times[i]` (time.perf_counter, the same clock in every process on the machine)."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.status = 0
        self.chunked = False
        self.received = 0  # update frames so far
        self.opened: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # The server has ended the response: its chunked body is over (the connection may stay open, kept alive), or
        # the connection has closed.
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.BaseTransport | None = None
        self._head = b""  # the response's head while it is incomplete
        self._times: array[float] = array("d")
        self._reads: list[bytes] = []  # the body as it came, a read each, at _times
        self._tail = b""  # the last bytes read, in case a frame's seq straddles two reads
        self._wanted: tuple[int, asyncio.Future[None]] | None = None
        self._parsed: tuple[array[int], array[float]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        cast(asyncio.WriteTransport, transport).write(self.request)  # uvloop's transports are not asyncio's classes

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.status:
            data = self._read_head(data)
        if self.status != 200 or not data:
            return  # the head is not whole yet, or refused (the body is an error, and the connection is closing)
        self._times.append(now)
        self._reads.append(data)
        self.received += data.count(SEQ_START)
        if self._tail:
            self.received += (self._tail + data[: len(SEQ_START) - 1]).count(SEQ_START)
        if self.chunked and not self.ended.done() and self._last_chunk(data):
            self.ended.set_result(None)
        self._tail = data[1 - len(SEQ_START) :]
        if self._wanted and self.received >= self._wanted[0] and not self._wanted[1].done():
            self._wanted[1].set_result(None)

    def _last_chunk(self, data: bytes) -> bool:
        """Whether this read ends the chunked body; a short read is looked at with the bytes before it."""
        return (data if len(data) >= len(LAST_CHUNK) else self._tail + data).endswith(LAST_CHUNK)

    def holding(self, count: int) -> asyncio.Future[None]:
        """Done once the feed has received `count` updates in all."""
        self._wanted = (count, asyncio.get_running_loop().create_future())
        if self.received >= count:
            self._wanted[1].set_result(None)
        return self._wanted[1]

    def _read_head(self, data: bytes) -> bytes:
        """The body's start once the status line and headers are in, else b""."""
        buffer = self._head + data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            self._head = buffer
            return b""
        self._head = b""
        self.status = int(buffer[9:12])
        self.chunked = b"\r\ntransfer-encoding: chunked\r\n" in buffer[: end + 2].lower()
        if not self.opened.done():
            self.opened.set_result(self.status)
        if self.status != 200:
            self.close()
            return b""
        return buffer[end + 2 :]  # from the blank line's \r\n: a first frame starts on a line too

    @property
    def seqs(self) -> array[int]:
        return self._parse()[0]

    @property
    def times(self) -> array[float]:
        return self._parse()[1]

    def _parse(self) -> tuple[array[int], array[float]]:
        """Each update frame with the moment of the read that completed it; once, after the load."""
        if self._parsed is None or len(self._parsed[0]) != self.received:
            seqs, times, rest = array("q"), array("d"), b""
            body = self._body_chunks if self.chunked else self._body_frames
            for now, data in zip(self._times, self._reads, strict=True):
                rest = body(rest + data, now, seqs, times)
            self._parsed = seqs, times
        return self._parsed

    @staticmethod
    def _body_chunks(buffer: bytes, now: float, seqs: array[int], times: array[float]) -> bytes:
        """uvicorn sends each write of the stream service as one chunk, and each write holds whole frames."""
        at = 2  # past the \r\n before the first chunk (the head's blank line, or the end of the chunk before)
        while (line_end := buffer.find(b"\r\n", at)) >= 0:
            end = line_end + 2 + int(buffer[at:line_end], 16)
            if end + 2 > len(buffer):
                break
            for match in SEQ.finditer(buffer, line_end + 1, end):  # from the chunk line's \n: frames start on a line
                seqs.append(int(match.group(1)))
                times.append(now)
            at = end + 2
        return buffer[at - 2 :]

    @staticmethod
    def _body_frames(buffer: bytes, now: float, seqs: array[int], times: array[float]) -> bytes:
        """A plain body: whatever ends with a blank line is whole frames."""
        end = buffer.rfind(FRAME_END)
        if end < 0:
            return buffer
        for match in SEQ.finditer(buffer, 0, end):
            seqs.append(int(match.group(1)))
            times.append(now)
        return buffer[end + 1 :]  # from the blank line's \n: the next frame starts on a line

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed before the response"))
        for future in (self.closed, self.ended):
            if not future.done():
                future.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_feed(port: int, request: bytes, address: str = "127.0.0.1", timeout: float = 120.0) -> Feed:
    """One feed, connected from `address` (any of 127/8) and answered: its `status` says with what. One left
    unanswered for `timeout` seconds is closed, and TimeoutError raised."""
    loop = asyncio.get_running_loop()
    connecting = loop.create_connection(lambda: Feed(request), "127.0.0.1", port, local_addr=(address, 0))
    _, feed = await asyncio.wait_for(connecting, timeout)
    try:
        await asyncio.wait_for(asyncio.shield(feed.opened), timeout)
    except BaseException:
        feed.close()
        raise
    return feed


async def open_feeds(
    port: int, requests: list[bytes], concurrency: int = 500, timeout: float = 600.0, addresses: list[str] | None = None
) -> list[Feed]:
    """Connects every feed and waits for each to answer 200, a bounded number at a time so the listen queue holds;
    all within `timeout` (10,000 took over two minutes on this machine while others kept it busy).
    `addresses[i]`: where feed i connects from (of 127/8), so that more feeds than a loopback address has ports for
    can be open at once; by default 127.0.0.1."""
    gate = asyncio.Semaphore(concurrency)

    async def connect(request: bytes, address: str) -> Feed:
        async with gate:
            feed = await open_feed(port, request, address)
        if feed.status != 200:
            raise RuntimeError(f"a feed was answered {feed.status}")
        return feed

    sources = addresses or ["127.0.0.1"] * len(requests)
    opening = (connect(request, address) for request, address in zip(requests, sources, strict=True))
    return await asyncio.wait_for(asyncio.gather(*opening), timeout)
