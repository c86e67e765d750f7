"""The access log over real HTTP: what a request can and cannot write into a log line."""

from __future__ import annotations

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
