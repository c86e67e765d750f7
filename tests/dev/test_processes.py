"""Child processes on loopback ports: trusted only once they listen themselves, on a port nothing took first."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dev.processes import ChildProcess, listening_ports, on_a_free_port
from tests.support.http import get


class _Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Silent: what it serves is no part of the test's output."""


@pytest.fixture
def impostor() -> Iterator[int]:
    """Another program's server on a loopback port, answering 200 to everything: its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(5)


def http_server(directory: Path, port: int) -> ChildProcess:
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(directory)]
    return ChildProcess(command, {}, port, ready_path="/")


def test_a_child_that_chooses_its_port_is_found_on_it(tmp_path: Path) -> None:
    with http_server(tmp_path, 0) as child:
        assert child.process is not None and child.port != 0
        assert listening_ports(child.process.pid) == {child.port}
        assert get(child.url, timeout=5).status_code == 200


def test_another_server_answering_on_the_port_is_not_taken_for_the_child(tmp_path: Path, impostor: int) -> None:
    """The child cannot bind the port another program took first, and exits; the answer there is not its."""
    child = http_server(tmp_path, impostor)
    with pytest.raises(RuntimeError, match="did not become ready"):
        child.start(timeout=30)
    assert child.process is not None and child.process.returncode not in (None, 0)


def test_a_child_whose_port_was_taken_is_made_again_on_another(tmp_path: Path, impostor: int) -> None:
    told: list[int] = []

    def make(port: int) -> ChildProcess:
        told.append(port)
        return http_server(tmp_path, impostor if len(told) == 1 else port)  # the first one's port taken first

    with on_a_free_port(make, timeout=30) as child:
        assert child.port == told[1] != impostor
        assert child.process is not None and child.port in listening_ports(child.process.pid)
    assert len(told) == 2
