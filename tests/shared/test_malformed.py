"""A request uvicorn cannot parse, sent over a raw socket, gets the JSON error body (shared/malformed.py): from a
live server in this process, from a service run as production runs it (uvicorn's command line), and from `make run`.
These fail if uvicorn stops calling the method the protocol overrides, or renames it."""

from __future__ import annotations

import json
import os
import socket
import sys

import pytest
import yaml
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from dev.processes import ChildProcess, ServiceProcess, on_a_free_port
from shared.malformed import DETAIL, SPEC, JsonErrorProtocol
from shared.settings import ROOT, Settings

GARBAGE = [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32) + b"\r\n\r\n",  # TLS spoken to the plain port
    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Name: space in the name\r\n\r\n",
    b"GET /heal thz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n",
]


def exchange(port: int, raw: bytes) -> tuple[str, dict[str, str], bytes]:
    """Sends `raw` and reads until the server closes: the status line, the headers, the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return status, headers, body


def assert_json_400(port: int, raw: bytes) -> None:
    status, headers, body = exchange(port, raw)
    assert status == "HTTP/1.1 400 Bad Request", (status, body)
    assert headers["content-type"] == "application/json" and int(headers["content-length"]) == len(body)
    assert (headers["x-content-type-options"], headers["connection"]) == ("nosniff", "close")
    assert json.loads(body) == {"error": "bad_request", "detail": DETAIL, "fields": {}} and body.endswith(b"}\n")


@pytest.mark.parametrize("raw", GARBAGE)
def test_a_request_that_cannot_be_parsed_gets_the_json_error_body(server: str, raw: bytes) -> None:
    assert_json_400(int(server.rsplit(":", 1)[1]), raw)


def test_the_override_is_of_a_method_uvicorn_still_has() -> None:
    """Should uvicorn rename it, the override would be dead code that the test above catches; this names why."""
    assert callable(vars(HttpToolsProtocol).get("send_400_response"))
    assert "send_400_response" in vars(JsonErrorProtocol)


def test_a_service_run_as_in_production_answers_garbage_with_json(settings: Settings) -> None:
    with ServiceProcess("services.ingest.app", settings) as ingest:
        assert_json_400(ingest.port, GARBAGE[1])


def test_make_run_answers_garbage_with_json(settings: Settings) -> None:
    env = {**os.environ, "SECRET_KEY": "test", "MONGO_URL": settings.mongo_url, "MONGO_DB": settings.mongo_db}

    def gossip(port: int) -> ChildProcess:
        return ChildProcess([sys.executable, "-m", "dev.run"], {**env, "PORT": str(port)}, port)

    with on_a_free_port(gossip) as served:
        assert_json_400(served.port, GARBAGE[2])


def test_docker_compose_runs_each_service_with_it() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("auth", "ingest", "stream"):
        entrypoint = services[name]["entrypoint"]
        assert entrypoint[entrypoint.index("--http") + 1] == SPEC
