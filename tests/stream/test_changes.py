"""How a change stream is kept (services/stream/changes.py): its pace on a server that answers an empty poll at once."""

from __future__ import annotations

from services.stream.changes import BUSY, ChangeFeed, pause_after
from shared.db import Database


async def nothing() -> None:
    return None


def test_a_stream_polls_at_its_short_pause_while_changes_come_and_at_its_idle_pause_after(db: Database) -> None:
    feed = ChangeFeed(db.updates, [], nothing, lambda change: nothing(), pause=0.005, idle_pause=0.02)
    assert [pause_after(feed, quiet) for quiet in (0.0, BUSY - 0.01, BUSY, 60.0)] == [0.005, 0.005, 0.02, 0.02]


def test_a_stream_without_an_idle_pause_keeps_one_pace(db: Database) -> None:
    feed = ChangeFeed(db.updates, [], nothing, lambda change: nothing(), pause=0.005)
    assert {pause_after(feed, quiet) for quiet in (0.0, 60.0)} == {0.005}
