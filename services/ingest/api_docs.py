"""The ingest service's operations in the API document, each named in its route in app.py. Limits come from the
code that enforces them."""

from __future__ import annotations

from services.ingest.updates import KEY_HEADER, MAX_KEY, PAGE_DEFAULT, PAGE_MAX
from shared.db import MAX_INT
from shared.openapi import TOKEN_OR_SESSION, answer, operation, refusals, request_body
from shared.schemas import SLUG, TEXT, Schema, ref

NEW_UPDATE: Schema = {"title": "NewUpdate", "type": "object", "required": ["show", "text"],
                      "properties": {"show": SLUG, "text": TEXT}}  # fmt: skip
SEQ_PARAMETER = {"name": "seq", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0},
                 "description": "The update's seq."}  # fmt: skip
TOO_FAST = "The author publishes or edits faster than the limit allows; a stored Idempotency-Key's retry never is."
NOT_YOURS = {"_403": "The update is another author's: only its author can change it (or, with the session cookie, "
                      "the change came from another site: `cross_site`).",
             "_404": "There is no such update (or it was retracted)."}  # fmt: skip
PAGE: Schema = {
    "title": "UpdatePage", "type": "object", "required": ["items", "next_after"], "additionalProperties": False,
    "properties": {
        "items": {"type": "array", "items": ref("Update")},
        "next_after": {"type": "integer", "minimum": 0, "maximum": MAX_INT,
                       "description": "`after` for the next page; the same `after` again when this one was empty."},
    },
}  # fmt: skip


def _query(name: str, schema: Schema, description: str) -> dict[str, object]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


post_update = operation(
    "Publish an update", TOKEN_OR_SESSION,
    {201: answer("Stored, with its seq: every open feed that carries the show gets it.", ref("Update"), links={
        "history": {"operationId": "get_updates", "parameters": {"query.show": "$response.body#/show"}},
        "edit": {"operationId": "patch_update", "parameters": {"seq": "$response.body#/seq"}},
        "retract": {"operationId": "delete_update", "parameters": {"seq": "$response.body#/seq"}}}),
     **refusals(400, 401, 409, 413, 415, 422, 429, _429=TOO_FAST,
                _409="The update this Idempotency-Key published was retracted (`retracted`): publish with a new key.",
                _401="No valid session cookie or API token; a token that is given must be valid, cookie or not.",
                _422="A field is wrong (an unknown show, blank or too long text), or the Idempotency-Key is too "
                     "long or was used for a different update.")},
    request=request_body(NEW_UPDATE),
    parameters=[{"name": KEY_HEADER, "in": "header", "required": False,
                 "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY},
                 "description": "A retry with the same key (per author, kept at least 24 h) answers the first "
                                "update instead of storing a second."}],
)  # fmt: skip
get_updates = operation(
    "History, in seq order, a page at a time", TOKEN_OR_SESSION,
    {200: answer("A page of updates.", PAGE), **refusals(401, 422)},
    parameters=[
        _query("show", SLUG, "Only this show's updates, or this personal topic's; every show's when absent."),
        _query("after", {"type": "integer", "minimum": 0, "maximum": MAX_INT}, "Updates after this seq; 0 if absent."),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": PAGE_MAX}, f"At most; {PAGE_DEFAULT} if absent."),
    ],
)  # fmt: skip
patch_update = operation(
    "Change the text of one's own update", TOKEN_OR_SESSION,
    {200: answer("The update as it now is, with `edited_at`; every open feed that carries it gets an `edit` event. "
                 "The same text again changes nothing.", ref("Update")),
     **refusals(400, 401, 403, 404, 413, 415, 422, 429, _429=TOO_FAST, **NOT_YOURS)},
    request=request_body({"title": "NewText", "type": "object", "required": ["text"], "properties": {"text": TEXT}}),
    parameters=[SEQ_PARAMETER],
)  # fmt: skip
delete_update = operation(
    "Retract one's own update", TOKEN_OR_SESSION,
    {204: answer("Gone from history and unread counts; every open feed that carried it gets a `retract` event."),
     **refusals(401, 403, 404, **NOT_YOURS)},
    parameters=[SEQ_PARAMETER],
)  # fmt: skip
