"""The benchmark scenarios at a small scale, so that `make bench` keeps working and its checks keep checking."""

from __future__ import annotations

from bench.scenarios import catch_up, mixed


async def test_mixed_feeds_each_get_exactly_their_shows(mongo_url: str) -> None:
    result = await mixed(mongo_url, feeds=12, everything=3, updates=30)
    assert all(result.targets.values()), result.line()
    assert (result.figures["wrong"], result.figures["lost"], result.figures["dup"]) == (0, 0, 0)
    assert result.figures["deliveries"] == 30 * 2 + 30 * 3  # two of the 12 feeds follow each show; 3 follow all


async def test_feeds_that_come_back_get_what_they_missed_once(mongo_url: str) -> None:
    result = await catch_up(mongo_url, feeds=20, updates=10)
    assert (result.figures["lost"], result.figures["dup"]) == (0, 0), result.line()
