"""Servers as child processes on loopback ports: a service as its own uvicorn, as production runs it, or any other
server (Caddy, nginx). Waited for until they answer, always stopped, their output kept.

A port chosen here and handed to a child is free only until something else takes it, which on a machine shared
with other tests and benchmarks happens: so a child binds port 0 itself where it can, and its port is read from its
listening socket; where it cannot, it is started again on another port (`on_a_free_port`). Either way it is trusted
only once it listens itself, never because some server answers on the port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import IO, Self, TypeVar

import httpx
import psutil

from shared.malformed import SPEC
from shared.settings import Settings

PORT_TRIES = 3  # on_a_free_port's: another program taking the port three times in a row is no race but a fault


def free_port() -> int:
    """A port free now, and only now: for a child that cannot bind port 0 itself, started by `on_a_free_port`."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening_ports(pid: int) -> set[int]:
    """The TCP ports a process and the processes it started listen on; none once it has gone."""
    try:
        parent = psutil.Process(pid)
        family = [parent, *parent.children(recursive=True)]
    except psutil.Error:
        return set()
    ports: set[int] = set()
    for process in family:
        with contextlib.suppress(psutil.Error):
            ports |= {c.laddr.port for c in process.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    return ports


def listening_on(pid: int, port: int) -> int | None:
    """`port` once the process itself (or one it started) listens there; asked for port 0, the one port it listens on
    once it does; None before. Until then another program may hold `port` and answer in its place."""
    ports = listening_ports(pid)
    if port == 0:
        return next(iter(ports)) if len(ports) == 1 else None
    return port if port in ports else None


def holder(port: int) -> str:
    """Who listens on a loopback port, as "pid N: its command", when that is a process of this user's, else "": a
    port taken by a run left going (a `make run` killed outright) is one `kill` away once its pid is said."""
    try:
        pids = sorted(c.pid for c in psutil.net_connections("tcp") if c.pid is not None and c.laddr
                      and c.laddr.port == port and c.status == psutil.CONN_LISTEN)  # fmt: skip
        return f"pid {pids[0]}: {' '.join(psutil.Process(pids[0]).cmdline())}" if pids else ""
    except (psutil.Error, OSError):
        return ""


def terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, as an orchestrator sends it, and SIGKILL if the process has not gone within `timeout`."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class ChildProcess:
    """A server as a child process on a loopback port: waited for until it answers, always stopped, output kept."""

    def __init__(self, command: list[str], env: Mapping[str, str], port: int = 0, ready_path: str = "/readyz") -> None:
        """`port` 0: the command has the child bind a port of its own choosing (`--port 0`), read at each start from
        the one socket it listens on. Any other: the port the command names, which something else may have taken."""
        self.command, self.env, self.port, self.ready_path = command, dict(env), port, ready_path
        self.scheme, self.host = "http", "127.0.0.1"  # how a client names it
        self._chooses = port == 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None  # while a process runs: a file, since a pipe nobody reads would block it
        self._earlier = b""  # what stopped runs wrote

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def ready_url(self) -> str:
        return self.url + self.ready_path

    def start(self, timeout: float = 60.0) -> Self:
        """`timeout` bounds only a process that never answers: a busy machine can take tens of seconds to start one."""
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop, which every start is paired with)
        self.process = subprocess.Popen(self.command, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        if not self._became_ready(time.monotonic() + timeout):
            self.stop()
            raise RuntimeError(f"{self.command} did not become ready:\n{self.output()}")
        return self

    def _became_ready(self, deadline: float) -> bool:
        """Listening itself first, then answering: before it listens, an answer on the port is someone else's."""
        assert self.process is not None
        with httpx.Client(timeout=1) as http:  # one client for every try: each new one loads the CA bundle again
            while (port := listening_on(self.process.pid, 0 if self._chooses else self.port)) is None:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
            self.port = port
            while not self._ready(http):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
        return True

    def _ready(self, http: httpx.Client) -> bool:
        try:
            return http.get(self.ready_url).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout: float = 10.0) -> float:
        """SIGTERM, as an orchestrator sends it; returns how long the process took to exit."""
        assert self.process is not None
        start = time.monotonic()
        terminate(self.process, timeout)
        if self._log is not None:
            self._earlier = self._written()
            self._log.close()
            self._log = None
        return time.monotonic() - start

    def _written(self) -> bytes:
        if self._log is None:
            return self._earlier
        self._log.seek(0)
        return self._earlier + self._log.read()

    def output(self) -> str:
        """Everything the process has written so far, its log lines included, across restarts."""
        return self._written().decode(errors="replace")

    def __enter__(self) -> Self:
        """Started, unless it runs already (`on_a_free_port` starts it): the `with` then only stops it."""
        return self if self.process is not None and self.process.poll() is None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


Child = TypeVar("Child", bound=ChildProcess)


def on_a_free_port(make: Callable[[int], Child], timeout: float = 60.0) -> Child:
    """`make(port)`'s process, started on a port free when asked, for a child that cannot bind port 0 itself: if
    something else takes the port first, the child fails to listen, and another is made on another port, up to
    PORT_TRIES times in all. Any other failure fails each try the same way, and the last one is raised."""
    for _ in range(PORT_TRIES - 1):
        with contextlib.suppress(RuntimeError):
            return make(free_port()).start(timeout)
    return make(free_port()).start(timeout)


class ServiceProcess(ChildProcess):
    """One service as its own uvicorn process on a loopback port it chooses, as it runs in production."""

    def __init__(self, module: str, settings: Settings, *options: str, **env: str) -> None:
        command = [
            sys.executable, "-m", "uvicorn", f"{module}:app", "--host", "127.0.0.1", "--port", "0",
            "--timeout-graceful-shutdown", "5", "--no-proxy-headers", "--http", SPEC, *options,
        ]  # fmt: skip
        variables = {
            **os.environ, "SECRET_KEY": settings.secret_key, "MONGO_URL": settings.mongo_url,
            "MONGO_DB": settings.mongo_db, "PING_INTERVAL": str(settings.ping_interval),
            "HASH_WAIT": str(settings.hash_wait), "HASH_MEMORY": str(settings.hash_memory),
            "WATCH_RULES": str(settings.watch_rules or ""), **env,
        }  # fmt: skip
        super().__init__(command, variables)
