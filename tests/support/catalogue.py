"""Show documents as operators and other programs may write them straight into `shows`: none is a usable show."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

HOSTILE_SHOWS: list[dict[str, Any]] = [
    {"_id": "no_title"},
    {"_id": "number_title", "title": 7},
    {"_id": "null_title", "title": None},
    {"_id": "dict_title", "title": {"en": "Dark"}},
    {"_id": "empty_title", "title": ""},
    {"_id": "blank_title", "title": "   "},
    {"_id": "long_title", "title": "x" * 10_000},
    {"_id": 42, "title": "An integer"},
    {"_id": ObjectId(), "title": "An ObjectId"},
    {"_id": "a.b", "title": "A dot"},
    {"_id": "$x", "title": "A dollar"},
    {"_id": "", "title": "Empty"},
    {"_id": "z" * 500, "title": "Long slug"},
    {"_id": "Dark", "title": "Capitals"},
]
