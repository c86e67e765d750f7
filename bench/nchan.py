"""The peer: nginx with the nchan module, the C pub/sub server people pick for SSE, run beside Gossip in the same
`make bench` so that each figure is read as a ratio to it rather than against a machine whose speed drifts.

Debian packages it as nginx-light and libnginx-mod-nchan. When they are missing, the bench installs them if it runs
as root with apt-get; otherwise it says so in one line and measures Gossip alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import psutil

from bench.cluster import STARTUP, Usage
from bench.crowd import Share
from bench.http import Connection, Publisher
from bench.sse import Feed, open_feeds
from dev.processes import ChildProcess, on_a_free_port
from shared.db import SHOWS, iso_utc, utcnow

PACKAGES = ("nginx-light", "libnginx-mod-nchan")
MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")  # where Debian's package puts it
CONF = Path(__file__).with_name("nchan.conf")
INSTALL_TIMEOUT = 300.0


def installed_here() -> str | None:
    """nginx's path when both it and the module are there."""
    binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    return binary if binary and MODULE.exists() else None


def installed() -> tuple[str | None, str]:
    """nginx's path, installing the packages first where the machine allows; else None and why, in one line."""
    if binary := installed_here():
        return binary, ""
    how = f"apt-get install {' '.join(PACKAGES)}"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, f"nchan skipped: nginx with the nchan module is not installed, and this bench cannot ({how})"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        try:
            subprocess.run(command, env=env, capture_output=True, check=True, timeout=INSTALL_TIMEOUT)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            return None, f"nchan skipped: `{' '.join(command)}` failed ({error})"
    if binary := installed_here():
        return binary, ""
    return None, f"nchan skipped: {how} ran, but {MODULE} is still missing"


def subscription(show: str) -> bytes:
    """An EventSource feed of one show's channel."""
    return f"GET /sub?show={show} HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n\r\n".encode()


class Nchan:
    """One nginx with one worker under a prefix of its own, with the same load client as Gossip's deployment."""

    name = "nchan"

    def __init__(self, server: ChildProcess, workers: int = 1) -> None:
        self.server, self.workers = server, workers
        self.publishers: list[Publisher] = []
        self._seqs = itertools.count(1)

    async def followers(self, count: int) -> list[Feed]:
        return await open_feeds(self.server.port, [subscription("flash")] * count)

    async def shares(self, shows: Sequence[str], per_user: int = 1) -> list[Share]:
        """As many shares as workers, all on nginx's one port, which each worker listens on (reuseport). nchan has
        no users."""
        count = self.workers
        return [Share(self.server.port, [subscription(show) for show in shows[number::count]],
                      list(shows[number::count])) for number in range(count)]  # fmt: skip

    async def publisher(self, connections: int = 1) -> Publisher:
        """Posts what Gossip's stream would send as the frame's data, its seq counted here, so frames weigh the
        same and the feeds read both alike."""

        async def post(connection: Connection, show: str, text: str) -> int:
            seq = next(self._seqs)
            update = {"seq": seq, "show": show, "title": SHOWS.get(show, show), "text": text, "author": "bench",
                      "created_at": iso_utc(utcnow())}  # fmt: skip
            status, body = await connection.post(f"/pub?show={show}", update, {"accept": "application/json"})
            if status not in (201, 202):  # 202: accepted, though no subscriber was there to get it
                raise RuntimeError(f"nchan's publish answered {status}: {body}")
            return seq

        publisher = Publisher([await Connection.open(self.server.port) for _ in range(connections)], post)
        self.publishers.append(publisher)
        return publisher

    async def served(self) -> None:
        """nchan measures no latency of its own."""
        return

    def usage(self) -> Usage:
        """Its worker's: the process that holds the feeds (the master only starts it)."""
        assert self.server.process is not None
        return Usage.of(psutil.Process(self.server.process.pid).children())


@contextlib.asynccontextmanager
async def running(nginx: str, workers: int = 1) -> AsyncIterator[Nchan]:
    """A fresh nginx for each scenario, as Gossip gets fresh service processes; its files go to a temp prefix.
    `workers`: nginx's worker processes, as many as Gossip's stream processes it is compared with; with more than
    one, each listens on a socket of its own (reuseport), so the kernel spreads the feeds evenly."""
    with tempfile.TemporaryDirectory(prefix="gossip-bench-nchan-") as prefix:
        (Path(prefix) / "temp").mkdir()

        def server(port: int) -> ChildProcess:  # nginx cannot listen on port 0
            conf = Path(prefix) / "nginx.conf"
            filled = {"@MODULE@": str(MODULE), "@PORT@": str(port), "@WORKERS@": str(workers),
                      "@REUSEPORT@": " reuseport" if workers > 1 else ""}  # fmt: skip
            conf.write_text(functools.reduce(lambda text, pair: text.replace(*pair), filled.items(), CONF.read_text()))
            command = [nginx, "-p", f"{prefix}/", "-c", str(conf), "-e", f"{prefix}/error.log"]
            return ChildProcess(command, os.environ, port, ready_path="/ready")

        nchan = Nchan(await asyncio.to_thread(on_a_free_port, server, STARTUP), workers)
        try:
            yield nchan
        finally:
            for publisher in nchan.publishers:
                await publisher.close()
            await asyncio.to_thread(nchan.server.stop)
