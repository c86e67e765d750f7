"""The embedded MongoDB-protocol server as a child process: its own port, its own session, always stopped."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from dev.embedded import EmbeddedMongo
from dev.processes import listening_ports


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        mongo = EmbeddedMongo(tmp_path / "mongo", port=taken.getsockname()[1])
        try:
            with pytest.raises(RuntimeError, match="already in use"):
                mongo.start()
        finally:
            mongo.stop()
    assert mongo.process is None and not mongo.data.exists()


def test_the_server_runs_in_its_own_session_and_stops_at_exit(tmp_path: Path) -> None:
    """Its own session: Ctrl-C in a terminal signals the app's process group, not the database under it."""
    with EmbeddedMongo(tmp_path) as mongo:
        assert mongo.process is not None
        assert os.getsid(mongo.process.pid) == mongo.process.pid != os.getsid(0)
    assert mongo.process.poll() is not None


def test_a_server_given_no_port_listens_on_one_it_chose_and_keeps_it_when_restarted(tmp_path: Path) -> None:
    mongo = EmbeddedMongo(tmp_path).start()
    try:
        chosen = mongo.port
        assert mongo.process is not None and listening_ports(mongo.process.pid) == {chosen} and chosen != 0
        mongo.stop()
        mongo.start()  # its clients reconnect to the URL they were given
        assert mongo.process is not None and listening_ports(mongo.process.pid) == {chosen}
        assert mongo.url == f"mongodb://127.0.0.1:{chosen}/?directConnection=true"
    finally:
        mongo.stop()
