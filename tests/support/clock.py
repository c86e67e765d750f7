"""An injected clock for the scheduler and its jobs: tests move time on instead of waiting for it."""

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
