"""Watch rules at work (rulebook.py): each rule's change stream, its changes turned into ordinary updates in batches,
each written once however many stream processes hear it, and the stream's resume token kept in MongoDB.

A derived update is numbered here, a block of seqs per batch, with an _id that holds its seq (update_id): the
watcher then delivers it, edits and retracts it, and feeds replay it, exactly as a published one. One process at a
time derives a rule (RuleStream's lease), and its `source_key` (the rule, the document, and which of the document's
updates it is) is unique besides: a change derived twice (after a restart, or by two processes in a handover) is
stored once, the second insert failing and its seq a hole the watcher passes over. `source_doc` finds a document's
updates for its next change, and `source_state` is what the last one told: an update event that changed none of the
rule's fields tells nothing (the embedded server's events do not say which fields changed).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from services.stream.changes import (
    LOOKUP,
    Change,
    ChangeStream,
    Reopen,
    change_id,
    from_earlier_process,
    same_process,
    token_epoch,
)
from services.stream.metrics import RULE_HISTORY_LOST, RULE_SKIPPED, RULE_UPDATES
from services.stream.rulebook import Rule, matching, plain, render
from shared.catalogue import Catalogue
from shared.db import (
    Database,
    all_of,
    iso_utc,
    new_id,
    next_seq,
    put,
    username_key,
    utcnow,
    with_now,
)
from shared.updates import digest, numbered, update_document

log = logging.getLogger("gossip.stream.rules")

BATCH = 500  # changes derived together: a few round trips for the lot, not a few per change
LINGER = 0.1  # seconds a change may wait for others to join its batch, while they keep coming
KEEP_EVERY = 1.0  # seconds between writes of a rule's position while changes keep coming
REPLAY = f"{sys.executable} -m services.stream.rules"  # docs/watch-rules.md: the command that notifies what was missed
HISTORY_LOST = {280, 286}  # ChangeStreamFatalError, ChangeStreamHistoryLost: the kept token has left the oplog
DUPLICATE_KEY = 11000
# A document's _id, the states its changes left it in (in order), and whether they were all inserts: then no update
# of it can have been written but by a process that heard the same insert, which the unique source key settles.
Present = tuple[Any, list[dict[str, Any]], bool]


def document_key(rule: Rule, document_id: Any) -> str:
    """A source document, by rule: its _id's type and value, so that 5 and "5" stay two documents."""
    return f"{rule.name}:{type(document_id).__name__}:{document_id}"


class Derivation:
    """One rule's changes made into updates. `derive` takes change events (or, for `replay`, replace events made
    from the documents as they are) and is safe to run twice on the same changes: what was told is not told again."""

    def __init__(self, db: Database, rule: Rule, catalogue: Catalogue) -> None:
        self.db, self.rule, self.catalogue = db, rule, catalogue

    async def derive(self, changes: list[Change]) -> int:
        """Documents in the order of their last change in the batch. A document deleted at the end is retracted; an
        edited one is edited as its last change left it; and under `update = "notify"` each of its changes in turn
        is told, if it changed what the last one told. Returns how many updates it wrote."""
        by_document: dict[str, tuple[Any, list[Change]]] = {}
        for change in changes:
            document_id = change_id(change)
            key = document_key(self.rule, document_id)
            by_document[key] = by_document.pop(key, (document_id, []))
            by_document[key][1].append(change)
        gone = [key for key, (_, heard) in by_document.items() if heard[-1]["operationType"] == "delete"]
        if gone and "delete" in self.rule.on:  # the watcher retracts each: their _ids hold their seqs
            await self.db.updates.delete_many({"source_doc": {"$in": gone}})
        present = {}
        for key, (document_id, heard) in by_document.items():
            states = [change["fullDocument"] for change in heard if self._telling(change)]
            if states and key not in gone:
                fresh = all(change["operationType"] == "insert" for change in heard)
                present[key] = (document_id, states[-1:] if self.rule.edits else states, fresh)
        return await self._derive(present) if present else 0

    def _telling(self, change: Change) -> bool:
        """Whether a change may tell something: a document as it left it, and (for an update event) one that may
        have changed the rule's fields. MongoDB's update events say which fields changed; the embedded server's do
        not, and `source_state` decides."""
        if change["operationType"] == "delete" or not change.get("fullDocument"):
            return False
        described = change.get("updateDescription")
        if not self.rule.fields or change["operationType"] != "update" or not described:
            return True
        changed = [*described.get("updatedFields", {}), *described.get("removedFields", [])]
        return any(path.split(".")[0] in self.rule.fields for path in changed)

    async def _matching(self, present: dict[str, Present]) -> dict[str, Present]:
        """Of each document's states, those the rule's filter takes, each as its change left the document: a status
        the filter leaves out is not told because the next change, in the same batch, brought one it takes."""
        if self.rule.filter is None:
            return present
        every = [state for _, states, _ in present.values() for state in states]
        taken = set(await matching(self.db, every, dict(self.rule.filter)))
        kept, position = {}, 0
        for key, (document_id, states, fresh) in present.items():
            chosen = [state for n, state in enumerate(states, start=position) if n in taken]
            position += len(states)
            if chosen:
                kept[key] = (document_id, chosen, fresh)
        return kept

    async def _derive(self, present: dict[str, Present]) -> int:
        present = await self._matching(present)
        told = await self._told([key for key, (_, _, fresh) in present.items() if not fresh])
        recipients = await self._recipients([state for _, states, _ in present.values() for state in states])
        titles = await self.catalogue.titles()
        creates: list[dict[str, Any]] = []
        edits: list[UpdateOne] = []
        for key, (document_id, states, _) in present.items():
            for document in states:
                try:
                    update = self._update(document, titles, recipients)
                except ValueError as error:
                    self._skip(document_id, str(error))
                    continue
                earlier = told.get(key)
                if earlier is not None and earlier.get("source_state") == update["source_state"]:
                    continue
                if earlier is not None and self.rule.edits:
                    edits.append(self._edit(earlier["_id"], update))
                    continue
                number = 1 if earlier is None else int(earlier.get("source_n", 1)) + 1
                told[key] = {**update, "source_doc": key, "source_n": number, "source_key": f"{key}:{number}"}
                creates.append(told[key])
        if edits:  # the watcher sees `announced` gone and sends an `edit`, as for an edit through the API
            await self.db.updates.bulk_write(edits, ordered=False)
        return await self._create(creates) if creates else 0

    async def _told(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The last update written for each of these source documents."""
        if not keys:
            return {}
        found = self.db.updates.find(
            {"source_doc": {"$in": keys}}, {"source_doc": 1, "source_n": 1, "source_state": 1, "text": 1}
        ).sort("seq", 1)
        return {update["source_doc"]: update async for update in found}  # the last one per document wins

    @staticmethod
    def _edit(stored_id: Any, update: dict[str, Any]) -> UpdateOne:
        text = update["text"]
        change = {"$set": {"text": text, "source_state": update["source_state"]}, "$unset": {"announced": ""}}
        return UpdateOne({"_id": stored_id, "text": {"$ne": text}}, with_now(change, "edited_at"))

    async def _recipients(self, documents: list[dict[str, Any]]) -> dict[str, str]:
        """username_key → the user's _id, for the usernames the documents name: one query for the batch."""
        field = self.rule.recipient_field
        if field is None:
            return {}
        names = {username_key(document[field]) for document in documents if isinstance(document.get(field), str)}
        found = self.db.users.find({"username_key": {"$in": list(names)}}, {"username_key": 1})
        return {user["username_key"]: user["_id"] async for user in found}

    def _update(
        self, document: dict[str, Any], titles: Mapping[str, str], recipients: Mapping[str, str]
    ) -> dict[str, Any]:
        """The update the document makes, before it is numbered; ValueError when it cannot make one."""
        rule, personal = self.rule, {}
        if rule.recipient_field is not None:
            username = document.get(rule.recipient_field)
            recipient = recipients.get(username_key(username)) if isinstance(username, str) else None
            if recipient is None:
                raise ValueError(f"{rule.recipient_field}: {username!r} is no user of Gossip's")
            assert rule.show is not None and rule.title is not None  # rulebook: a personal rule has both
            show, title, personal["recipient"] = rule.show, rule.title, recipient
        else:
            slug = rule.show if rule.show is not None else document.get(rule.show_field or "")
            if not isinstance(slug, str) or slug not in titles:
                raise ValueError(f"{rule.show_field or 'show'}: {slug!r} is not a show of the catalogue")
            show, title = slug, titles[slug]
        try:
            text = render(rule, document, title)
        except (TypeError, ValueError) as error:
            raise ValueError(f"text: {error}") from None
        update = update_document(show=show, title=title, text=text, author=rule.name, created_at=utcnow(), **personal)
        update["source_state"] = self._state(document, update)
        return update

    def _state(self, document: Mapping[str, Any], update: Mapping[str, Any]) -> str:
        """What a change must alter to be told: the rule's fields, or else what its update says and to whom."""
        if self.rule.fields:
            values = [plain(document.get(name)) for name in self.rule.fields]
            return digest(json.dumps(values, default=str, sort_keys=True))
        return digest(f"{update['show']}\n{update.get('recipient', '')}\n{update['text']}")

    async def _create(self, creates: list[dict[str, Any]]) -> int:
        """One block of seqs and one unordered insert for the batch. A source key another process stored first
        fails alone: its seq is a hole."""
        numbered(creates, await next_seq(self.db, count=len(creates)))
        try:
            await self.db.updates.insert_many(creates, ordered=False)  # insert: dates stay dates on the embedded server
        except BulkWriteError as error:
            if error.details.get("writeConcernErrors"):
                raise
            for problem in error.details["writeErrors"]:
                if problem.get("code") != DUPLICATE_KEY:
                    self._skip(creates[problem["index"]]["source_doc"], problem.get("errmsg", "not stored"))
            written = len(creates) - len(error.details["writeErrors"])
        else:
            written = len(creates)
        RULE_UPDATES.labels(rule=self.rule.name).inc(written)
        return written

    def _skip(self, document_id: Any, why: str) -> None:
        """A document the rule cannot make an update of: one line and a count, and the changes after it go on."""
        RULE_SKIPPED.labels(rule=self.rule.name).inc()
        log.warning("watch rule %r skipped a document of %s (_id %r): %s", self.rule.name, self.rule.collection,
                    document_id, why)  # fmt: skip


class Promoted(Reopen):
    """This process now derives the rule: its stream reopens from the kept position, where the last holder stopped."""


class RuleStream:
    """A rule's change stream: its changes batched into `Derivation.derive`, and the position after each batch
    kept in `rule_tokens`, so that a restarted service resumes where it stopped. `epoch`: token_epoch's; `replay`:
    the replay command as it runs where this process does (replay_command).

    Every stream process runs the stream, but one at a time derives: the holder of the rule's lease in
    `rule_leases`, which lasts `lease` seconds unrenewed. Two deriving at once would store each update once all the
    same (the source keys), but each loser's seqs would be holes, and every hole holds the updates after it for the
    watcher's gap wait. A holder that stops keeps its position and frees the lease (`release`); one that goes quiet
    (killed, frozen) loses it `lease` seconds after its last renewal. Either way another process takes it at its
    next ask and reopens its stream from the kept position. The lease's times are the processes' own clocks, which
    must agree to well within a lease (as NTP keeps them)."""

    def __init__(
        self, db: Database, rule: Rule, catalogue: Catalogue, epoch: str | None, lease: float, replay: str = REPLAY
    ) -> None:
        self.db, self.rule, self.epoch, self.lease, self.replay = db, rule, epoch, lease, replay
        self.derivation = Derivation(db, rule, catalogue)
        self._pending: list[Change] = []
        self._since = 0.0  # when the first pending change came (time.monotonic())
        self._lost: str | None = None  # why the kept token cannot be resumed from, once the server said so
        self._derived: Mapping[str, Any] | None = None  # the position after the last derived change, until kept
        self._kept_at = 0.0
        self.me, self._leading, self._ask_at = new_id(), False, 0.0

    def changes(self) -> ChangeStream:
        """Polled less eagerly than `updates` (20 ms while busy): a batch waits up to LINGER for company anyway, and
        each poll of the embedded server costs it time that an import into the watched collection needs."""
        match = [{"$match": {"operationType": {"$in": self.rule.operation_types}}}]
        return ChangeStream(
            self.db[self.rule.collection], match, self._reopened, self._on_change, self._idle,
            pause=0.02, idle_pause=0.1, server_wait=0.1, options=LOOKUP, resume=self,
        )  # fmt: skip

    async def _reopened(self) -> None:
        """The stream resumes from the kept token: whatever was pending (or derived since) comes again."""
        self._pending.clear()
        self._derived = None

    async def _lead(self) -> bool:
        """Whether this process derives the rule: it takes the lease when free or lapsed, and renews it every third
        of the lease; another process asks again every tenth."""
        now = time.time()
        if now < self._ask_at:
            return self._leading
        free = {"$or": [{"holder": self.me}, {"until": {"$lt": now}}]}
        held = await self.db.rule_leases.update_one(
            all_of({"_id": self.rule.name}, free), {"$set": {"holder": self.me, "until": now + self.lease}}
        )
        self._leading = held.matched_count == 1
        self._ask_at = now + self.lease / (3 if self._leading else 10)
        return self._leading

    async def _ask(self) -> None:
        """Renews the lease, or asks for it; a process that takes it from another reopens its stream from the kept
        position, where the last holder stopped."""
        leading = self._leading
        if await self._lead() and not leading:
            raise Promoted(f"watch rule {self.rule.name!r}: this process derives it now")

    async def release(self) -> None:
        """At shutdown, once the stream has stopped: the position derived so far is kept and the lease freed, so that
        another process takes over at its next ask, from exactly there, instead of a lease later."""
        if not self._leading:
            return
        await self._keep()
        await self.db.rule_leases.update_one({"_id": self.rule.name, "holder": self.me}, {"$set": {"until": 0}})

    async def _on_change(self, change: Change) -> None:
        if not self._leading:
            await self._ask()  # the holder derives it; asked here too, since a busy stream is seldom idle
            return
        if not self._pending:
            self._since = time.monotonic()
        self._pending.append(change)
        if len(self._pending) >= BATCH or time.monotonic() - self._since >= LINGER:
            await self.flush()

    async def flush(self) -> None:
        """Derives what is pending. On a failure the batch is pending again: a failure of the database reopens the
        stream from the kept token, any other is tried again."""
        if not self._pending:
            return
        if not await self._lead():  # lost the lease: the new holder derives from the position last kept
            self._pending.clear()
            return
        changes, self._pending = self._pending, []
        try:
            await self.derivation.derive(changes)
        except BaseException:
            self._pending = changes + self._pending
            raise
        self._derived = changes[-1]["_id"]
        if time.monotonic() - self._kept_at >= KEEP_EVERY:
            await self._keep()

    async def _idle(self) -> None:
        await self._ask()
        await self.flush()
        await self._keep()

    async def _keep(self) -> None:
        """The position after the last derived change, kept at most every KEEP_EVERY seconds under load (and once
        idle): a restart derives up to that much again, which writes nothing twice (the source keys, and the state
        each update told)."""
        if self._derived is None:
            return
        kept = {"_id": self.rule.name, "token": self._derived, "epoch": self.epoch, "at": utcnow()}
        self._derived, self._kept_at = None, time.monotonic()
        await put(self.db.rule_tokens, kept)

    async def options(self) -> dict[str, Any]:
        with contextlib.suppress(DuplicateKeyError):  # the lease's document, made once by whichever process is first
            await self.db.rule_leases.insert_one({"_id": self.rule.name, "holder": None, "until": 0})
        self._ask_at = 0.0
        await self._lead()
        kept = await self.db.rule_tokens.find_one({"_id": self.rule.name})
        if kept is None:
            return {}
        if self._lost is None and same_process(kept.get("epoch"), self.epoch):
            return {"resume_after": kept["token"]}
        self._history_lost(kept)
        await self.db.rule_tokens.delete_one({"_id": self.rule.name})
        self._lost = None
        return {}

    async def opened(self, token: Mapping[str, Any] | None) -> None:
        """A rule heard for the first time (or after lost history) starts from now: kept at once, so that changes
        made while the service is next down are heard when it starts again, even if none comes before."""
        if token is not None and await self.db.rule_tokens.find_one({"_id": self.rule.name}, {"_id": 1}) is None:
            self._derived = token
            await self._keep()

    def failed(self, error: Exception) -> None:
        if isinstance(error, OperationFailure) and error.code in HISTORY_LOST:
            self._lost = str(error)

    def _history_lost(self, kept: Mapping[str, Any]) -> None:
        """Loud when MongoDB says the position has left its oplog: changes were made that nobody heard. The embedded
        server forgets every position when it stops, and under `make run` runs only while Gossip does: a position an
        earlier process of it kept is no news there, said as information; one kept with another server (its data
        moved here) is said as a warning. Each with the command that notifies what was missed."""
        RULE_HISTORY_LOST.labels(rule=self.rule.name).inc()
        since = kept.get("at")
        when = iso_utc(since) if since is not None else "<ISO time>"
        replay = f"{self.replay} replay {self.rule.name} --since {when}"
        if self._lost is not None:
            log.error(
                "WATCH RULE %r LOST ITS PLACE: its resume token cannot be used (%s). It carries on from now; changes "
                "to %s since %s were NOT notified. To notify them: %s",
                self.rule.name, self._lost, self.rule.collection, when, replay,
            )  # fmt: skip
        elif from_earlier_process(kept.get("epoch"), self.epoch):
            log.info(
                "watch rule %r starts from now: the embedded database server forgets its change stream positions "
                "when it stops, so the one an earlier run of it kept is gone, as at every `make run` but the first. "
                "A change made to %s after %s while no Gossip watched (none if the database ran only with Gossip) "
                "is not notified; to notify any: %s",
                self.rule.name, self.rule.collection, when, replay,
            )  # fmt: skip
        else:
            log.warning(
                "watch rule %r starts from now: its position was kept with another database server (%s), which "
                "this one cannot resume. A change made to %s after %s is not notified; to notify any: %s",
                self.rule.name, kept.get("epoch") or "MongoDB", self.rule.collection, when, replay,
            )  # fmt: skip


async def replay_command(db: Database, epoch: str | None) -> str:
    """The replay command, pasted as said into a shell where this process runs: its own Python, and on the embedded
    server (which takes no password) the database's address, which a shell beside `make run` has not been told."""
    address = None if epoch is None else await db.client.address
    if address is None:
        return REPLAY
    return f"MONGO_URL=mongodb://{address[0]}:{address[1]} MONGO_DB={db.name} {REPLAY}"


async def rule_streams(db: Database, rules: list[Rule], catalogue: Catalogue, lease: float) -> list[RuleStream]:
    """`lease`: Settings.rule_lease."""
    epoch = await token_epoch(db)
    replay = await replay_command(db, epoch)
    return [RuleStream(db, rule, catalogue, epoch, lease, replay) for rule in rules]
