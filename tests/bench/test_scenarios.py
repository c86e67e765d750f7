"""The benchmark scenarios at a small scale, so that `make bench` keeps working and its checks keep checking."""

from __future__ import annotations

from bench import abuse
from bench.floor import floor
from bench.scenarios import catch_up, fanout, mixed


async def test_mixed_feeds_each_get_exactly_their_shows(mongo_url: str) -> None:
    result = await mixed(mongo_url, feeds=12, everything=3, updates=30)
    assert all(result.targets.values()), result.line()
    assert (result.figures["wrong"], result.figures["lost"], result.figures["dup"]) == (0, 0, 0)
    assert result.figures["deliveries"] == 30 * 2 + 30 * 3  # two of the 12 feeds follow each show; 3 follow all


async def test_feeds_that_come_back_get_what_they_missed_once(mongo_url: str) -> None:
    result = await catch_up(mongo_url, feeds=20, updates=10)
    assert (result.figures["lost"], result.figures["dup"]) == (0, 0), result.line()


async def test_the_floor_is_measured_by_a_writer_process_of_its_own(mongo_url: str) -> None:
    result = await floor(mongo_url, connections=20, rounds=5)
    assert result.figures["connections"] == 20
    assert 0 < float(result.figures["write µs"]) < 10_000, result.line()
    assert 0 < float(result.figures["woken write µs"]) < 10_000, result.line()


async def test_fanout_times_every_delivery_and_notes_the_streams_cost_per_write(mongo_url: str) -> None:
    result = await fanout(mongo_url, feeds=5, updates=10, rate=50.0)
    assert (result.figures["lost"], result.figures["dup"]) == (0, 0), result.line()
    assert 0 < float(result.figures["p50 ms"]) <= float(result.figures["p99 ms"]) < 10_000
    assert 0 < float(result.figures["stream µs/write"]) < 100_000, result.line()


async def test_the_abuse_scenario_holds_each_target_at_a_small_scale(mongo_url: str) -> None:
    async with abuse.serving(mongo_url, SEND_TIMEOUT="2", PING_INTERVAL="1") as served:
        results = [
            await abuse.logins(served, count=30), await abuse.wrong_passwords(served, count=12),
            await abuse.registrations(served, count=24), await abuse.feeds(served, count=60),
            await abuse.publishes(served, count=80), await abuse.stalled(served, count=3, megabytes=5),
            await abuse.fuzzing(served, count=200),
        ]  # fmt: skip
    for result in results:
        assert all(result.targets.values()), result.line()
    assert [result.name for result in results] == ["logins", "wrong-pw", "register", "feeds", "publish", "stalled",
                                                   "fuzz"]  # fmt: skip
