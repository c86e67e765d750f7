"""The embedded MongoDB-protocol server (nx-27017, SQLite underneath) as a child process on loopback."""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from dev.processes import holder, listening_on, terminate

log = logging.getLogger("gossip.embedded")


def _accepting(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class PortTaken(RuntimeError):
    """The port belongs to a program other than a server of ours on the same data directory."""


def _leftover(data: Path) -> psutil.Process | None:
    """The server a killed run left behind on this data directory: the pid in its pid file, if that process is
    still an nx-27017 on the same directory (a pid file can outlive its process, and pids are reused)."""
    try:
        process = psutil.Process(int((data / "nx-27017.pid").read_text().strip()))
        command = process.cmdline()
    except (OSError, ValueError, psutil.Error):
        return None
    same_data = str(data / "db") in command
    return process if same_data and any(Path(part).name == "nx-27017" for part in command[:2]) else None


def _live_run(server: psutil.Process) -> psutil.Process | None:
    """The `make run` a server on our data directory still belongs to: a killed run's server is handed to init (or a
    subreaper), while a live run's stays its child, and stopping that one would take the database from under it."""
    try:
        parent = server.parent()
        return parent if parent is not None and "dev.run" in parent.cmdline() else None
    except psutil.Error:
        return None


def _stop_leftover(process: psutil.Process, timeout: float = 10.0) -> None:
    log.warning("stopping the embedded server a previous run left running (pid %d)", process.pid)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except psutil.TimeoutExpired:
        process.kill()
        process.wait(timeout)


class EmbeddedMongo:
    """Started with its own data, pid and log files so that several can share a machine."""

    def __init__(self, data: Path, port: int | None = None) -> None:
        """`port` None: one the server chooses at its first start (nothing can take it first), kept for restarts."""
        self.data = data
        self.port = port or 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self, timeout: float = 20.0) -> EmbeddedMongo:
        """A server of ours that a killed run left on this data directory is stopped first; one a live run holds is
        refused. Any other program on the port is refused (PortTaken): the child would die on it while we
        talked to the other server."""
        if (leftover := _leftover(self.data)) is not None:
            if (run := _live_run(leftover)) is not None:
                raise RuntimeError(
                    f"{self.data} is the data of a `make run` still running (pid {run.pid}); stop "
                    "that one, or give this one an EMBEDDED_DATA and EMBEDDED_PORT of its own"
                )
            _stop_leftover(leftover)
        if self.port and _accepting(self.port):
            held = f" ({who})" if (who := holder(self.port)) else ""
            raise PortTaken(f"port {self.port} is already in use by another program{held}")
        self.data.mkdir(parents=True, exist_ok=True)
        executable = shutil.which("nx-27017", path=str(Path(sys.executable).parent)) or "nx-27017"
        command = [
            executable, "--host", "127.0.0.1", "--port", str(self.port),
            "--data-dir", str(self.data / "db"),
            "--pid-file", str(self.data / "nx-27017.pid"),
            "--log-file", str(self.data / "nx-27017.log"),
        ]  # fmt: skip
        # Its own session: Ctrl-C reaches only the app, which shuts down while the database still answers.
        with (self.data / "nx-27017.out").open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:  # checked first: something else may be answering on the port
                raise RuntimeError(f"nx-27017 exited with {self.process.returncode}; see {self.data}/nx-27017.out")
            if (port := listening_on(self.process.pid, self.port)) is not None:  # itself, not whoever took the port
                self.port = port
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nx-27017 did not listen on port {self.port} within {timeout} s")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            terminate(self.process, timeout)

    def __enter__(self) -> EmbeddedMongo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
