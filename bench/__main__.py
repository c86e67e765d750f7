"""`make bench`: `python -m bench [scenario ...]` runs the scenarios against the real services, prints a line
each, and (when all ran) writes BENCHMARKS.md. `python -m bench abuse` (`make abuse`) runs the abuse scenario
(bench/abuse.py) alone: a line per abuse."""

from __future__ import annotations

import sys
import tempfile
from asyncio import Runner
from pathlib import Path

from bench import new_event_loop
from bench.abuse import abuse
from bench.report import Result, write
from bench.scenarios import SCENARIOS
from dev.embedded import EmbeddedMongo
from shared.settings import ROOT


async def run(names: list[str], mongo_url: str) -> list[Result]:
    results = []
    for name in names:
        if name == "abuse":
            async for result in abuse(mongo_url):
                print(result.line(), flush=True)
            continue
        results.append(result := await SCENARIOS[name](mongo_url))
        print(result.line(), flush=True)
    return results


def main() -> None:
    names = sys.argv[1:] or list(SCENARIOS)
    unknown = set(names) - {*SCENARIOS, "abuse"}
    if unknown:
        sys.exit(f"unknown scenario {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)} or abuse")
    with (
        tempfile.TemporaryDirectory(prefix="gossip-bench-") as data,
        EmbeddedMongo(Path(data)) as mongo,
        Runner(loop_factory=new_event_loop) as runner,
    ):
        results = runner.run(run(names, mongo.url))
    if names == list(SCENARIOS):
        write(results, ROOT / "BENCHMARKS.md")


if __name__ == "__main__":
    main()
