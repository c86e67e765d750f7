"""The machine's floor for fan-out, measured in the same run as the scenarios.

This VM's speed changes by the hour, so a latency means little without what a socket write costs right now. Here a
bare uvloop process writes one SSE-sized chunk to each of 1,000 loopback connections, a round every 20 ms or so:
first straight from a loop (the kernel's send and uvloop's write), then from a task per connection woken by a
future (as any asyncio server sends, the stream service included). fanout's stream µs/write reads against these.

`python -m bench.floor CONNECTIONS ROUNDS` is the writer: it prints its port, waits for its connections, and prints
its figures.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
from typing import cast

from bench import new_event_loop
from bench.cluster import Setup
from bench.progress import step
from bench.report import Result

PAUSE = 0.02  # after each round, so that the readers keep up
CHUNK = b"c8\r\n" + b"x" * 200 + b"\r\n"  # an update frame's size, chunked as uvicorn sends it


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _direct(transports: list[asyncio.WriteTransport], rounds: int) -> float:
    """CPU seconds per write, writing from one loop."""
    start = _cpu()
    for _ in range(rounds):
        for transport in transports:
            transport.write(CHUNK)
        await asyncio.sleep(PAUSE)
    return (_cpu() - start) / (rounds * len(transports))


async def _woken(transports: list[asyncio.WriteTransport], rounds: int) -> float:
    """CPU seconds per write, each written by its connection's own task once a future wakes it."""
    loop = asyncio.get_running_loop()
    wakes = [loop.create_future() for _ in transports]

    async def connection(index: int) -> None:
        while True:
            await wakes[index]
            wakes[index] = loop.create_future()
            transports[index].write(CHUNK)

    tasks = [asyncio.create_task(connection(index)) for index in range(len(transports))]
    await asyncio.sleep(PAUSE)  # every task is waiting on its first future
    start = _cpu()
    for _ in range(rounds):
        for wake in wakes:
            wake.set_result(None)
        await asyncio.sleep(PAUSE)
    spent = _cpu() - start
    for task in tasks:
        task.cancel()
    return spent / (rounds * len(transports))


async def write_rounds(connections: int, rounds: int) -> None:
    """The writer process: listens on a free loopback port, and once every connection is in, writes its rounds."""
    transports: list[asyncio.WriteTransport] = []
    everyone = asyncio.Event()

    class Connection(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transports.append(cast(asyncio.WriteTransport, transport))
            if len(transports) == connections:
                everyone.set()

    server = await asyncio.get_running_loop().create_server(Connection, "127.0.0.1", 0, backlog=connections)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.wait_for(everyone.wait(), 60)
    figures = {
        "write µs": await _direct(transports, rounds) * 1e6,
        "woken write µs": await _woken(transports, rounds) * 1e6,
    }
    print(json.dumps(figures), flush=True)
    server.close()


class _Reader(asyncio.Protocol):
    """Reads and drops: the floor is the writer's."""

    def data_received(self, data: bytes) -> None:
        pass


async def _said(writer: asyncio.subprocess.Process, timeout: float) -> bytes:
    """The writer's next line; a writer that died says so with its exit status, not with a parse error."""
    assert writer.stdout is not None
    line = await asyncio.wait_for(writer.stdout.readline(), timeout)
    if not line:
        raise RuntimeError(f"the floor's writer exited with status {await writer.wait()}")
    return line


async def floor(setup: Setup, connections: int = 1000, rounds: int = 100) -> Result:
    """Runs the writer as its own process, as the stream service is, and reads on its connections from here. The
    database and nchan are not used: the floor is the machine's."""
    step("floor", f"a bare writer to {connections:,} connections")
    command = [sys.executable, "-m", "bench.floor", str(connections), str(rounds)]
    writer = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    loop, readers = asyncio.get_running_loop(), list[asyncio.BaseTransport]()
    try:
        port = int(await _said(writer, 20))
        for _ in range(connections):
            readers.append((await loop.create_connection(_Reader, "127.0.0.1", port))[0])
        figures = json.loads(await _said(writer, 60))
        if status := await asyncio.wait_for(writer.wait(), 10):
            raise RuntimeError(f"the floor's writer exited with status {status}")
    finally:
        for reader in readers:
            reader.close()
        if writer.returncode is None:
            writer.kill()
            await writer.wait()
    return Result("floor", {"connections": connections, **figures}, {})


if __name__ == "__main__":
    asyncio.Runner(loop_factory=new_event_loop).run(write_rounds(int(sys.argv[1]), int(sys.argv[2])))
