"""What grew in the service between two of its allocation snapshots (shared/memory.py): the first taken after the
warm-up, and the last. By line, biggest growth first, then the call paths of the biggest few."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from shared.memory import SUFFIX

LINES = 15  # growths by line shown
PATHS = 5  # of those, the call paths shown
KiB = 1024


def _snapshots(folder: Path) -> list[tuple[float, Path]]:
    return sorted((float(path.stem), path) for path in folder.glob(f"*{SUFFIX}"))


def grown(folder: Path, since: float) -> list[str]:
    """Lines that say what grew after `since` seconds of the service's life; one saying why not, if it cannot."""
    taken = _snapshots(folder)
    after = [(at, path) for at, path in taken if at >= since]
    if len(after) < 2:
        return [f"memory: {len(taken)} snapshots in all, too few after the warm-up to compare"]
    (first_at, first), (last_at, last) = after[0], after[-1]
    old, new = tracemalloc.Snapshot.load(str(first)), tracemalloc.Snapshot.load(str(last))
    minutes = (last_at - first_at) / 60
    total = sum(stat.size_diff for stat in new.compare_to(old, "filename"))
    lines = [f"memory: traced allocations grew {total / KiB:,.0f} KiB in {minutes:.1f} min "
             f"({total / KiB / minutes:,.0f} KiB/min); by line:"]  # fmt: skip
    by_line = new.compare_to(old, "lineno")[:LINES]
    lines += [
        f"  {stat.size_diff / KiB:+10,.0f} KiB {stat.count_diff:+9,} blocks  {stat.traceback[0]}" for stat in by_line
    ]
    for stat in new.compare_to(old, "traceback")[:PATHS]:
        lines.append(f"  {stat.size_diff / KiB:+,.0f} KiB, {stat.count_diff:+,} blocks, allocated from:")
        lines += [f"      {frame}" for frame in stat.traceback.format(most_recent_first=True)[::2]]
    return lines


def by_place(old: tracemalloc.Snapshot, new: tracemalloc.Snapshot, feeds: int, key: str) -> list[str]:
    """What `feeds` more open feeds hold, per feed, grouped by `key` ("filename" or "lineno"), biggest first."""
    stats = [stat for stat in new.compare_to(old, key) if stat.size_diff > 0]
    total = sum(stat.size_diff for stat in new.compare_to(old, key))
    lines = [f"{total / feeds:8,.0f} B per feed in all (traced Python allocations), by {key}:"]
    lines += [f"{stat.size_diff / feeds:8,.0f} B {stat.count_diff / feeds:6.1f} blocks  {stat.traceback[0]}"
              for stat in stats[:LINES]]  # fmt: skip
    return lines
