"""One printed line per scenario, and BENCHMARKS.md: Gossip's figures beside nchan's, their ratios, the charts, the
date, the machine and the targets."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import psutil

Figure = float | int | str


@dataclass(frozen=True, slots=True)
class Result:
    """Gossip's figures; where the scenario compares, nchan's too (`peer`) and Gossip's over nchan's (`ratios`).
    `latencies` (seconds, per system) feed the charts."""

    name: str
    figures: dict[str, Figure]
    targets: dict[str, bool]
    peer: dict[str, Figure] | None = None
    ratios: dict[str, float] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)

    def line(self) -> str:
        if self.peer is None:
            return f"{self.name:<8} {self.shown_figures()}  [{self.shown_targets()}]"
        return (
            f"{self.name:<8} nchan: {_shown_all(self.peer)} | gossip: {self.shown_figures()} | "
            f"gossip/nchan: {self.shown_ratios()}  [{self.shown_targets()}]"
        )

    def shown_figures(self) -> str:
        return _shown_all(self.figures)

    def shown_ratios(self) -> str:
        return ", ".join(f"{key} {value:.2f}×" for key, value in self.ratios.items()) or "—"

    def shown_targets(self) -> str:
        if not self.targets:
            return "—"
        return ", ".join(f"{target}: {'met' if met else 'NOT met'}" for target, met in self.targets.items())


def _shown(value: Figure) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _shown_all(figures: dict[str, Figure]) -> str:
    return " ".join(f"{key}={_shown(value)}" for key, value in figures.items())


def ratio(ours: Figure, theirs: Figure) -> float:
    """Gossip's figure over nchan's; infinite when nchan's is zero."""
    return float(ours) / float(theirs) if float(theirs) else float("inf")


def machine(nginx: str | None) -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor() or "unknown CPU",
    ) if Path("/proc/cpuinfo").exists() else platform.processor()  # fmt: skip
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, nx-27017 {version('nx-27017')}, uvicorn {version('uvicorn')}, "
        f"sse-starlette {version('sse-starlette')}, {_nginx_version(nginx)}"
    )


def _nginx_version(nginx: str | None) -> str:
    if nginx is None:
        return "no nchan"
    said = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=10, check=True).stderr.strip()
    return said.removeprefix("nginx version: ") + " with nchan"


def write(results: Sequence[Result], charts: dict[str, Path], path: Path, nginx: str | None, load: str) -> None:
    """The whole file is written by `make bench`; what the figures mean is in docs/benchmarks.md."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    compared = [r for r in results if r.peer is not None]
    alone = [r for r in results if r.peer is None]
    rows = [f"| {r.name} | {_shown_all(r.peer or {})} | {r.shown_figures()} | {r.shown_ratios()} | "
            f"{r.shown_targets()} |" for r in compared]  # fmt: skip
    rows_alone = [f"| {r.name} | {r.shown_figures()} | {r.shown_targets()} |" for r in alone]
    pictures = [f"![{name}: latency from publish to delivery, Gossip and nchan]({chart.relative_to(path.parent)})"
                for name, chart in charts.items()]  # fmt: skip
    path.write_text(
        "# Benchmarks\n\n"
        f"Written by `make bench` on {when}.\n\n"
        f"Machine: {machine(nginx)}.\n\n"
        f"Load on the machine while it ran: {load}.\n\n"
        "Everything on 127.0.0.1: the embedded database, ingest and stream as their own uvicorn processes, nginx with\n"
        "nchan (one worker, three for the crowd: `bench/nchan.conf`), and the load generator (`bench/`), the same\n"
        "client for both (the crowd's in a process per server), with\n"
        "Gossip's users signed in beforehand. Each comparing scenario runs against nchan, then against Gossip, in the\n"
        "same minutes: the ratio (Gossip's figure over nchan's) is what to read, since this machine's speed drifts.\n"
        "Latencies run from the moment a publish is sent to the moment its frame reaches a feed; CPU and memory are\n"
        "those of the process that holds the feeds (nginx's worker, the stream service).\n\n"
        "| scenario | nchan | Gossip | Gossip / nchan | targets |\n|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\nGossip alone, and the machine's floor (a bare uvloop process writing to 1,000 loopback connections):\n\n"
        "| scenario | figures | targets |\n|---|---|---|\n"
        + "\n".join(rows_alone)
        + "\n\n"
        + "\n\n".join(pictures)
        + "\n"
        + _soak_section(path)
    )


SOAK = "\n## Soak\n"


def _soak_section(path: Path) -> str:
    """The soak's section as `make soak` last wrote it: `make bench` keeps it."""
    text = path.read_text() if path.exists() else ""
    at = text.find(SOAK)
    return text[at:] if at >= 0 else ""


def write_soak(result: Result, settings: str, chart: Path, path: Path, load: str) -> None:
    """The soak's section of BENCHMARKS.md, in place of the last one; the rest of the file as `make bench` wrote
    it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    at = text.find(SOAK)
    kept = text[:at] if at >= 0 else text
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = "\n".join(f"| {key} | {_shown(value)} |" for key, value in result.figures.items())
    targets = "\n".join(f"- {target}: {'met' if met else '**NOT met**'}" for target, met in result.targets.items())
    path.write_text(
        kept.rstrip("\n") + "\n" + SOAK + "\n"
        f"Written by `make soak` on {when}: {settings}.\n\n"
        f"Machine: {machine(None)}.\n\n"
        f"Load on the machine while it ran: {load}.\n\n"
        "Gossip as `make run` serves it (one process, all three services) on the embedded database, everything on\n"
        "127.0.0.1; the soak's server allows any number of publishes per author, every other limit is the default.\n"
        "Memory is the resident size of the service process and of the database's; the publish rate and p50 are\n"
        "compared between the first and the last third of the minutes after the warm-up.\n\n"
        "| figure | value |\n|---|---|\n" + rows + "\n\n" + targets + "\n\n"
        f"![soak: memory and publish rate by minute]({chart.relative_to(path.parent)})\n"
    )
