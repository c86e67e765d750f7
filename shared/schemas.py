"""The named JSON Schemas of the API document: the error shape, the update and the events on the feeds.

Written once here and referred to by each service's operations (services/<name>/api_docs.py); a schema that only
one operation uses is written inline there, beside that operation. Limits come from the code that enforces them.
"""

from __future__ import annotations

from typing import Any

from shared.db import MAX_INT
from shared.preferences import LEVELS
from shared.updates import COUNT_CAP, DELETED_AUTHOR, MAX_TEXT, NO_CONTROL, NOT_BLANK
from shared.usernames import USERNAME, USERNAME_RULE

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Schema], description: str = "", optional: dict[str, Schema] | None = None) -> Schema:
    """Every property required but the `optional` ones, none other sent: what the server answers, exactly."""
    schema: Schema = {"type": "object", "required": list(properties), "properties": {**properties, **(optional or {})},
                      "additionalProperties": False}  # fmt: skip
    return {"description": description, **schema} if description else schema


SEQ: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_INT, "description": "The update's number, strictly "
               "increasing across all shows: its id on the feeds and where a history page resumes."}  # fmt: skip
CAPPED: Schema = {"type": "integer", "minimum": 0, "maximum": COUNT_CAP}
CAPPED_NOTE = f"Counted up to {COUNT_CAP}, so that a count costs a bounded read: {COUNT_CAP} means {COUNT_CAP} or more."
TIMESTAMP: Schema = {"type": "string", "format": "date-time", "description": "UTC, to the millisecond, with a Z."}
SLUG: Schema = {"type": "string", "description": "A show's slug, from GET /api/shows (`flash`, `sherlock`, ...)."}
TEXT: Schema = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": NOT_BLANK.pattern,
                "allOf": [{"pattern": NO_CONTROL.pattern}],
                "description": "Plain text, not only blanks, with no control characters but tabs and line breaks; "
                               "stored and shown as sent, never as HTML."}  # fmt: skip
CLOCK_TIME: Schema = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$", "description": "HH:MM, local."}
QUIET_HOURS: Schema = {
    "description": "No push is sent from `start` up to `end` on the user's clock (it may wrap midnight); null: none.",
    "oneOf": [{"type": "null"}, _object({"start": CLOCK_TIME, "end": CLOCK_TIME})],
}
PREFERENCE_FIELDS: dict[str, Schema] = {
    "shows": {"type": "object", "additionalProperties": {"enum": list(LEVELS)},
              "description": "Show slug to level. `live`: feeds and pages only (a show left out is live); `push`: also "
                             "Web Push; `digest`: also the email digest; `muted`: followed, but left out of the unread "
                             "count and of Notifications (All Notifs still shows it). Also a personal topic of the "
                             "updates addressed to the user (`orders`), at any of these levels."},
    "time_zone": {"type": "string", "description": "An IANA time zone name, such as Europe/Paris."},
    "quiet_hours": QUIET_HOURS,
    "digest_hour": {"type": "integer", "minimum": 0, "maximum": 23, "description": "When the digest goes, local."},
}  # fmt: skip


def _event(name: str, data: Schema, description: str, *, with_id: bool = False) -> Schema:
    """One Server-Sent Event as a client reads it: its `event:` name, its `data:` line (JSON text) and its id. Only
    an update sends an `id:`; any other event keeps the id of the last update before it, as EventSource does."""
    event: Schema = {
        "type": "object",
        "required": ["event", "data", "id"] if with_id else ["event", "data"],
        "properties": {
            "event": {"const": name},
            "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data},
            "id": {"type": "string", "pattern": "^[0-9]+$", "description": "An update's seq: what a reconnecting "
                   "client sends back as Last-Event-ID."},
        },
        "additionalProperties": False,
        "description": description,
    }  # fmt: skip
    return event


SCHEMAS: dict[str, Schema] = {
    "Error": _object(
        {
            "error": {"type": "string", "description": "A stable code: `invalid`, `unauthorized`, `taken`, ..."},
            "detail": {"type": "string", "description": "A sentence for a person."},
            "fields": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "What is wrong with each named field or header, if any.",
            },
        },
        "Every refusal, whatever the status.",
    ),
    "Update": _object(
        {
            "seq": SEQ,
            "show": SLUG,
            "title": {"type": "string", "description": "The show's title, from the catalogue."},
            "text": TEXT,
            "author": {
                "type": "string",
                "pattern": f"^(?:{USERNAME.pattern}|{DELETED_AUTHOR})$",
                "description": f"The publisher's username ({USERNAME_RULE}), whoever wrote the update; "
                f"`{DELETED_AUTHOR}` once they deleted their account.",
            },
            "created_at": TIMESTAMP,
        },
        "A show update as stored, published and sent on the feeds.",
        {
            "edited_at": {**TIMESTAMP, "description": "When its text was last changed; absent if never."},
            "personal": {
                "const": True,
                "description": "Meant for the signed-in user alone (a watch rule's personal "
                "notification); absent on updates meant for everybody. `show` is then its rule's topic.",
            },
        },
    ),
    "Preferences": _object(PREFERENCE_FIELDS, "A user's preferences, every one, defaults filled in."),
    "Follows": _object({"follows": {"type": "array", "items": SLUG, "uniqueItems": True}}),
    "Read": _object(
        {
            "last_read_seq": {"type": "integer", "minimum": 0, "description": "The user's read mark."},
            "unread": {
                **CAPPED,
                "description": "Unread as of the events before this one (updates of followed shows and those "
                "addressed to the user, but the muted shows' and topics', by others, after the read mark); count on "
                f"from there. {CAPPED_NOTE}",
            },
        }
    ),
    "Expired": _object({}),
    "Resync": _object(
        {
            "after": {"type": "integer", "minimum": 0, "description": "The resume point the client asked for."},
            "resume": {"type": "integer", "minimum": 0, "description": "Where the replay starts instead."},
            "missed": {
                **CAPPED,
                "type": ["integer", "null"],
                "description": f"How many updates were skipped; null when the history no longer knows. {CAPPED_NOTE}",
            },
        }
    ),
    "Edit": _object({"seq": SEQ, "text": TEXT, "edited_at": TIMESTAMP}),
    "Retract": _object({"seq": SEQ}),
    "UpdateEvent": _event("update", ref("Update"), "A new update of a show the feed carries.", with_id=True),
    "FollowsEvent": _event(
        "follows",
        ref("Follows"),
        "The user's follows changed: these, the followed shows of the catalogue, are what the feed now carries.",
    ),
    "PreferencesEvent": _event(
        "preferences",
        ref("Preferences"),
        "The user's preferences changed, as GET /api/me/preferences answers them (a level only for a show of the "
        "catalogue or a personal topic): a feed of followed shows leaves the muted shows and personal topics out from "
        "now on.",
    ),
    "ReadEvent": _event("read", ref("Read"), "The user read, on some page or device: every feed of the user hears."),
    "ResyncEvent": _event(
        "resync",
        ref("Resync"),
        "First on a resumed feed whose resume point is further back than the replay limit "
        "or older than the kept history: the older updates are in GET /api/updates.",
    ),
    "EditEvent": _event("edit", ref("Edit"), "A stored update's text changed."),
    "RetractEvent": _event("retract", ref("Retract"), "A stored update was deleted or retracted."),
    "ExpiredEvent": _event("expired", ref("Expired"), "The session ended by age: the stream ends, log in again."),
}
# What a feed may send, besides `retry:` on connect and `: ping` comment lines.
EVENTS = (
    "UpdateEvent",
    "FollowsEvent",
    "PreferencesEvent",
    "ReadEvent",
    "ResyncEvent",
    "EditEvent",
    "RetractEvent",
    "ExpiredEvent",
)
SCHEMAS["FeedEvent"] = {"oneOf": [ref(name) for name in EVENTS]}
