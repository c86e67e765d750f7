"""History for reconnecting feeds, against the real server: one read per range in flight, none kept after."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest
from pymongo import AsyncMongoClient

from services.stream.frames import resync_frame, update_frame
from services.stream.replay import BATCH, Replay, fixed_horizon
from shared.catalogue import Catalogue
from shared.db import Database, seed_shows
from shared.settings import Settings
from shared.updates import TRIMMED
from tests.stream.test_app import insert_update
from tests.support.updates import personal_update, stored_update
from tests.support.waiting import wait_until

LIMIT = Settings("").replay_limit  # the service's own


async def test_feeds_asking_for_the_same_range_at_once_share_one_read(db: Database) -> None:
    await seed_shows(db)  # the titles come from the catalogue
    for seq in range(1, 6):
        await insert_update(db, seq, "flash" if seq % 2 else "sherlock")
    replay = Replay(db, Catalogue(db), LIMIT)
    first, second = await asyncio.gather(replay.chunk({"flash"}, "u1", 1, 5), replay.chunk(["flash"], "u2", 1, 5))
    assert first[0] is second[0]  # the very same bytes: encoded once
    stored = await db.updates.find({"seq": {"$in": [3, 5]}}, {"_id": 0}).sort("seq", 1).to_list()
    assert first == (update_frame(stored[0]) + update_frame(stored[1]), 5)
    later = await replay.chunk({"flash"}, "u1", 1, 5)
    assert later == first and later[0] is not first[0]  # read again: nothing was kept


async def test_feeds_asking_for_other_shows_at_once_read_apart(db: Database) -> None:
    await seed_shows(db)
    for seq in range(1, 41):
        await insert_update(db, seq, "flash" if seq % 2 else "sherlock")
    replay = Replay(db, Catalogue(db), limit=5)
    flash, sherlock = await asyncio.gather(replay.start({"flash"}, 0, 40), replay.start({"sherlock"}, 0, 40))
    assert (flash, sherlock) == ((29, resync_frame(0, 29, 15)), (30, resync_frame(0, 30, 15)))
    flash, sherlock = await asyncio.gather(replay.chunk({"flash"}, "u1", 0, 2), replay.chunk({"sherlock"}, "u1", 0, 2))
    assert (flash[0].count(b"id: 1\n"), sherlock[0].count(b"id: 2\n")) == (1, 1)
    assert b"id: 2\n" not in flash[0] and b"id: 1\n" not in sherlock[0]
    assert flash[1] == sherlock[1] == 2  # each range is done, whatever seq the last update in it has


async def test_a_shared_chunk_gives_each_feed_its_own_users_personal_updates_alone(db: Database) -> None:
    """One read for every viewer: each feed keeps the updates meant for everybody and its own user's."""
    await seed_shows(db)
    await db.updates.insert_many(
        [stored_update(1), personal_update(2, "alice_id"), stored_update(3), personal_update(4, "bob_id")]
    )
    stored = {u["seq"]: update_frame(u) async for u in db.updates.find({}, {"_id": 0})}
    replay = Replay(db, Catalogue(db), LIMIT)
    viewers = ("alice_id", "bob_id", "carol_id")
    chunks = await asyncio.gather(*(replay.chunk({"flash"}, viewer, 0, 4) for viewer in viewers))
    assert chunks == [
        (stored[1] + stored[2] + stored[3], 4),
        (stored[1] + stored[3] + stored[4], 4),
        (stored[1] + stored[3], 4),
    ]


async def test_a_shared_chunk_leaves_out_the_personal_updates_of_a_topic_its_feed_muted(db: Database) -> None:
    """One read for both of Alice's feeds: the one that muted her orders (Hub.muted) keeps the rest."""
    await seed_shows(db)
    invoice = {**personal_update(3, "alice_id"), "show": "invoices", "title": "Your invoices"}
    await db.updates.insert_many([stored_update(1), personal_update(2, "alice_id"), invoice])
    stored = {u["seq"]: update_frame(u) async for u in db.updates.find({}, {"_id": 0})}
    replay = Replay(db, Catalogue(db), LIMIT)
    followed, everything = await asyncio.gather(
        replay.chunk({"flash"}, "alice_id", 0, 3, frozenset({"orders"})), replay.chunk({"flash"}, "alice_id", 0, 3)
    )
    assert followed == (stored[1] + stored[3], 3) and everything == (stored[1] + stored[2] + stored[3], 3)


async def test_a_read_whose_feeds_all_hung_up_fails_without_an_unretrieved_error(
    db: Database, caplog: pytest.LogCaptureFixture, refused_port: int
) -> None:
    """The read goes on for other feeds that may ask meanwhile; once none is left to hear its failure, it is marked
    seen, so asyncio does not report it as an exception nobody retrieved."""
    caplog.set_level(logging.ERROR, logger="asyncio")
    gone = AsyncMongoClient(f"mongodb://127.0.0.1:{refused_port}/?directConnection=true", serverSelectionTimeoutMS=500)
    replay = Replay(gone[db.name], Catalogue(db), LIMIT)
    try:
        asking = asyncio.ensure_future(replay.chunk(None, "u1", 0, 5))
        await wait_until(lambda: replay._reads)  # the read is under way
        asking.cancel()  # its one feed hangs up
        await wait_until(lambda: not replay._reads, timeout=10)  # the read has failed and been forgotten
    finally:
        await gone.close()
    del asking
    gc.collect()  # a failure nobody retrieved is reported as its future is collected
    assert "never retrieved" not in caplog.text


async def test_a_long_range_comes_in_batches(db: Database) -> None:
    await seed_shows(db)
    await db.updates.insert_many([stored_update(seq) for seq in range(1, BATCH + 11)])
    replay = Replay(db, Catalogue(db), LIMIT)
    assert await replay.start(None, 0, BATCH + 10) == (10, resync_frame(0, 10, 10))  # the newest 500 by default
    chunk, after = await replay.chunk(None, "u1", 0, BATCH + 10)
    assert (chunk.count(b"event: update"), after) == (BATCH, BATCH)
    chunk, after = await replay.chunk(None, "u1", after, BATCH + 10)
    assert (chunk.count(b"event: update"), after) == (10, BATCH + 10)


async def test_a_resume_point_within_the_limit_is_replayed_whole(db: Database) -> None:
    await db.updates.insert_many([stored_update(seq) for seq in range(1, 11)])
    assert await Replay(db, Catalogue(db), limit=10).start(None, 0, 10) == (0, b"")


async def test_further_back_than_the_limit_the_newest_are_replayed_and_the_rest_announced(db: Database) -> None:
    await db.updates.insert_many([stored_update(seq, "flash" if seq % 2 else "sherlock") for seq in range(1, 41)])
    resume, resync = await Replay(db, Catalogue(db), limit=5).start({"flash"}, 4, 40)
    assert resume == 29  # flash's newest five: 31 to 39
    assert resync == resync_frame(4, 29, 13)  # flash's 5, 7, ... 29


async def trimmed_to(db: Database, seq: int) -> None:
    """Retention's horizon, as its sweep leaves it once it has removed `seq` (tests/ingest/test_retention.py)."""
    await db.counters.insert_one({"_id": TRIMMED, "seq": seq})


async def test_a_trimmed_replay_counts_as_gone_only_what_lies_up_to_the_horizon(db: Database) -> None:
    await db.updates.insert_many([stored_update(seq) for seq in range(6, 11)])
    await trimmed_to(db, 5)  # retention removed 1 to 5
    assert await Replay(db, Catalogue(db), limit=10).start(None, 2, 10) == (2, b"")  # not trimmed unless told
    trimmed = Replay(db, Catalogue(db), limit=10, horizon=None)
    assert await trimmed.start(None, 4, 10) == (5, resync_frame(4, 5, None))  # 5 is gone, nothing after it
    assert await trimmed.start(None, 5, 10) == (5, b"")  # from the horizon: nothing is gone
    assert await Replay(db, Catalogue(db), limit=3, horizon=None).start(None, 5, 10) == (7, resync_frame(5, 7, 2))


async def test_with_nothing_kept_a_trimmed_replay_resumes_at_the_ceiling_with_missed_unknown(db: Database) -> None:
    await trimmed_to(db, 12)  # retention removed updates the watcher has not delivered yet
    replay = Replay(db, Catalogue(db), limit=10, horizon=None)
    assert await replay.start(None, 2, 10) == (10, resync_frame(2, 10, None))


async def test_a_resume_point_below_the_horizon_is_announced_with_missed_unknown(db: Database) -> None:
    await db.updates.insert_many([stored_update(seq) for seq in range(6, 11)])
    await trimmed_to(db, 5)
    assert await Replay(db, Catalogue(db), limit=10, horizon=None).start(None, 2, 10) == (5, resync_frame(2, 5, None))
    assert await Replay(db, Catalogue(db), limit=3, horizon=None).start(None, 2, 10) == (7, resync_frame(2, 7, None))
    assert await Replay(db, Catalogue(db), limit=10).start(None, 2, 10) == (2, b"")


async def test_a_fixed_horizon_is_read_once_where_no_sweep_raises_it_and_at_each_start_where_sweeps_do(
    db: Database,
) -> None:
    """HISTORY_DAYS at 0 keeps history for ever: no sweep runs, and the horizon earlier ones left is read once, as the
    Replay is made; one raised later is not its to see. While HISTORY_DAYS is set, each start reads it."""
    await db.updates.insert_many([stored_update(seq) for seq in range(6, 11)])
    await trimmed_to(db, 5)
    assert (await fixed_horizon(db, 0), await fixed_horizon(db, 90)) == (5, None)
    fixed = Replay(db, Catalogue(db), limit=10, horizon=await fixed_horizon(db, 0))
    read = Replay(db, Catalogue(db), limit=10, horizon=await fixed_horizon(db, 90))
    assert await fixed.start(None, 2, 10) == await read.start(None, 2, 10) == (5, resync_frame(2, 5, None))
    await db.counters.update_one({"_id": TRIMMED}, {"$set": {"seq": 7}})
    assert (await fixed.start(None, 5, 10), await read.start(None, 5, 10)) == ((5, b""), (7, resync_frame(5, 7, None)))


async def test_updates_deleted_below_the_oldest_kept_one_are_not_missed_history(db: Database) -> None:
    """1 to 5 were deleted by their authors or retracted by a watch rule, not removed by retention: with no horizon,
    or one below them, nothing the client could have had is gone."""
    await db.updates.insert_many([stored_update(seq) for seq in range(6, 11)])
    trimmed = Replay(db, Catalogue(db), limit=10, horizon=None)
    assert await trimmed.start(None, 0, 10) == (0, b"")
    await trimmed_to(db, 1)
    assert await trimmed.start(None, 0, 10) == (1, resync_frame(0, 1, None))  # 1 went by age
    assert await trimmed.start(None, 1, 10) == (1, b"")  # 2 to 5 were deleted
    assert await trimmed.start(None, 3, 10) == (3, b"")
