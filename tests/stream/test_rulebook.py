"""Watch rules as read from their file: what a template may say and how it renders, and every kind of wrong rule
stopping the stream service at startup with a message that names the rule and the field."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bson import ObjectId
from pymongo.errors import OperationFailure

from dev.processes import ServiceProcess
from services.stream.lifecycle import watched
from services.stream.rulebook import RuleError, check_query, load, matching, parse_template, render
from shared.catalogue import Catalogue
from shared.db import Database, prepare
from shared.settings import RULES, Settings
from tests.support.accounts import registered

AIRS = datetime(2026, 12, 8, 20, 0, tzinfo=UTC)
GOOD = """
[[rules]]
name = "episodes"
collection = "episodes"
on = ["insert", "update"]
show_field = "show"
text = "New episode of {show_title}: {title}"
"""


def rules_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gossip.toml"
    path.write_text(text)
    return path


def test_the_shipped_rules_are_the_two_of_the_example() -> None:
    rules = {rule.name: rule for rule in load(RULES)}
    assert set(rules) == {"episodes", "orders"}
    assert rules["episodes"].show_field == "show" and rules["episodes"].edits and "delete" in rules["episodes"].on
    assert rules["orders"].recipient_field == "user" and not rules["orders"].edits
    assert rules["orders"].fields == ("status",)


def test_a_template_renders_fields_formats_and_show_title_and_a_missing_field_as_nothing() -> None:
    template = parse_template("t", "{show_title}: {title}, on {airs_at:%a %d %b}{absent}")
    rule = dataclasses.replace(load(RULES)[0], text=template)
    document = {"title": "Pilot", "airs_at": datetime(2026, 12, 8, 20, 0, tzinfo=UTC)}
    assert render(rule, document, "The Flash") == "The Flash: Pilot, on Tue 08 Dec"
    assert render(rule, {"airs_at": {"$date": "2026-12-08T20:00:00Z"}}, "X") == "X: , on Tue 08 Dec"
    with pytest.raises(ValueError, match="Invalid format specifier"):
        render(rule, {"airs_at": "next week"}, "X")


@pytest.mark.parametrize(
    "template",
    ["{a.b}", "{a[0]}", "{0}", "{}", "{a!r}", "{a:{b}}", "unclosed {a", "a } alone", "{__class__.__mro__}", ""],
)
def test_a_template_that_is_more_than_named_fields_is_refused(template: str) -> None:
    with pytest.raises(RuleError, match="watch rule 'r', text: "):
        parse_template("r", template)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (('text = "New episode of {show_title}: {title}"', 'text = "{title.upper}"'), "text"),
        (('on = ["insert", "update"]', 'on = ["insert", "upsert"]'), "on"),
        (('show_field = "show"', 'show_field = "show"\nfilter = { status = { "$bogus" = 1 } }'), "filter"),
        (('show_field = "show"', 'show = "no_such_show"'), "show"),
        (('show_field = "show"', 'show_field = "show"\ncolour = "red"'), "colour"),
        (('collection = "episodes"', 'collection = "updates"'), "collection"),
        (('show_field = "show"', 'recipient_field = "user"\nshow = "orders"'), "title"),
    ],
)
async def test_a_wrong_rule_stops_startup_naming_the_rule_and_the_field(
    tmp_path: Path, db: Database, settings: Settings, change: tuple[str, str], field: str
) -> None:
    await prepare(db)
    path = rules_file(tmp_path, GOOD.replace(*change))
    with pytest.raises(RuleError, match=f"watch rule 'episodes', {field}: "):
        await watched(db, dataclasses.replace(settings, watch_rules=path), Catalogue(db))


async def test_a_rule_named_as_a_user_stops_startup_naming_the_rule(
    tmp_path: Path, server: str, db: Database, settings: Settings
) -> None:
    """A rule added after a user took its name, in any case: the user would take the rule's updates for their own."""
    async with registered(server, "Episodes"):
        pass
    path = rules_file(tmp_path, GOOD)
    with pytest.raises(RuleError, match="watch rule 'episodes', name: a user has this name, and a rule's name is"):
        await watched(db, dataclasses.replace(settings, watch_rules=path), Catalogue(db))


def test_a_rules_file_that_is_not_toml_or_not_there_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match=r"gossip\.toml"):
        load(rules_file(tmp_path, "[[rules]\nname = 1"))
    with pytest.raises(RuleError, match=r"missing\.toml"):
        load(tmp_path / "missing.toml")


def test_the_stream_service_process_does_not_start_with_a_wrong_rule_and_says_why(
    tmp_path: Path, settings: Settings
) -> None:
    path = rules_file(tmp_path, GOOD.replace('on = ["insert", "update"]', 'on = ["insert", "upsert"]'))
    stream = ServiceProcess("services.stream.app", dataclasses.replace(settings, watch_rules=path))
    with pytest.raises(RuntimeError, match="watch rule 'episodes', on: unknown operation 'upsert'"):
        stream.start()
    assert stream.process is not None and stream.process.returncode not in (None, 0)


async def test_a_query_mongodb_refuses_is_refused_even_on_an_empty_collection(db: Database) -> None:
    with pytest.raises(OperationFailure):
        await check_query(db, "no_documents_yet", {"status": {"$bogus": 1}})
    await check_query(db, "no_documents_yet", {"status": {"$in": ["placed", "shipped"]}})


async def test_documents_are_matched_as_given_by_mongodbs_own_query(db: Database) -> None:
    """Each as its change event carries it; none is looked up in its collection."""
    documents = [
        {"_id": ObjectId(), "kind": "odd", "n": 3, "at": AIRS},
        {"_id": 9, "kind": "odd", "n": 5, "at": AIRS},
        {"kind": "even", "n": 4, "at": AIRS},
        {"kind": "odd", "n": 1, "at": AIRS},
        {"kind": "odd", "n": 7, "at": datetime(2026, 12, 1, tzinfo=UTC)},
    ]
    query = {"kind": "odd", "n": {"$gte": 2}, "at": {"$gte": AIRS}}
    assert await matching(db, documents, query) == [0, 1]
    assert await matching(db, [], query) == []
    assert await db.query_checks.count_documents({"_check": {"$ne": "one"}}) == 0  # nothing left behind


@pytest.mark.embedded
async def test_the_embedded_servers_change_events_match_as_the_dates_they_encode(db: Database) -> None:
    """Its change events carry a date as {"$date": ...}; copied as they are, it reads them back as dates."""
    documents = [{"at": {"$date": "2026-12-08T20:00:00Z"}}, {"at": {"$date": "2026-12-01T00:00:00Z"}}]
    assert await matching(db, documents, {"at": {"$gte": AIRS}}) == [0]
