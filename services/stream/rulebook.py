"""Watch rules, read from a TOML file (gossip.toml): which changes in which collection become which updates.

Everything a rule says is checked when the stream service starts, and a rule that cannot work stops it with a
message naming the rule and the field: a template is format-style placeholders over the document's fields, nothing
that evaluates (no attribute or index access, no conversions, no nested placeholders); an operation is one of the
three; a filter is run against its collection, so that MongoDB itself refuses one it would not take; a name is
not one a user holds (shared/rulesfile.py reads the file, and says why).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bson import ObjectId
from pymongo.errors import PyMongoError

from shared.db import Database, as_datetime, new_id, put, username_key
from shared.rulesfile import NAME, tables
from shared.rulesfile import RuleError as RuleError
from shared.rulesfile import problem as _problem
from shared.updates import why_text_refused

OPERATIONS = ("insert", "update", "delete")
FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SHOW_TITLE = "show_title"  # the one placeholder that is not a document field: the catalogue's title of the show
KEYS = {"name", "collection", "on", "fields", "update", "filter", "show", "show_field", "recipient_field", "title",
        "text", "time_field"}  # fmt: skip
OWN = {"updates", "users", "sessions", "shows", "counters", "tokens", "update_ids", "spent_keys", "buckets",
       "rule_tokens", "rule_leases", "query_checks"}  # fmt: skip
HELD_NAME = ("a user has this name, and a rule's name is the author of its updates (a reserved username, or the user "
             "would take them for their own): rename the rule")  # fmt: skip
Part = tuple[str, str | None, str]  # literal text, then a field (None at the end) and its format spec


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    collection: str
    on: frozenset[str]  # heard operations: insert, update, delete
    text: tuple[Part, ...]  # the template, parsed
    fields: tuple[str, ...] = ()  # an update is heard only when one of these changed; () is any change
    edits: bool = True  # a heard update edits the rule's update for the document; False: it is a new one
    filter: Mapping[str, Any] | None = None
    show: str | None = None  # a fixed topic
    show_field: str | None = None  # the field holding the show's slug
    recipient_field: str | None = None  # the field holding a username: a personal update
    title: str | None = None  # a personal update's title, in place of the catalogue's
    time_field: str | None = None  # what `replay --since` compares; the _id's time when None

    @property
    def operation_types(self) -> list[str]:
        """The change events' operationType values the rule hears (a replace is an update)."""
        kinds = {"insert": ["insert"], "update": ["update", "replace"], "delete": ["delete"]}
        return [kind for operation in OPERATIONS if operation in self.on for kind in kinds[operation]]


def parse_template(rule: str, template: object) -> tuple[Part, ...]:
    """The template's parts, as string.Formatter reads it; refused if any placeholder is more than a field's name
    and a format spec."""
    if not isinstance(template, str) or not template.strip():
        raise _problem(rule, "text", 'a template is required, such as "{title}"')
    parts: list[Part] = []
    try:
        for literal, name, spec, conversion in string.Formatter().parse(template):
            if name is not None and not FIELD.fullmatch(name):
                raise _problem(rule, "text", f"{{{name}}} is not a field's name (no '.', '[', nor positions)")
            if conversion is not None or (spec and "{" in spec):
                raise _problem(rule, "text", f"{{{name}}}: no conversions and no placeholders inside a format")
            parts.append((literal, name, spec or ""))
    except ValueError as error:
        if isinstance(error, RuleError):
            raise
        raise _problem(rule, "text", f"not a valid template: {error}") from None
    return tuple(parts)


def _strings(rule: str, field: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise _problem(rule, field, "a list of names")
    return tuple(value)


def _name(rule: str, field: str, value: object, pattern: re.Pattern[str] = FIELD) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _problem(rule, field, f"{value!r} is not a name")
    return value


def parse_rule(entry: Mapping[str, Any]) -> Rule:
    """One [[rules]] table, its name checked already (rulesfile.tables), as a Rule; RuleError names what is wrong."""
    name = entry["name"]
    if unknown := sorted(set(entry) - KEYS):
        raise _problem(name, unknown[0], f"not a rule setting; choose from {', '.join(sorted(KEYS))}")
    collection = entry.get("collection")
    if not isinstance(collection, str) or not collection or collection in OWN or "$" in collection:
        raise _problem(name, "collection", f"a collection of another program's, not {collection!r}")
    on = _strings(name, "on", entry.get("on"))
    if unknown_ops := [operation for operation in on if operation not in OPERATIONS]:
        raise _problem(name, "on", f"unknown operation {unknown_ops[0]!r}; choose from {', '.join(OPERATIONS)}")
    if not on:
        raise _problem(name, "on", f"at least one of {', '.join(OPERATIONS)}")
    update = entry.get("update", "edit")
    if update not in ("edit", "notify"):
        raise _problem(name, "update", f"'edit' or 'notify', got {update!r}")
    query = entry.get("filter")
    if query is not None and (not isinstance(query, dict) or "_id" in query):
        raise _problem(name, "filter", "a table of MongoDB query operators, on fields other than _id")
    rule = Rule(
        name=name, collection=collection, on=frozenset(on), text=parse_template(name, entry.get("text")),
        fields=_strings(name, "fields", entry.get("fields", [])), edits=update == "edit", filter=query,
        show=_name(name, "show", entry.get("show"), NAME),
        show_field=_name(name, "show_field", entry.get("show_field")),
        recipient_field=_name(name, "recipient_field", entry.get("recipient_field")),
        title=entry.get("title"), time_field=_name(name, "time_field", entry.get("time_field")),
    )  # fmt: skip
    _check_audience(rule)
    return rule


def _check_audience(rule: Rule) -> None:
    """A topic from a field or a fixed one; a personal update needs a fixed topic and a title of its own."""
    if (rule.show is None) == (rule.show_field is None):
        raise _problem(rule.name, "show", "name a fixed show, or the field that holds one (show_field), not both")
    if rule.recipient_field is not None:
        if rule.show is None or not isinstance(rule.title, str) or not rule.title.strip():
            raise _problem(rule.name, "title", "a personal rule (recipient_field) needs a fixed show and its title")
    elif rule.title is not None:
        raise _problem(rule.name, "title", "only a personal rule has a title; a show's comes from the catalogue")


def load(path: Path) -> list[Rule]:
    """The rules in the file; RuleError if the file cannot be read or a rule is wrong."""
    return [parse_rule(entry) for entry in tables(path)]


async def check(db: Database, rules: list[Rule], titles: Mapping[str, str]) -> None:
    """What only the database can say: a name a user holds, a filter MongoDB refuses, and a fixed show not in the
    catalogue. Auth refuses to register a rule's name, but a rule added later may take one a user has already."""
    held = await _held_names(db, rules)
    for rule in rules:
        if username_key(rule.name) in held:
            raise _problem(rule.name, "name", HELD_NAME)
        if rule.recipient_field is None and rule.show is not None and rule.show not in titles:
            raise _problem(rule.name, "show", f"{rule.show!r} is not in the catalogue")
        if rule.filter is not None:
            try:
                await check_query(db, rule.collection, dict(rule.filter))
            except PyMongoError as error:
                raise _problem(rule.name, "filter", f"MongoDB refuses it: {error}") from None


async def _held_names(db: Database, rules: list[Rule]) -> set[str]:
    """The rules' names that users hold, as usernames are compared (username_key)."""
    keys = [username_key(rule.name) for rule in rules]
    return {user["username_key"] async for user in db.users.find({"username_key": {"$in": keys}}, {"username_key": 1})}


def plain(value: Any) -> Any:
    """A date as the embedded server's change events carry it ({"$date": ...}) is a date."""
    if isinstance(value, dict) and "$date" in value:
        return as_datetime(value)
    return value


def _formatted(value: Any, spec: str) -> str:
    """A missing field (or null) is "", whatever its format."""
    return "" if value is None else format(plain(value), spec)


def render(rule: Rule, document: Mapping[str, Any], show_title: str) -> str:
    """The rule's text for the document; a missing field is "". ValueError if a value does not take its format
    (a date's format on text) or the text cannot be an update's."""
    values = {**document, SHOW_TITLE: show_title}
    text = "".join(literal + _formatted(values.get(name or ""), spec) for literal, name, spec in rule.text)
    if why := why_text_refused(text):
        raise ValueError(f"the text it renders is refused: {why}")
    return text


def since_query(rule: Rule, since: datetime) -> dict[str, Any]:
    """The documents `replay --since` goes over: its time field at or after `since`, or an _id made then or after;
    and the rule's filter."""
    if rule.time_field:
        changed: dict[str, Any] = {rule.time_field: {"$gte": since}}
    else:
        changed = {"_id": {"$gte": ObjectId.from_datetime(since)}}
    return {"$and": [changed, dict(rule.filter)]} if rule.filter else changed


# Embedded-server workaround: it reads a query only when it has a document to test it on.
async def check_query(db: Database, collection: str, query: dict[str, Any]) -> None:
    """Raises OperationFailure if MongoDB refuses the query on the collection. The embedded server reads a query
    only when it has a document to test it on, so it is also run on a collection of one document."""
    await db[collection].find(query, {"_id": 1}).limit(1).to_list()
    await put(db.query_checks, {"_id": "one", "_check": "one"})
    await db.query_checks.find(query, {"_id": 1}).limit(1).to_list()


async def matching(db: Database, documents: Sequence[Mapping[str, Any]], query: dict[str, Any]) -> list[int]:
    """The positions of the documents that match the query (which must not name `_id`), each matched as its change
    left it, not as the collection holds it now: a rule tells each change the filter takes. MongoDB's own query, so
    its own semantics, on copies of the documents in a scratch collection under a tag of this call, removed after
    (the embedded server reads back its change events' encodings of dates and ObjectIds as what they encode). A
    document's own `_check` field is not matched: the tag takes its place."""
    if not documents:
        return []
    tag = new_id()
    await db.query_checks.insert_many([{**document, "_id": f"{tag}:{n}", "_check": tag}
                                       for n, document in enumerate(documents)])  # fmt: skip
    try:
        found = db.query_checks.find({"$and": [{"_check": tag}, query]}, {"_id": 1})
        return sorted([int(copy["_id"].rsplit(":", 1)[1]) async for copy in found])
    finally:
        await db.query_checks.delete_many({"_check": tag})
