"""The `sends` collection: a record of each digest and push batch sent, written before it leaves so that it never
leaves twice. A record is kept SENDS_KEEP_DAYS and then removed by the TTL index on `expires_at` (shared/db.py):
long past the day a digest is keyed by and the retries of a push, short of growing for ever."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.db import utcnow
from shared.settings import Settings


def kept_until(settings: Settings) -> datetime:
    """From the real time, not a job's injected clock: the TTL monitor that removes the record runs on the real one."""
    return utcnow() + timedelta(days=settings.sends_keep_days)
