"""The memory-tracing debug hook: off unless a folder is named; on, snapshots that tracemalloc can load and compare."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from shared.memory import SUFFIX, traced
from shared.settings import Settings
from tests.support.waiting import wait_until


def _two(folder: Path) -> list[Path] | None:
    written = sorted(folder.glob(f"*{SUFFIX}"))
    return written[:2] if len(written) >= 2 else None


async def test_without_a_folder_nothing_is_traced() -> None:
    async with traced(None, every=0.01):
        assert not tracemalloc.is_tracing()


def _two(folder: Path) -> list[Path] | None:
    written = sorted(folder.glob(f"*{SUFFIX}"))
    return written[:2] if len(written) >= 2 else None


async def test_with_a_folder_snapshots_are_written_there_and_tracing_stops_after(tmp_path: Path) -> None:
    folder = tmp_path / "traces"
    async with traced(folder, every=0.01):
        assert tracemalloc.is_tracing()
        kept = [bytearray(1000) for _ in range(100)]  # something for the snapshots to hold
        written = await wait_until(
            lambda: sorted(folder.glob(f"*{SUFFIX}"))[:2] if len(list(folder.glob(f"*{SUFFIX}"))) >= 2 else None
        )
    assert not tracemalloc.is_tracing()
    assert kept
    first, second = (tracemalloc.Snapshot.load(str(path)) for path in written)
    assert second.compare_to(first, "lineno") is not None
    assert first.traces, "a snapshot holds the allocations traced"


def test_the_settings_name_the_folder_and_the_interval() -> None:
    settings = Settings.from_env({"SECRET_KEY": "k", "MEMORY_TRACE": "var/traces", "MEMORY_TRACE_EVERY": "5"})
    assert (settings.memory_trace, settings.memory_trace_every) == (Path("var/traces"), 5.0)
    assert Settings.from_env({"SECRET_KEY": "k"}).memory_trace is None
