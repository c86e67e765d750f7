"""Servers as child processes on loopback ports: a service as its own uvicorn, as production runs it, or any other
server (Caddy, nginx). Waited for until they answer, always stopped, their output kept."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import IO, Self

import httpx
import psutil

from shared.malformed import SPEC
from shared.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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

    def __init__(self, command: list[str], env: Mapping[str, str], port: int, ready_path: str = "/readyz") -> None:
        self.command, self.env, self.port = command, dict(env), port
        self.url = f"http://127.0.0.1:{port}"
        self.ready_url = self.url + ready_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None  # while a process runs: a file, since a pipe nobody reads would block it
        self._earlier = b""  # what stopped runs wrote

    def start(self, timeout: float = 60.0) -> Self:
        """`timeout` bounds only a process that never answers: a busy machine can take tens of seconds to start one."""
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop, which every start is paired with)
        self.process = subprocess.Popen(self.command, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1) as http:  # one client for every try: each new one loads the CA bundle again
            while not self._ready(http):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{self.command} did not become ready:\n{self.output()}")
                time.sleep(0.05)
        return self

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
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServiceProcess(ChildProcess):
    """One service as its own uvicorn process on a free loopback port, as it runs in production."""

    def __init__(self, module: str, settings: Settings, *options: str, **env: str) -> None:
        port = free_port()
        command = [
            sys.executable, "-m", "uvicorn", f"{module}:app", "--host", "127.0.0.1", "--port", str(port),
            "--timeout-graceful-shutdown", "5", "--no-proxy-headers", "--http", SPEC, *options,
        ]  # fmt: skip
        variables = {
            **os.environ, "SECRET_KEY": settings.secret_key, "MONGO_URL": settings.mongo_url,
            "MONGO_DB": settings.mongo_db, "PING_INTERVAL": str(settings.ping_interval),
            "HASH_WAIT": str(settings.hash_wait), "HASH_MEMORY": str(settings.hash_memory),
            "WATCH_RULES": str(settings.watch_rules or ""), **env,
        }  # fmt: skip
        super().__init__(command, variables, port)
