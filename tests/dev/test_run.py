"""`make run` (dev.run.py) as the process a terminal starts: what it says when it cannot start or stops."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import psutil
import pytest

from dev.processes import PORT_TRIES, ChildProcess, free_port, on_a_free_port
from shared.settings import ROOT, Settings
from tests.support.http import async_client, get, sync_client
from tests.support.waiting import wait_until

COMMAND = [sys.executable, "-m", "dev.run"]


def run(**env: str) -> subprocess.CompletedProcess[str]:
    """`python -m dev.run` as `make run` starts it, expected to give up at once; on a web port free when asked unless
    `env` names one, and on another should something take that one first (only then does it say "or set PORT")."""
    for _ in range(PORT_TRIES):
        variables = {**os.environ, "SECRET_KEY": "test", "PORT": str(free_port()), **env}
        result = subprocess.run(COMMAND, env=variables, cwd=ROOT, capture_output=True, text=True, timeout=30)
        if "PORT" in env or "or set PORT" not in result.stderr:
            break
    return result


def started(
    command: list[str], env: Mapping[str, str], ready_path: str = "/readyz", embedded: bool = False
) -> ChildProcess:
    """`command` serving on a web port free when asked, with `embedded` an EMBEDDED_PORT too; made again on others
    should something take either first (or the kernel hand out the same port twice, to a run that then finds its
    database's port taken by its own web port)."""

    def make(port: int) -> ChildProcess:
        ports = {"PORT": str(port), **({"EMBEDDED_PORT": str(free_port())} if embedded else {})}
        return ChildProcess(command, {**env, **ports}, port, ready_path)

    return on_a_free_port(make)


def test_an_embedded_port_in_use_is_refused_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run(EMBEDDED_PORT=str(taken.getsockname()[1]))
    assert result.returncode == 1
    assert "already in use by another program" in result.stderr and "set EMBEDDED_PORT" in result.stderr
    assert f"(pid {os.getpid()}: " in result.stderr  # this test's process holds it
    assert "Traceback" not in result.stderr and "Gossip on http" not in result.stderr


def test_a_web_port_in_use_is_said_before_anything_claims_to_serve(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run(PORT=str(taken.getsockname()[1]), EMBEDDED_DATA=str(tmp_path), EMBEDDED_PORT=str(free_port()))
    assert result.returncode == 1
    assert "or set PORT" in result.stderr and "Traceback" not in result.stderr
    assert f"; pid {os.getpid()}: " in result.stderr  # who to stop: this test's process holds it
    assert "Gossip on http" not in result.stderr and not (tmp_path / "db").exists()  # no database was started


def test_a_run_killed_outright_leaves_nothing_in_the_next_ones_way(tmp_path: Path) -> None:
    """SIGKILL gives the run no chance to stop its database, which lives in its own session: the next run finds it
    by its pid file on the same data directory, stops it and starts afresh on the same port."""
    env = {**os.environ, "SECRET_KEY": "test", "EMBEDDED_DATA": str(tmp_path)}
    with started(COMMAND, env, embedded=True) as first:
        assert first.process is not None
        (leftover,) = psutil.Process(first.process.pid).children()
        first.process.kill()
        first.process.wait(5)
    assert leftover.is_running()
    try:
        with started(COMMAND, first.env) as second:  # the same EMBEDDED_PORT, where the leftover still listens
            assert get(f"{second.url}/readyz", timeout=5).status_code == 200
        assert f"a previous run left running (pid {leftover.pid})" in second.output()
        assert not leftover.is_running()
    finally:
        if leftover.is_running():
            leftover.kill()


def test_make_run_killed_outright_takes_gossip_and_its_database_with_it(tmp_path: Path) -> None:
    """SIGKILL reaches make alone, as `kill -9` of its pid does: Gossip, the process its recipe became, hears of it
    from the kernel and stops as on Ctrl-C, database included, so the next `make run` starts on the same ports."""
    env = {**os.environ, "SECRET_KEY": "test", "EMBEDDED_DATA": str(tmp_path)}
    make = ["make", "--no-print-directory", "-C", str(ROOT), "-o", ".venv/installed", "run", f"PY={sys.executable}"]
    with started(make, env, embedded=True) as first:
        assert first.process is not None
        (gossip,) = psutil.Process(first.process.pid).children()
        (database,) = gossip.children()
        first.process.kill()
        try:
            gossip.wait(30)  # psutil.TimeoutExpired if it serves on
            database.wait(10)
        finally:
            for process in (gossip, database):
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
    assert "Application shutdown complete" in first.output()
    with ChildProcess(make, first.env, first.port) as second:  # the same ports, both given back
        assert get(f"{second.url}/readyz", timeout=5).status_code == 200
    assert "left running" not in second.output()


def test_a_second_run_on_the_same_data_leaves_the_first_ones_database_alone(tmp_path: Path) -> None:
    """Only a killed run's server is a leftover to stop: a live run's is still its child, and is left running."""
    env = {**os.environ, "SECRET_KEY": "test", "EMBEDDED_DATA": str(tmp_path)}
    with started(COMMAND, env, embedded=True) as first:
        assert first.process is not None
        (database,) = psutil.Process(first.process.pid).children()
        second = run(EMBEDDED_PORT=first.env["EMBEDDED_PORT"], EMBEDDED_DATA=str(tmp_path))
        assert database.is_running() and get(f"{first.url}/readyz", timeout=5).status_code == 200
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert f"the data of a `make run` still running (pid {first.process.pid})" in second.stderr
    assert "EMBEDDED_DATA" in second.stderr and "Gossip on http" not in second.stderr


def test_a_bad_setting_is_one_line_and_exit_status_2() -> None:
    result = run(PORT="abc")
    assert result.returncode == 2
    assert result.stderr == "gossip: PORT must be a port number from 1 to 65535, got 'abc'\n"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_or_a_closed_terminal_shuts_down_and_leaves_the_program(settings: Settings, signum: int) -> None:
    """Leaving the program, not being killed by the signal, is what runs the `with` that stops the database."""
    env = {**os.environ, "SECRET_KEY": "test", "MONGO_URL": settings.mongo_url, "MONGO_DB": settings.mongo_db}
    with started(COMMAND, env, ready_path="/healthz") as gossip:
        assert gossip.process is not None
        gossip.process.send_signal(signum)
        assert gossip.process.wait(10) == 128 + signal.SIGTERM
    assert "Application shutdown complete" in gossip.output()


def test_when_the_embedded_database_dies_gossip_stops_and_says_so(tmp_path: Path) -> None:
    """A stop ends within seconds whatever the database does: every goodbye to it is bounded or skipped, and no
    cancelled call leaves the client's locks taken (shared/db.py)."""
    env = {**os.environ, "SECRET_KEY": "test", "EMBEDDED_DATA": str(tmp_path)}
    with started(COMMAND, env, embedded=True) as gossip:
        assert gossip.process is not None
        (database,) = psutil.Process(gossip.process.pid).children()
        database.kill()
        assert gossip.process.wait(8) == 1
    assert "the embedded MongoDB-protocol server was killed by signal 9" in gossip.output()
    assert "Application shutdown complete" in gossip.output()


def test_make_run_believes_no_forwarded_header(settings: Settings) -> None:
    """uvicorn alone would believe X-Forwarded-For from 127.0.0.1, so every loopback client could choose its
    address and never be throttled."""
    env = {**os.environ, "SECRET_KEY": "test", "MONGO_URL": settings.mongo_url, "MONGO_DB": settings.mongo_db,
           "LOGIN_FAILURES_PER_ADDRESS": "2", "LOGIN_WINDOW": "3600"}  # fmt: skip
    with started(COMMAND, env) as gossip, sync_client(base_url=gossip.url, timeout=30) as http:
        login = {"username": "nobody", "password": "not-the-password"}
        statuses = [
            http.post("/api/auth/login", json=login, headers={"x-forwarded-for": f"198.51.100.{n}"}).status_code
            for n in range(3)
        ]
    assert statuses == [401, 401, 429]


def _listening_on(port: int, processes: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in processes if any(c.laddr.port == port and c.status == psutil.CONN_LISTEN
                                        for c in p.net_connections("tcp"))]  # fmt: skip


async def test_make_run_streams_3_serves_from_three_processes_on_one_port_and_stops_them(settings: Settings) -> None:
    """Each process listens on the port itself (SO_REUSEPORT), so the kernel spreads the feeds between them."""
    env = {**os.environ, "SECRET_KEY": "test", "MONGO_URL": settings.mongo_url, "MONGO_DB": settings.mongo_db}
    with started([*COMMAND, "--streams", "3"], env, ready_path="/healthz") as gossip:
        assert gossip.process is not None
        first = psutil.Process(gossip.process.pid)
        replicas = first.children()
        assert len(replicas) == 2
        await wait_until(lambda: len(_listening_on(gossip.port, [first, *replicas])) == 3, timeout=30)
        async with async_client(base_url=gossip.url, timeout=5) as http:
            assert (await http.get("/api/shows")).status_code == 200
        gossip.process.send_signal(signal.SIGTERM)
        assert gossip.process.wait(20) == 128 + signal.SIGTERM
    assert not any(replica.is_running() and replica.status() != psutil.STATUS_ZOMBIE for replica in replicas)
    assert "Gossip on http" in gossip.output() and "(3 processes)" in gossip.output()


def test_a_streams_count_out_of_range_is_refused() -> None:
    result = subprocess.run([*COMMAND, "--streams", "0"], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert result.returncode == 2 and "--streams" in result.stderr
