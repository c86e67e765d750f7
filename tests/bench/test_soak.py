"""The soak at a small scale, so that `make soak` keeps working and its checks keep checking."""

from __future__ import annotations

from array import array
from pathlib import Path

from bench.report import Result, write_soak
from bench.soak import Client, Plan, Published, checked, soak


def _client(shows: set[str], seqs: list[int]) -> Client:
    return Client("cookie", frozenset(shows), "127.0.0.1", array("q", seqs), max(seqs, default=0))


def test_a_client_is_checked_against_what_was_published_for_its_shows_alone() -> None:
    published = [Published(seq, show, 0.0, 0.0) for seq, show in [(1, "flash"), (2, "suits"), (3, "flash")]]
    exact, missed_one, twice, behind = (
        _client({"flash"}, [1, 3]), _client({"flash", "suits"}, [1, 3]), _client({"suits"}, [2, 2]),
        _client({"flash"}, [1]),
    )  # fmt: skip
    assert checked([exact], published) == checked([], published)
    found = checked([missed_one, twice, behind], published)
    assert (found.behind, found.gaps, found.duplicates, found.out_of_order) == (1, 2, 1, 0)


async def test_a_short_soak_judges_and_writes_its_section(mongo_url: str, tmp_path: Path) -> None:
    plan = Plan(clients=6, minutes=0.15, warmup=0.05, publish_rate=4, login_every=1.0, hold=(0.5, 2.0),
                sample_every=1.5, trace=True)  # fmt: skip
    run = await soak(mongo_url, None, plan)
    result = run.result
    assert result.targets["0 behind, 0 gaps, 0 5xx"], result.line()
    assert result.figures["dup"] == 0 and int(result.figures["publishes"]) > 0, result.line()
    assert int(result.figures["logins"]) > 0 and result.figures["feeds a logout left open"] == 0, result.line()
    assert len(run.samples) == 6 and all(sample.services_mib > 0 for sample in run.samples)  # every 1.5 s of 9
    assert run.samples[-1].minute >= plan.minutes, "the last sample is at the end of the run, where it is judged"
    assert int(result.figures["full GCs"]) >= 0, "read from the service's own metrics"
    assert run.growth and run.growth[0].startswith("memory: traced allocations grew"), run.growth
    benchmarks = tmp_path / "BENCHMARKS.md"
    benchmarks.write_text("# Benchmarks\n\nthe rest\n")
    for _ in range(2):  # written again, it replaces its section
        write_soak(Result("soak", {"x": 1}, {"met": True}), plan.shown(), tmp_path / "soak.png", benchmarks, "idle")
    text = benchmarks.read_text()
    assert text.startswith("# Benchmarks\n\nthe rest\n") and text.count("## Soak") == 1 and "(soak.png)" in text
