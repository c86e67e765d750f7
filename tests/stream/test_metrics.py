"""The stream service's metrics as an operator's dashboard reads them from /metrics, on a live server."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.http import get
from tests.support.servers import gauge
from tests.support.sse import events
from tests.support.updates import publish
from tests.support.waiting import wait_until

LATENCY = "gossip_delivery_latency_seconds"
LAG = 'gossip_stream_change_lag_seconds{collection="updates"}'


async def test_an_update_is_timed_once_per_process_however_many_of_its_feeds_carry_it(
    server: str, alice: httpx.AsyncClient
) -> None:
    await alice.put("/api/me/follows/flash")
    async with events(alice) as followed, events(alice, "/events/all") as everything:
        count, total = gauge(server, f"{LATENCY}_count"), gauge(server, f"{LATENCY}_sum")
        sent = await publish(alice, "flash", "timed")
        assert (await followed.updates(1), await everything.updates(1)) == ([sent], [sent])
        await wait_until(lambda: gauge(server, f"{LATENCY}_count") > count)
    assert gauge(server, f"{LATENCY}_count") == count + 1
    assert 0 <= gauge(server, f"{LATENCY}_sum") - total < 5  # seconds from its created_at to its fan-out
    assert 0 <= gauge(server, LAG) < 5  # set by the change that brought it


def test_the_latency_buckets_run_from_a_millisecond_to_half_a_minute(server: str) -> None:
    text = get(f"{server}/metrics", timeout=5).text
    (family,) = [family for family in text_string_to_metric_families(text) if family.name == LATENCY]
    bounds = sorted({sample.labels["le"] for sample in family.samples if sample.name.endswith("_bucket")}, key=float)
    assert (float(bounds[0]), float(bounds[-2]), bounds[-1]) == (0.001, 30.0, "+Inf")
