"""The benchmark scenarios at a small scale, so that `make bench` keeps working and its checks keep checking."""

from __future__ import annotations

import asyncio
import math

import pytest

from bench import abuse, nchan
from bench.cluster import Setup
from bench.floor import floor
from bench.hostile import breaking
from bench.scenarios import Run, adoption, catch_up, combined, crowd, fanout, mixed, scale, sequential, watched
from bench.trips import round_trips
from shared.db import utcnow
from shared.updates import COUNT_CAP


@pytest.fixture
def nginx() -> str:
    """nginx with nchan where the machine has it; these tests never install it."""
    found = nchan.installed_here()
    if found is None:
        pytest.skip("nginx with the nchan module is not installed")
    return found


async def test_mixed_feeds_each_get_exactly_their_shows(mongo_url: str) -> None:
    result = await mixed(Setup(mongo_url), feeds=12, everything=3, updates=30)
    assert all(result.targets.values()), result.line()
    assert (result.figures["wrong"], result.figures["lost"], result.figures["dup"]) == (0, 0, 0)
    assert result.figures["deliveries"] == 30 * 2 + 30 * 3  # two of the 12 feeds follow each show; 3 follow all


async def test_an_import_into_a_watched_collection_is_notified_once_each_and_its_rate_compared(mongo_url: str) -> None:
    result = await watched(Setup(mongo_url), documents=60, clients=4)
    assert result.figures["notified"] == 60 and result.figures["dup"] == 0, result.line()
    assert result.targets["all notified once"], result.line()
    assert float(result.figures["% of raw"]) > 0 and "≥ 50 % of raw" in result.targets


async def test_feeds_that_come_back_get_what_they_missed_once(mongo_url: str) -> None:
    result = await catch_up(Setup(mongo_url), feeds=20, updates=10)
    assert (result.figures["lost"], result.figures["dup"]) == (0, 0), result.line()


async def test_the_floor_is_measured_by_a_writer_process_of_its_own(mongo_url: str) -> None:
    result = await floor(Setup(mongo_url), connections=20, rounds=5)
    assert result.figures["connections"] == 20
    assert 0 < float(result.figures["write µs"]) < 10_000, result.line()
    assert 0 < float(result.figures["woken write µs"]) < 10_000, result.line()


async def test_fanout_alone_times_every_delivery_and_notes_the_cpu_per_delivery(mongo_url: str) -> None:
    result = await fanout(Setup(mongo_url), feeds=5, updates=10, rate=50.0, rounds=2)
    assert (result.figures["lost"], result.figures["dup"]) == (0, 0), result.line()
    assert 0 < float(result.figures["p50 ms"]) <= float(result.figures["p99 ms"]) < 10_000
    assert 0 < float(result.figures["CPU µs/delivery"]) < 100_000, result.line()
    # the stream's own histogram over the same updates, as the dashboard reads it
    assert 0 < float(result.figures["/metrics p50 ms"]) <= float(result.figures["/metrics p99 ms"]) < 10_000
    assert result.peer is None and result.ratios == {} and list(result.latencies) == ["gossip"]
    assert len(result.latencies["gossip"]) == 2 * 5 * 10  # both rounds


async def test_the_abuse_scenario_holds_each_target_at_a_small_scale(mongo_url: str) -> None:
    """Logins wait for a hashing turn as long as the other tests' do: the limits are tested here, not how many
    hashes a busy machine finishes within the one second `make abuse` allows."""
    async with abuse.serving(mongo_url, SEND_TIMEOUT="2", PING_INTERVAL="1", HASH_WAIT="30") as served:
        results = [
            await abuse.logins(served, count=30), await abuse.wrong_passwords(served, count=12),
            await abuse.lockout(served, addresses=5), await abuse.registrations(served, count=24),
            await abuse.feeds(served, count=60),
            await abuse.publishes(served, count=80), await abuse.stalled(served, count=3, megabytes=5),
            await abuse.fuzzing(served, count=200),
        ]  # fmt: skip
    for result in results:
        assert all(result.targets.values()), result.line()
    assert [result.name for result in results] == ["logins", "wrong-pw", "lockout", "register", "feeds", "publish",
                                                   "stalled", "fuzz"]  # fmt: skip


async def test_hostile_documents_and_a_resume_loop_hold_their_targets_at_a_small_scale(mongo_url: str) -> None:
    """The feed-open limit is lowered to 10, so that the loop passes it (and has resumes refused) within the two
    seconds of publishes: at the usual 60 it would take ten times as long."""
    async with abuse.serving(mongo_url, FEED_OPENS_PER_USER="10") as served:
        resumed = await abuse.resume_loop(served, history=800, feeds=10, updates=20, rate=10.0)
        hostile = await abuse.hostile_documents(served, good=5)  # after a history longer than a page or a replay
    assert all(hostile.targets.values()) and hostile.figures["hostile"] == 0, hostile.line()
    assert hostile.figures["rejected"] == 2 * len(breaking(utcnow())), hostile.line()
    # Bounded cost is checked here; the other feeds' p99 beside it is a timing, which `make abuse` judges.
    timed = [target for target in resumed.targets if target.startswith("others' p99")]
    assert len(timed) == 1 and all(met for target, met in resumed.targets.items() if target not in timed)
    assert resumed.figures["missed said"] == str(COUNT_CAP), resumed.line()


async def test_fanout_beside_nchan_gives_both_figures_and_their_ratios(mongo_url: str, nginx: str) -> None:
    result = await fanout(Setup(mongo_url, nginx), feeds=5, updates=10, rate=50.0, rounds=1)
    assert result.peer is not None, result.line()
    assert (result.peer["lost"], result.peer["dup"]) == (0, 0), result.line()  # the client reads nchan's frames
    assert len(result.latencies["nchan"]) == len(result.latencies["gossip"]) == 5 * 10
    assert set(result.ratios) == {"p99 ms", "CPU µs/delivery"}
    assert result.ratios["p99 ms"] == pytest.approx(float(result.figures["p99 ms"]) / float(result.peer["p99 ms"]))
    assert {"p99 ms ≤ 1.5× nchan's", "CPU µs/delivery ≤ 1.2× nchan's"} <= set(result.targets)


def test_rounds_combine_by_median_and_every_miss_counts() -> None:
    runs = [Run({"p99 ms": p99, "lost": lost, "dup": 0, "connected": 10}, [0.001]) for p99, lost in
            ((30.0, 0), (10.0, 1), (20.0, 2))]  # fmt: skip
    assert combined(runs) == Run({"p99 ms": 20.0, "lost": 3, "dup": 0, "connected": 10}, [0.001] * 3)


async def test_sequential_and_scale_beside_nchan_count_deliveries_and_memory(mongo_url: str, nginx: str) -> None:
    one_by_one = await sequential(Setup(mongo_url, nginx), feeds=5, updates=20, counted=10)
    assert int(one_by_one.figures["deliveries/s"]) > 0 and one_by_one.peer and int(one_by_one.peer["deliveries/s"]) > 0
    assert "deliveries/s ≥ 0.8× nchan's" in one_by_one.targets
    assert 0 < float(one_by_one.figures["publish p50 ms"]) < 10_000, one_by_one.line()
    scaled = await scale(Setup(mongo_url, nginx), feeds=50, updates=2, rate=10.0)
    assert scaled.peer and scaled.peer["connected"] == scaled.figures["connected"] == 50
    assert set(scaled.ratios) == {"KB/feed", "p99 ms"}


async def test_a_sequential_publish_is_two_round_trips_once_its_token_and_tokens_are_held(mongo_url: str) -> None:
    """The count a lone publisher's rate is made of: the seq and the insert, and now and then the token's lookup
    and the rate limit's bucket (the exact share of those depends on the time the publishes take)."""
    trips = await asyncio.to_thread(round_trips, mongo_url, 30)
    assert (trips["findAndModify"], trips["insert"]) == (1.0, 1.0), trips
    assert sum(trips.values()) < 2.5, trips


async def test_a_crowd_over_three_processes_gets_every_update_of_its_show_once(mongo_url: str) -> None:
    """Memory per feed is reported, but not judged: over 60 feeds the processes' own churn outweighs it."""
    result = await crowd(Setup(mongo_url), feeds=60, rate=20.0, seconds=1.0)
    assert (result.figures["lost"], result.figures["dup"], result.figures["wrong"]) == (0, 0, 0), result.line()
    assert result.figures["connected"] == 60 and math.isfinite(float(result.figures["KB/feed"])), result.line()
    assert result.targets == {"0 lost, 0 dup": True}


async def test_a_crowd_beside_nchan_compares_memory_per_feed(mongo_url: str, nginx: str) -> None:
    result = await crowd(Setup(mongo_url, nginx), feeds=60, rate=20.0, seconds=1.0)
    assert result.peer is not None and (result.peer["lost"], result.peer["dup"]) == (0, 0), result.line()
    assert set(result.ratios) == {"KB/feed"} and "KB/feed ≤ 1× nchan's" in result.targets


async def test_foreign_inserts_reach_a_feed_each_once_and_both_rates_are_measured(mongo_url: str) -> None:
    result = await adoption(Setup(mongo_url), documents=60)
    assert (result.figures["lost"], result.figures["dup"]) == (0, 0), result.line()
    assert float(result.figures["notified/s"]) > 0 and float(result.figures["raw insert_one/s"]) > 0, result.line()
    assert set(result.targets) == {"≥ 50 % of raw", "0 lost, 0 dup"}
