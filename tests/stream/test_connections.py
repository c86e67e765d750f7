"""What a feed knows of its connection (services/stream/connections.py), noted around the whole app."""

from __future__ import annotations

import httpx
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from tests.support.memory import alive, collector_off
from tests.support.waiting import wait_until


async def test_a_request_is_freed_as_it_ends_not_left_for_the_collector(server: str) -> None:
    """The server's `send`, noted in the scope for the feeds, is a method of the object that holds the scope: unless
    it is forgotten at the request's end, every request is a cycle for the collector."""
    with collector_off():
        for _ in range(10):
            async with httpx.AsyncClient(base_url=server) as http:  # a connection each, closed after
                assert (await http.get("/healthz")).status_code == 200
        await wait_until(lambda: alive(RequestResponseCycle) == 0, timeout=5, interval=0.2)
