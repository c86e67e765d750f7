"""One printed line per scenario, and BENCHMARKS.md: the figures with the date, the machine and the targets."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import psutil


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    figures: dict[str, float | int | str]
    targets: dict[str, bool]

    def line(self) -> str:
        return f"{self.name:<8} {self.shown_figures()}  [{self.shown_targets()}]"

    def shown_figures(self) -> str:
        return " ".join(f"{key}={_shown(value)}" for key, value in self.figures.items())

    def shown_targets(self) -> str:
        if not self.targets:
            return "—"
        return ", ".join(f"{target}: {'met' if met else 'NOT met'}" for target, met in self.targets.items())


def _shown(value: float | int | str) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor() or "unknown CPU",
    ) if Path("/proc/cpuinfo").exists() else platform.processor()  # fmt: skip
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, nx-27017 {version('nx-27017')}, uvicorn {version('uvicorn')}, "
        f"sse-starlette {version('sse-starlette')}"
    )


def write(results: Sequence[Result], path: Path) -> None:
    """The whole file is written by `make bench`; what the figures mean is in the README's Benchmarks section."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [f"| {r.name} | {r.shown_figures()} | {r.shown_targets()} |" for r in results]
    path.write_text(
        "# Benchmarks\n\n"
        f"Written by `make bench` on {when}.\n\n"
        f"Machine: {machine()}.\n\n"
        "Everything on 127.0.0.1: the embedded database, ingest and stream as their own uvicorn processes, and the\n"
        "load generator (`bench/`) with users signed in beforehand. Latencies run from the moment a publish is\n"
        "sent to ingest to the moment its frame reaches a feed. The floor row is the machine's own, measured in the\n"
        "same run: what a bare uvloop process pays per socket write to 1,000 loopback connections, alone and woken\n"
        "per connection as every asyncio server sends. Read fanout's stream µs/write against it.\n\n"
        "| scenario | figures | targets |\n|---|---|---|\n" + "\n".join(rows) + "\n"
    )
