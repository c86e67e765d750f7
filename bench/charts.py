"""Per comparing scenario, the latency distribution of Gossip and nchan on one chart: a CDF, log time axis; and the
soak's memory and publish rate over its minutes.

matplotlib is a bench-only dependency (the `bench` extra that `make bench` installs)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only, no display

from matplotlib import pyplot

from bench.report import Result

if TYPE_CHECKING:
    from bench.soak import Sample

POINTS = 2000  # per curve: enough for the eye, small files
COLOURS = {"nchan": "#1f77b4", "gossip": "#d62728"}
NAMES = {"nchan": "nchan", "gossip": "Gossip"}


def _cdf(latencies: Sequence[float]) -> tuple[list[float], list[float]]:
    """Milliseconds and the share of deliveries at or below each, thinned to about POINTS, the tail kept."""
    ordered = sorted(latencies)
    step = max(1, len(ordered) // POINTS)
    picked = [*range(0, len(ordered), step), len(ordered) - 1]
    return [ordered[i] * 1000 for i in picked], [(i + 1) / len(ordered) for i in picked]


def draw(results: Sequence[Result], folder: Path) -> dict[str, Path]:
    """One PNG per scenario that has latencies from both systems; returns them by scenario."""
    folder.mkdir(parents=True, exist_ok=True)
    drawn = {}
    for result in results:
        if len(result.latencies) < 2 or not all(result.latencies.values()):
            continue
        figure, axes = pyplot.subplots(figsize=(7, 4), dpi=100)
        for system in ("nchan", "gossip"):
            times, shares = _cdf(result.latencies[system])
            axes.plot(times, shares, label=NAMES[system], color=COLOURS[system], drawstyle="steps-post")
        axes.set_xscale("log")
        axes.set_xlabel("publish → delivery (ms, log scale)")
        axes.set_ylabel("share of deliveries")
        axes.set_ylim(0, 1.01)
        axes.axhline(0.99, color="grey", linewidth=0.6, linestyle=":")
        axes.grid(True, which="both", linewidth=0.3)
        p99 = {"nchan": (result.peer or {})["p99 ms"], "Gossip": result.figures["p99 ms"]}
        axes.set_title(f"{result.name}: p99 " + ", ".join(f"{who} {float(ms):.1f} ms" for who, ms in p99.items()))
        axes.legend(loc="lower right")
        figure.tight_layout()
        drawn[result.name] = path = folder / f"{result.name}.png"
        figure.savefig(path)
        pyplot.close(figure)
    return drawn


def draw_soak(samples: Sequence[Sample], warmup: float, path: Path) -> Path:
    """Memory (the services' and the database's) above, publishes a second below, by minute; the warm-up shaded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, (memory, rate) = pyplot.subplots(2, 1, figsize=(7, 5), dpi=100, sharex=True)
    minutes = [sample.minute for sample in samples]
    memory.plot(minutes, [s.services_mib for s in samples], label="services (one process)", color=COLOURS["gossip"])
    memory.plot(minutes, [s.database_mib for s in samples], label="database", color=COLOURS["nchan"])
    memory.set_ylabel("RSS (MiB)")
    memory.set_ylim(bottom=0)
    memory.legend(loc="lower right")
    rate.plot(minutes, [s.rate for s in samples], color=COLOURS["gossip"])
    rate.set_ylabel("publishes / s")
    rate.set_ylim(bottom=0)
    rate.set_xlabel("minute")
    for axes in (memory, rate):
        axes.axvspan(0, warmup, color="grey", alpha=0.15, linewidth=0)
        axes.grid(True, linewidth=0.3)
    memory.set_title("soak: memory and publish rate (warm-up shaded)")
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
    return path
