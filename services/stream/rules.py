"""The watch rules from the command line, against the database MONGO_URL names:

    python -m services.stream.rules check
    python -m services.stream.rules replay RULE --since 2026-12-01T00:00:00Z

`check` reads the rules file (WATCH_RULES, or gossip.toml) and checks every rule as the stream service does when it
starts. `replay` runs one rule over the documents of its collection changed since a time, as if each had just been
written: by the rule's `time_field` when it names one, else by the time in the document's ObjectId _id (its
insert time; a later change to an older document is not found that way). What was told already is not told again;
a document changed since its update was written gets its update edited (`update = "edit"`), or a new one. For the
changes missed when a rule's resume token was lost (the stream service logs the command to run)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import datetime
from typing import Any

from services.stream import rulebook
from services.stream.derive import BATCH, Derivation
from shared.catalogue import Catalogue
from shared.db import Database, as_datetime, connect, prepare
from shared.logs import configure
from shared.settings import Settings

log = logging.getLogger("gossip.stream.rules")


async def replay(db: Database, rule: rulebook.Rule, since: datetime) -> tuple[int, int]:
    """(documents gone over, updates written), a batch of documents at a time in _id order."""
    derivation = Derivation(db, rule, Catalogue(db))
    after, seen, written = None, 0, 0
    query = rulebook.since_query(rule, since)
    while True:
        page = query if after is None else {"$and": [query, {"_id": {"$gt": after}}]}
        documents = await db[rule.collection].find(page).sort("_id", 1).limit(BATCH).to_list()
        changes = [{"operationType": "replace", "documentKey": {"_id": document["_id"]}, "fullDocument": document}
                   for document in documents]  # fmt: skip
        written += await derivation.derive(changes) if changes else 0
        seen += len(documents)
        if len(documents) < BATCH:
            return seen, written
        after = documents[-1]["_id"]


async def _run(settings: Settings, arguments: argparse.Namespace) -> None:
    if settings.watch_rules is None:
        raise rulebook.RuleError("no rules file: set WATCH_RULES, or write gossip.toml")
    rules = {rule.name: rule for rule in rulebook.load(settings.watch_rules)}
    client = connect(settings.mongo_url)
    try:
        db = client[settings.mongo_db]
        await prepare(db)
        await rulebook.check(db, list(rules.values()), await Catalogue(db).titles())
        if arguments.command == "check":
            log.info("%d watch rules in %s, all good: %s", len(rules), settings.watch_rules, ", ".join(rules))
            return
        if arguments.rule not in rules:
            raise rulebook.RuleError(f"no watch rule {arguments.rule!r}; the rules are {', '.join(rules)}")
        seen, written = await replay(db, rules[arguments.rule], arguments.since)
        log.info("watch rule %r went over %d documents and wrote %d updates", arguments.rule, seen, written)
    finally:
        await client.close()


def _since(value: str) -> datetime:
    try:
        return as_datetime(value)
    except TypeError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.stream.rules", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="check the rules file against the database")
    again = commands.add_parser("replay", help="notify what a rule missed since a time")
    again.add_argument("rule")
    again.add_argument("--since", type=_since, required=True, help="ISO 8601, such as 2026-12-01T00:00:00Z")
    arguments: Any = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as error:
        sys.exit(f"gossip: {error}")
    configure(settings.log_format)
    if not settings.mongo_url:
        sys.exit("gossip: set MONGO_URL (under `make run`, the embedded server is mongodb://127.0.0.1:27027)")
    try:
        asyncio.run(_run(settings, arguments))
    except rulebook.RuleError as error:
        sys.exit(f"gossip: {error}")


if __name__ == "__main__":
    main()
