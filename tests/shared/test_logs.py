"""The access log over real HTTP: what a request can and cannot write into a log line."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from shared.logs import TextFormatter
from tests.support.waiting import wait_until

FORGED = "2026-11-25 10:00:00,000 ERROR gossip.auth admin"


async def test_a_request_path_cannot_forge_a_text_log_line(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gossip.access")
    await client.get("/x%0A" + FORGED.replace(" ", "%20"))
    (record,) = await wait_until(lambda: [r for r in caplog.records if r.name == "gossip.access"])
    line = TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s").format(record)
    assert "\n" not in line
    assert f'service=gossip method=GET path="/x\\n{FORGED}" status=404' in line  # plain values stay bare


async def test_a_feed_its_client_left_before_it_answered_is_logged_499_not_500(
    server: str, alice: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A page left at once: the feed's request ends with no answer sent, which is no server error."""
    caplog.set_level(logging.INFO, logger="gossip.access")
    port = int(server.rpartition(":")[2])
    cookie = "; ".join(f"{name}={value}" for name, value in alice.cookies.items())
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n".encode())
    writer.close()

    def feeds() -> list[dict[str, object]]:
        logged = [getattr(record, "fields", {}) for record in caplog.records if record.name == "gossip.access"]
        return [fields for fields in logged if fields.get("path") == "/events"]

    (fields,) = await wait_until(feeds)
    assert fields["status"] == 499, fields
