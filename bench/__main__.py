"""`make bench`: `python -m bench [scenario ...]` runs the scenarios against the real services (and nchan), prints a
line each, and (when all ran) writes BENCHMARKS.md and the charts. `python -m bench abuse` (`make abuse`) runs the
abuse scenario (bench/abuse.py) alone: a line per abuse. `python -m bench soak [options]` (`make soak`) runs the soak
(bench/soak.py) alone, and writes its section of BENCHMARKS.md."""

from __future__ import annotations

import sys
import tempfile
from asyncio import Runner
from pathlib import Path

from bench import charts, nchan, new_event_loop
from bench.abuse import abuse
from bench.cluster import Setup
from bench.load import Load
from bench.report import Result, write, write_soak
from bench.scenarios import SCENARIOS
from bench.soak import plan_of, soak
from dev.embedded import EmbeddedMongo
from shared.settings import ROOT


async def run(names: list[str], setup: Setup) -> list[Result]:
    results = []
    for name in names:
        if name == "abuse":
            async for result in abuse(setup.mongo_url):
                print(result.line(), flush=True)
            continue
        results.append(result := await SCENARIOS[name](setup))
        print(result.line(), flush=True)
    return results


def soak_main(arguments: list[str]) -> None:
    plan = plan_of(arguments)
    load = Load()
    with (
        tempfile.TemporaryDirectory(prefix="gossip-soak-") as data,
        EmbeddedMongo(Path(data)) as mongo,
        Runner(loop_factory=new_event_loop) as runner,
    ):
        assert mongo.process is not None
        run = runner.run(soak(mongo.url, mongo.process.pid, plan))
    print(run.result.line(), flush=True)
    for line in run.growth:
        print(line, flush=True)
    said = load.said()
    print(f"load on the machine: {said}", flush=True)
    if plan.write:
        chart = charts.draw_soak(run.samples, plan.warmup, ROOT / "bench" / "charts" / "soak.png")
        write_soak(run.result, plan.shown(), chart, ROOT / "BENCHMARKS.md", said)


def main() -> None:
    if sys.argv[1:2] == ["soak"]:
        soak_main(sys.argv[2:])
        return
    names = sys.argv[1:] or list(SCENARIOS)
    unknown = set(names) - {*SCENARIOS, "abuse"}
    if unknown:
        sys.exit(f"unknown scenario {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)} or abuse")
    nginx = None
    if set(names) & {"fanout", "sequential", "scale", "crowd"}:
        nginx, why_not = nchan.installed()
        if nginx is None:
            print(why_not, flush=True)
    load = Load()
    with (
        tempfile.TemporaryDirectory(prefix="gossip-bench-") as data,
        EmbeddedMongo(Path(data)) as mongo,
        Runner(loop_factory=new_event_loop) as runner,
    ):
        results = runner.run(run(names, Setup(mongo.url, nginx)))
    print(f"load on the machine: {load.said()}", flush=True)
    if names == list(SCENARIOS):
        drawn = charts.draw(results, ROOT / "bench" / "charts")
        write(results, drawn, ROOT / "BENCHMARKS.md", nginx, load.said())


if __name__ == "__main__":
    main()
