"""The watch rules file (gossip.toml, or the one WATCH_RULES names) as read, in one place for the two services that
read it: the stream service makes rules of its [[rules]] tables (services/stream/rulebook.py), and auth reserves
their names. A rule's name is the author of its updates, and whatever decides "one's own update" (unread counts,
pushes, the digest, the pages) compares the author with the viewer's username: a user holding a rule's name would
take the rule's updates for their own. So rule names and usernames are never the same name."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from shared.db import username_key

NAME = re.compile(r"[a-z0-9_-]{3,32}")  # a rule's name is the author of its updates: a username's shape
NAME_RULE = "3 to 32 of a-z, 0-9, '_' or '-'"


class RuleError(ValueError):
    """A rule that cannot work; the message names the rule and the field."""


def problem(rule: str, field: str, message: str) -> RuleError:
    return RuleError(f"watch rule {rule!r}, {field}: {message}")


def tables(path: Path) -> list[dict[str, Any]]:
    """The file's [[rules]] tables, each named in a username's shape and no two alike; RuleError if the file cannot
    be read, holds anything else, or a name is wrong. What else a rule says is the stream service's to check."""
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise RuleError(f"watch rules {path}: {error}") from None
    entries = document.get("rules", [])
    if set(document) - {"rules"} or not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise RuleError(f"watch rules {path}: only [[rules]] tables belong in it")
    seen: set[str] = set()
    for position, entry in enumerate(entries, start=1):
        name = entry.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise RuleError(f"watch rule #{position}, name: {NAME_RULE}, got {name!r}")
        if name in seen:
            raise problem(name, "name", "two rules have this name")
        seen.add(name)
    return entries


def is_topic(value: object) -> bool:
    """Whether `value` is a personal topic: named as a personal rule's `show` must be (NAME). Anything else in a
    personal update's `show` was written by another program. A topic keys the user's preferences, stored at
    `preferences.shows.<topic>`, where a '.' nests and a '$' is refused, and goes on pages and in pushes."""
    return isinstance(value, str) and NAME.fullmatch(value) is not None


def reserved(path: Path | None) -> frozenset[str]:
    """The rules' names as usernames are compared (username_key): the names no user may register. No file, none."""
    return frozenset(username_key(entry["name"]) for entry in tables(path)) if path is not None else frozenset()
