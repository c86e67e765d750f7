"""The crowd: 50,000 open feeds on this machine, over three stream processes (or three nchan workers), read by
load clients in processes of their own.

A process may hold 20,000 open files here, so neither one stream process nor one client can hold them all: the
feeds are shared between `SERVERS` server processes, and each server's are read by a client process of its own
(`python -m bench.crowd`, spoken to in JSON lines on its stdin and stdout). Each client connects from loopback
addresses of its own (127.<client>.<x>.<y>), `PER_ADDRESS` feeds each, since a loopback address has fewer ephemeral
ports than a client holds feeds. The clients note arrivals as the other scenarios' feeds do (bench/sse.py), and are
told at the end what was published and when, so that each reports its feeds' lost, duplicate and wrong updates and
its latencies (in a file, as an array of doubles), not every frame.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import new_event_loop
from bench.figures import Tally, all_arrived, tally
from bench.sse import Feed, open_feeds

SERVERS = 3
PER_ADDRESS = 1000
ARRIVAL_TIMEOUT = 120.0
ANSWER_TIMEOUT = 600.0  # for any one answer of a client: opening 17,000 feeds on a busy machine takes minutes


def addresses(client: int, count: int) -> list[str]:
    """Where client number `client` connects its `count` feeds from: PER_ADDRESS of them from each address."""
    return [f"127.{client + 10}.{number // PER_ADDRESS // 250}.{number // PER_ADDRESS % 250 + 1}"
            for number in range(count)]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Share:
    """What one client opens: the feeds of one server, each with the show it carries."""

    port: int
    requests: list[bytes]
    shows: list[str]


class Client:
    """The parent's handle on one client process."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls) -> Client:
        command = [sys.executable, "-m", "bench.crowd"]
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 26
        )
        return cls(process)

    async def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), ANSWER_TIMEOUT)
        if not line:
            raise RuntimeError(f"a crowd client exited with status {await self.process.wait()}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"a crowd client failed: {answer['error']}")
        return answer

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


class Crowd:
    """Every client's feeds, opened, then counted against what was published."""

    def __init__(self, clients: list[Client], shares: list[Share]) -> None:
        self.clients, self.shares = clients, shares

    async def open(self, client_number: int) -> None:
        share = self.shares[client_number]
        message = {"client": client_number, "port": share.port, "shows": share.shows,
                   "requests": [request.decode("latin-1") for request in share.requests]}  # fmt: skip
        await self.clients[client_number].ask(message)

    async def count(self, sent: dict[int, float], show_of: dict[int, str]) -> Tally:
        """Every client's tally, joined: latencies from the files the clients wrote."""
        with tempfile.TemporaryDirectory(prefix="gossip-crowd-") as folder:
            paths = [Path(folder) / f"{number}.latencies" for number in range(len(self.clients))]
            message = {"sent": {str(seq): at for seq, at in sent.items()},
                       "show_of": {str(seq): show for seq, show in show_of.items()}}  # fmt: skip
            answers = await asyncio.gather(*(client.ask({**message, "latencies": str(path)})
                                             for client, path in zip(self.clients, paths, strict=True)))  # fmt: skip
            latencies: list[float] = []
            for path in paths:
                read = array("d")
                read.frombytes(await asyncio.to_thread(path.read_bytes))
                latencies += read.tolist()
        return Tally(
            deliveries=sum(answer["deliveries"] for answer in answers),
            lost=sum(answer["lost"] for answer in answers),
            duplicates=sum(answer["dup"] for answer in answers),
            wrong=sum(answer["wrong"] for answer in answers),
            latencies=latencies,
            last_arrival=max(answer["last_arrival"] for answer in answers),
        )


async def crowd(shares: Sequence[Share]) -> Crowd:
    """A client process per share, each with its feeds open (all at once: each client opens a bounded number at a
    time)."""
    clients = [await Client.start() for _ in shares]
    opened = Crowd(clients, list(shares))
    try:
        await asyncio.gather(*(opened.open(number) for number in range(len(shares))))
    except BaseException:
        await asyncio.gather(*(client.stop() for client in clients))
        raise
    return opened


async def close(opened: Crowd) -> None:
    await asyncio.gather(*(client.stop() for client in opened.clients))


# The client process


async def _serve_client() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    feeds: list[Feed] = []
    shows: list[str] = []
    while line := await reader.readline():
        message = json.loads(line)
        try:
            if "port" in message:
                requests = [request.encode("latin-1") for request in message["requests"]]
                feeds = await open_feeds(message["port"], requests, 250, ANSWER_TIMEOUT,
                                         addresses(message["client"], len(requests)))  # fmt: skip
                shows = message["shows"]
                _say({"opened": len(feeds)})
            else:
                _say(await _counted(feeds, shows, message))
        except Exception as error:  # the parent hears why, then stops this process
            _say({"error": f"{type(error).__name__}: {error}"})


async def _counted(feeds: list[Feed], shows: list[str], message: dict[str, Any]) -> dict[str, Any]:
    """Waits (within a deadline) for every feed to hold what was published for its show, then tallies them."""
    sent = {int(seq): at for seq, at in message["sent"].items()}
    show_of = {int(seq): show for seq, show in message["show_of"].items()}
    by_show: dict[str, list[int]] = {}
    for seq in sorted(show_of):
        by_show.setdefault(show_of[seq], []).append(seq)
    expected = [by_show.get(show, []) for show in shows]
    await all_arrived(feeds, [len(seqs) for seqs in expected], ARRIVAL_TIMEOUT)
    got = tally(feeds, expected, sent)
    await asyncio.to_thread(Path(message["latencies"]).write_bytes, array("d", got.latencies).tobytes())
    return {"deliveries": got.deliveries, "lost": got.lost, "dup": got.duplicates, "wrong": got.wrong,
            "last_arrival": got.last_arrival}  # fmt: skip


def _say(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.Runner(loop_factory=new_event_loop).run(_serve_client())
