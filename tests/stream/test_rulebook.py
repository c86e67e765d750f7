"""Watch rules as read from their file: what a template may say and how it renders, and every kind of wrong rule
stopping the stream service at startup with a message that names the rule and the field."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pymongo.errors import OperationFailure

from dev.processes import ServiceProcess
from services.stream.lifecycle import watched
from services.stream.rulebook import RuleError, check_query, load, matching, parse_template, render
from shared.catalogue import Catalogue
from shared.db import Database, prepare
from shared.settings import RULES, Settings

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


@pytest.mark.parametrize("embedded", [True, False])
async def test_the_documents_of_given_ids_that_match_a_query_are_found_either_way(db: Database, embedded: bool) -> None:
    ids = (await db.things.insert_many([{"n": n, "kind": "odd" if n % 2 else "even"} for n in range(10)])).inserted_ids
    found = await matching(db, "things", ids[:6], {"kind": "odd", "n": {"$gte": 2}}, embedded)
    assert sorted(found) == [ids[3], ids[5]]
    assert await matching(db, "things", [], {"kind": "odd"}, embedded) == []
    assert await db.query_checks.count_documents({"_check": {"$ne": "one"}}) == 0  # nothing left behind
