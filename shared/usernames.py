"""The username rule, in one place: auth registers names by it, and an update's `author` must follow it whoever wrote
the update, since it reaches every feed and page that shows the update."""

from __future__ import annotations

import re

USERNAME_MIN, USERNAME_MAX = 3, 32
USERNAME = re.compile(rf"[A-Za-z0-9_.-]{{{USERNAME_MIN},{USERNAME_MAX}}}")
USERNAME_RULE = f"{USERNAME_MIN} to {USERNAME_MAX} ASCII letters, digits, '.', '_' or '-'"


def is_username(value: object) -> bool:
    return isinstance(value, str) and USERNAME.fullmatch(value) is not None
