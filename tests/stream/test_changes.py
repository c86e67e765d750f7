"""How a change stream is kept (services/stream/changes.py): its pace on a server that answers an empty poll at once,
how far behind the database's commits it is, and which embedded server process a kept resume token came from."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bson import ObjectId, Timestamp

from dev.embedded import EmbeddedMongo
from services.stream.changes import (
    BUSY,
    SAME_START,
    ChangeStream,
    change_id,
    from_earlier_process,
    lag,
    next_change,
    pause_after,
    same_process,
    token_epoch,
)
from shared.db import Database, as_datetime, connect, purges_ttl_on_read


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


async def test_change_event_dates_and_string_ids_survive(db: Database) -> None:
    created = datetime(2026, 11, 24, 10, 0, 0, 123000, tzinfo=UTC)
    async with await db.updates.watch([{"$match": {"operationType": "insert"}}]) as stream:
        await db.updates.insert_one({"_id": "plain-string-id", "seq": 1, "created_at": created})
        change = None
        for _ in range(200):
            if (change := await next_change(stream, 0.01)) is not None:
                break
    assert change is not None
    assert change["documentKey"]["_id"] == "plain-string-id"
    assert as_datetime(change["fullDocument"]["created_at"]) == created


class _Answers:
    """A change stream's try_next as a server answers it: an empty batch after `wait` seconds."""

    def __init__(self, wait: float) -> None:
        self.wait = wait

    async def try_next(self) -> None:
        await asyncio.sleep(self.wait)


@pytest.mark.parametrize(("server_wait", "took"), [(0.0, 1.0), (1.0, 1.0), (2.0, 2.0)])
async def test_an_empty_batch_is_followed_by_the_rest_of_the_pause_only(server_wait: float, took: float) -> None:
    """The embedded server answers an empty getMore at once: the loop must not spin. MongoDB waits for
    maxAwaitTimeMS itself, which may be longer than the pause: a second wait on top would delay the next change.
    A pause of a whole second, so that a busy machine's late wake-up is not mistaken for a second wait."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await next_change(_Answers(server_wait), 1.0) is None  # type: ignore[arg-type]
    assert took <= loop.time() - started < took + 0.9


async def test_change_ids_are_the_documents_own_for_every_kind_of_id(db: Database) -> None:
    """The embedded server gives an integer _id in documentKey as a string: change_id gives back the integer, and
    a write by that _id finds the document. ObjectIds and strings come back as they are."""
    ids = [7, "7", ObjectId()]
    async with await db.updates.watch(full_document="updateLookup") as stream:
        for document_id in ids:
            await db.updates.insert_one({"_id": document_id, "n": 0})
            await db.updates.update_one({"_id": document_id}, {"$set": {"n": 1}})
            await db.updates.delete_one({"_id": document_id})
        seen = []
        while len(seen) < 3 * len(ids):
            if (change := await next_change(stream, 0.01)) is not None:
                seen.append(change_id(change))
    assert seen == [document_id for document_id in ids for _ in range(3)]
    assert [type(document_id) for document_id in seen[::3]] == [int, str, ObjectId]


@pytest.mark.embedded
async def test_a_resume_token_is_kept_with_the_server_process_that_gave_it_on_the_embedded_server(db: Database) -> None:
    """The epoch names the server's host, pid and start; asked again, by this process or another, it names the same
    process, although the start is worked out anew from the server's clock and uptime each time."""
    status = await db.command("buildInfo")
    epoch = await token_epoch(db)
    assert epoch is not None and await purges_ttl_on_read(db)
    process, _, started = epoch.partition("@")
    assert process == f"{status['host']}:{status['pid']}"
    assert abs(int(started) - (status["localTime"].timestamp() * 1000 - status["uptimeMillis"])) <= SAME_START
    assert int(started) <= datetime.now(UTC).timestamp() * 1000
    for _ in range(20):
        assert same_process(epoch, await token_epoch(db))  # the same server process: the same epoch


async def test_an_embedded_server_restarted_is_another_process_whose_tokens_are_from_an_earlier_one(
    tmp_path: Path,
) -> None:
    """A real restart on the same data directory, as `make run` does each time."""
    epochs = []
    for _ in range(2):
        with EmbeddedMongo(tmp_path / "mongo") as mongo:
            client = connect(mongo.url)
            try:
                epochs.append(await token_epoch(client["gossip"]))
            finally:
                await client.close()
    earlier, now = epochs
    assert earlier is not None and now is not None
    assert not same_process(earlier, now) and from_earlier_process(earlier, now)


def test_a_token_is_from_an_earlier_embedded_server_process_only_if_another_process_on_the_same_host_gave_it() -> None:
    assert from_earlier_process("vm:1@1000000", "vm:2@2000000")
    assert from_earlier_process("vm:1@1000000", "vm:1@2000000")  # the same pid again, as in a container
    assert not from_earlier_process("vm:1@1000000", "vm:1@1000000")  # this process's own: resumed from
    assert not from_earlier_process("other:1@1000000", "vm:1@2000000")  # data moved from another machine's server
    assert not from_earlier_process(None, "vm:1@1000000")  # from MongoDB
    assert not from_earlier_process("vm:1@1000000", None)  # on MongoDB


def test_a_token_is_resumed_from_only_with_the_server_process_that_gave_it() -> None:
    assert same_process("vm:1@1000000", "vm:1@1000000")
    assert same_process("vm:1@1000000", f"vm:1@{1000000 + SAME_START}")  # its start, seen from another answer
    assert not same_process("vm:1@1000000", f"vm:1@{1000000 + SAME_START + 1}")  # the same pid, restarted
    assert not same_process("vm:1@1000000", "vm:2@1000000")
    assert not same_process("vm:1@1000000", "other:1@1000000")
    assert same_process(None, None)  # MongoDB's
    assert not same_process(None, "vm:1@1000000") and not same_process("vm:1@1000000", None)


def test_a_token_kept_before_epochs_had_a_start_is_from_an_earlier_process_on_the_same_host() -> None:
    """`host:pid` cannot tell this process from a later one with the same pid: resuming from it might hear nothing."""
    assert not same_process("vm:1", "vm:1@1000000")
    assert from_earlier_process("vm:1", "vm:1@1000000") and from_earlier_process("vm:2", "vm:1@1000000")
    assert not from_earlier_process("other:1", "vm:1@1000000")


@pytest.mark.mongodb
async def test_a_resume_token_outlives_a_restart_on_mongodb(db: Database) -> None:
    """MongoDB's tokens hold until they leave the oplog, when it answers ChangeStreamHistoryLost instead."""
    assert await token_epoch(db) is None
