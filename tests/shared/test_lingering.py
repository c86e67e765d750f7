"""Lingering close (shared/lingering.py) over real sockets: a client that sends a large body at once, without waiting
for `100-continue`, reads the whole answer, its JSON error included, instead of a connection reset."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

BODY = 4 * 1024 * 1024  # far more than the socket buffers hold: unread, it makes the close a reset


async def send_at_once(server: str, path: str, content_type: str, close: bool) -> tuple[int, dict[str, str], bytes]:
    """Head and body written in one go, then everything read back until the server closes: the status, the
    headers and the body of the answer."""
    port = int(server.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: {content_type}\r\ncontent-length: {BODY}\r\n"
            + ("connection: close\r\n" if close else "") + "\r\n")  # fmt: skip
    try:
        writer.write(head.encode() + b"x" * BODY)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)  # to the end: the server closes after its answer
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    header_block, _, body = rest.partition(b"\r\n\r\n")
    headers = dict(line.decode().lower().split(": ", 1) for line in header_block.split(b"\r\n"))
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("path", "content_type", "status"),
    [
        ("/api/auth/login", "application/json", 413),  # decided from Content-Length
        ("/api/auth/login", "text/plain", 415),  # refused before the body is looked at
        ("/api/me/tokens", "application/json", 401),
        ("/api/no/such/thing", "application/json", 404),
        ("/login", "application/x-www-form-urlencoded", 413),  # a page's form
    ],
)
@pytest.mark.parametrize("close", [True, False], ids=["connection-close", "keep-alive"])
async def test_a_body_sent_at_once_gets_the_whole_json_error_not_a_reset(
    server: str, path: str, content_type: str, status: int, close: bool
) -> None:
    for _ in range(5):
        got, headers, body = await send_at_once(server, path, content_type, close)
        assert (got, headers["connection"], len(body)) == (status, "close", int(headers["content-length"]))
        assert set(json.loads(body)) == {"error", "detail", "fields"}


async def test_a_body_that_was_read_keeps_the_connection_open(client: httpx.AsyncClient) -> None:
    """Only an answer given with the body unread closes the connection."""
    response = await client.post("/api/auth/login", json={"username": "nobody", "password": "a-long-pass"})
    assert response.status_code == 401 and "connection" not in response.headers
