"""The watch rules file (gossip.toml, or the one WATCH_RULES names) as read, in one place for the two services that
read it: the stream service makes rules of its [[rules]] tables (services/stream/rulebook.py), and auth reserves
their names. A rule's name is the author of its updates, and whatever decides "one's own update" (unread counts,
pushes, the digest, the pages) compares the author with the viewer's username: a user holding a rule's name would
take the rule's updates for their own. So rule names and usernames are never the same name."""

from __future__ import annotations

import logging
import re
import tomllib
from pathlib import Path
from typing import Any

from shared.db import username_key

log = logging.getLogger("gossip.rules")
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


# What says the file changed: its inode (a file saved by renaming a new one over it), size, and modification and
# change times; None when it cannot be looked at.
Stamp = tuple[int, int, int, int] | None


def _stamp(path: Path) -> Stamp:
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns


class ReservedNames:
    """The rules' names as the file says them now, not only as it said them when auth started: a rule added while
    auth runs has its name reserved at once, before anyone can register it and stop the next start of the stream
    service that would run the rule. The file is read again only when its stamp differs from the one last seen: one
    `stat` per registration, and no read while it stays the same.

    At the start a file that cannot be read or holds a wrong rule raises RuleError: auth does not start, as the
    stream service would not. Later, such a file (half saved, a typo, gone) leaves the names read last in force, with
    one warning per version of the file, not one per registration: a broken file must free no rule's name. Once the
    file is right again, its names replace them."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._stamp = _stamp(path) if path is not None else None  # before the read: a change meanwhile is seen next
        self._names = reserved(path)

    def current(self) -> frozenset[str]:
        if self._path is None:
            return self._names
        stamp = _stamp(self._path)
        if stamp == self._stamp:
            return self._names
        self._stamp = stamp
        try:
            self._names = reserved(self._path)
        except RuleError as error:
            log.warning("%s; the names read from %s before stay reserved until it is fixed", error, self._path)
        return self._names
