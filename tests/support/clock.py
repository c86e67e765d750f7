"""Injected clocks for the scheduler, its jobs and the rate limits: tests move time on instead of waiting for it."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.db import utcnow


class Clock:
    def __init__(self, start: datetime | None = None) -> None:
        self.at = start or utcnow()

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> datetime:
        self.at += timedelta(seconds=seconds)
        return self.at


class Seconds:
    """An injected clock of plain seconds, for what reads time.time() or time.monotonic(): it stands still until a
    test moves it on."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.at = start

    def __call__(self) -> float:
        return self.at

    def advance(self, seconds: float) -> float:
        self.at += seconds
        return self.at
