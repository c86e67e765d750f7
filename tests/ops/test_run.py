"""`make run` (services/run.py) as the process a terminal starts: what it says when it cannot start."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from shared.embedded import free_port
from shared.settings import ROOT


def run(**env: str) -> subprocess.CompletedProcess[str]:
    """`python -m services.run` as `make run` starts it, expected to give up at once."""
    variables = {**os.environ, "SECRET_KEY": "test", "PORT": str(free_port()), **env}
    command = [sys.executable, "-m", "services.run"]
    return subprocess.run(command, env=variables, cwd=ROOT, capture_output=True, text=True, timeout=30)


def test_an_embedded_port_in_use_is_refused_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run(EMBEDDED_PORT=str(taken.getsockname()[1]))
    assert result.returncode == 1
    assert "already in use" in result.stderr and "Traceback" not in result.stderr
    assert "Gossip on http" not in result.stderr


def test_a_bad_setting_is_one_line_and_exit_status_2() -> None:
    result = run(PORT="abc")
    assert result.returncode == 2
    assert result.stderr == "gossip: PORT must be a port number from 1 to 65535, got 'abc'\n"
