"""How a change stream is kept (services/stream/changes.py): its pace on a server that answers an empty poll at once,
and how far behind the database's commits it is."""

from __future__ import annotations

from datetime import UTC, datetime

from bson import Timestamp

from services.stream.changes import BUSY, ChangeStream, lag, pause_after
from shared.db import Database


async def nothing() -> None:
    return None


def test_a_stream_polls_at_its_short_pause_while_changes_come_and_at_its_idle_pause_after(db: Database) -> None:
    stream = ChangeStream(db.updates, [], nothing, lambda change: nothing(), pause=0.005, idle_pause=0.02)
    assert [pause_after(stream, quiet) for quiet in (0.0, BUSY - 0.01, BUSY, 60.0)] == [0.005, 0.005, 0.02, 0.02]


def test_a_stream_without_an_idle_pause_keeps_one_pace(db: Database) -> None:
    stream = ChangeStream(db.updates, [], nothing, lambda change: nothing(), pause=0.005)
    assert {pause_after(stream, quiet) for quiet in (0.0, 60.0)} == {0.005}


def test_a_changes_lag_runs_from_its_wall_time_else_its_cluster_time_and_never_below_zero() -> None:
    wall = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    at = wall.timestamp()
    assert lag({"wallTime": wall, "clusterTime": Timestamp(int(at) - 60, 1)}, at + 0.25) == 0.25
    assert lag({"clusterTime": Timestamp(int(at), 7)}, at + 2) == 2  # MongoDB before 6.0: no wallTime
    assert lag({"wallTime": wall}, at - 5) == 0.0  # the database's clock a little ahead of this process's
    assert lag({"wallTime": "yesterday", "clusterTime": 5}, at) is None
