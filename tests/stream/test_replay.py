"""History for reconnecting feeds, against the real server: one read per range in flight, none kept after."""

from __future__ import annotations

import asyncio

from services.stream.frames import resync_frame, update_frame
from services.stream.replay import BATCH, Replay
from shared.catalogue import Catalogue
from shared.db import Database, seed_shows
from tests.stream.test_app import insert_update
from tests.support.updates import stored_update


async def test_feeds_asking_for_the_same_range_at_once_share_one_read(db: Database) -> None:
    await seed_shows(db)  # the titles come from the catalogue
    for seq in range(1, 6):
        await insert_update(db, seq, "flash" if seq % 2 else "sherlock")
    replay = Replay(db, Catalogue(db))
    first, second = await asyncio.gather(replay.chunk({"flash"}, "u1", 1, 5), replay.chunk(["flash"], "u2", 1, 5))
    assert first[0] is second[0]  # the very same bytes: encoded once
    stored = await db.updates.find({"seq": {"$in": [3, 5]}}, {"_id": 0}).sort("seq", 1).to_list()
    assert first == (update_frame(stored[0]) + update_frame(stored[1]), 5)
    later = await replay.chunk({"flash"}, "u1", 1, 5)
    assert later == first and later[0] is not first[0]  # read again: nothing was kept


async def test_a_long_range_comes_in_batches(db: Database) -> None:
    await seed_shows(db)
    await db.updates.insert_many([stored_update(seq) for seq in range(1, BATCH + 11)])
    replay = Replay(db, Catalogue(db))
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


async def test_a_resume_point_older_than_the_oldest_kept_update_is_announced_with_missed_unknown(
    db: Database,
) -> None:
    await db.updates.insert_many([stored_update(seq) for seq in range(6, 11)])  # 1 to 5 are gone
    assert await Replay(db, Catalogue(db), limit=10, trimmed=True).start(None, 2, 10) == (5, resync_frame(2, 5, None))
    assert await Replay(db, Catalogue(db), limit=10, trimmed=True).start(None, 5, 10) == (5, b"")
    assert await Replay(db, Catalogue(db), limit=3, trimmed=True).start(None, 2, 10) == (7, resync_frame(2, 7, None))
    assert await Replay(db, Catalogue(db), limit=10, trimmed=False).start(None, 2, 10) == (2, b"")


async def test_rejected_documents_hold_their_seqs_so_nothing_kept_reads_as_gone(db: Database) -> None:
    rejected = [{**stored_update(seq), "rejected": "text: not a string"} for seq in range(1, 4)]
    await db.updates.insert_many([*rejected, *(stored_update(seq) for seq in range(4, 11))])
    assert await Replay(db, Catalogue(db), limit=10, trimmed=True).start(None, 0, 10) == (0, b"")
