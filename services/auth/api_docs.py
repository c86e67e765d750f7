"""The auth service's operations in the API document, each named in its route in endpoints/. Limits come from the code
that enforces them."""

from __future__ import annotations

from services.auth.accounts import PASSWORD_MAX, PASSWORD_MIN, RULES
from services.auth.devices import AUTH, DEVICES_PER_USER, ENDPOINT, ENDPOINT_MAX, P256DH
from services.auth.devices import NAME_MAX as DEVICE_NAME_MAX
from services.auth.tokens import AT_RULE, DAYS_MAX, DAYS_RULE, DOTS, NAME_MAX, SEGMENT
from shared.db import MAX_INT
from shared.openapi import (
    ANYONE,
    MAYBE_SESSION,
    SESSION,
    SET_COOKIE,
    answer,
    operation,
    refusals,
    request_body,
)
from shared.schemas import CAPPED, CAPPED_NOTE, PREFERENCE_FIELDS, SEQ, SLUG, TIMESTAMP, Schema, ref
from shared.updates import DELETED_AUTHOR, NO_CONTROL, NOT_BLANK
from shared.usernames import USERNAME

STRING: Schema = {"type": "string"}
ACCOUNT: Schema = {"title": "Account", "type": "object", "required": ["username"], "additionalProperties": False,
                   "properties": {"username": STRING}}  # fmt: skip
NEW_ACCOUNT: Schema = {
    "title": "NewAccount", "type": "object", "required": ["username", "password"],
    "properties": {
        "username": {"type": "string", "pattern": f"^{USERNAME.pattern}$",
                     "description": f"{RULES['username']}; unique whatever its case."},
        "password": {"type": "string", "minLength": PASSWORD_MIN, "maxLength": PASSWORD_MAX},
    },
}  # fmt: skip
FILLED: Schema = {"type": "string", "minLength": 1}
CREDENTIALS: Schema = {"title": "Credentials", "type": "object", "required": ["username", "password"],
                       "properties": {"username": FILLED, "password": FILLED}}  # fmt: skip
TOKEN_NAME: Schema = {
    "type": "string", "minLength": 1, "maxLength": NAME_MAX, "pattern": f"^{SEGMENT.pattern}$",
    "allOf": [{"pattern": NOT_BLANK.pattern}], "not": {"enum": list(DOTS)},
    "description": "Not all blank, no control characters or '/', not '.' or '..': it names the token in a URL.",
}  # fmt: skip
EXPIRES_AT: Schema = {
    "type": ["string", "null"], "format": "date-time",
    "description": "When the token stops working (UTC, to the millisecond, with a Z); null: never.",
}  # fmt: skip
BUSY_HASHING = "Every password-hashing turn is taken (a flood of logins): nothing was checked or stored."
WATCHING: Schema = {
    "type": "integer", "minimum": 0,
    "description": "People with an open feed that carries the show (of followed shows, or of every show), on any "
                   "stream process, each counted once; as of the processes' last reports, a few seconds old.",
}  # fmt: skip
SLUG_PARAMETER = {"name": "slug", "in": "path", "required": True, "schema": SLUG}
TOKEN_PARAMETER = {"name": "name", "in": "path", "required": True, "schema": TOKEN_NAME}

register = operation(
    "Create an account and log in", ANYONE,
    {201: answer("Registered and logged in.", ACCOUNT, headers=SET_COOKIE, links={
        "login": {"operationId": "api_login", "description": "Log in again with the same credentials.",
                  "requestBody": {"username": "$request.body#/username", "password": "$request.body#/password"}},
        "createToken": {"operationId": "api_create_token", "description": "With the new session, an API token."},
     }),
     **refusals(400, 409, 413, 415, 422, 429, 503, _409="That username is taken, in some case (`taken`).",
                _429="Too many registrations from this address.", _503=BUSY_HASHING)},
    request=request_body(NEW_ACCOUNT),
    description="Anything published before the account existed counts as read.",
)  # fmt: skip
login = operation(
    "Log in", ANYONE,
    {200: answer("Logged in with a new session.", ACCOUNT, headers=SET_COOKIE),
     **refusals(400, 401, 413, 415, 422, 429, 503, _401="Wrong username or password: one answer for both.",
                _503=BUSY_HASHING,
                _429="Too many failed logins for this account or address; a good password waits too.")},
    request=request_body(CREDENTIALS),
    description="Failed logins are limited per account and per client address within a short window.",
)  # fmt: skip
logout = operation(
    "Log out", MAYBE_SESSION,
    {204: answer("The session is revoked (its open feeds end) and the cookie cleared; logged out already is fine."),
     **refusals(400, 413, 415)},
    request=request_body({"type": "object"}, "Empty or any JSON object, not read: like every POST of the API, it "
                         "takes `application/json` only."),
)  # fmt: skip
me = operation(
    "Who is logged in, what they follow, and how much is unread", SESSION,
    {200: answer("The account.", {
        "title": "Me", "type": "object", "required": ["username", "follows", "unread"], "additionalProperties": False,
        "properties": {"username": STRING,
                       "follows": {"type": "array", "items": SLUG, "description": "The followed shows of the "
                                   "catalogue: a follow of a show gone from it is kept, not listed nor counted, and "
                                   "comes back with the show."},
                       "unread": {**CAPPED, "description": "Updates of followed shows and those addressed to the "
                                                           "user, but the muted shows' and topics', by others after "
                                                           f"the read mark. {CAPPED_NOTE}"}},
     }), **refusals(401)},
)  # fmt: skip
shows = operation(
    "The show catalogue", MAYBE_SESSION,
    {200: answer("Every show, in title order; `followed` is false without a session.", {
        "type": "array", "items": {
            "title": "Show", "type": "object", "required": ["slug", "title", "followed", "watching"],
            "additionalProperties": False,
            "properties": {"slug": SLUG, "title": STRING, "followed": {"type": "boolean"}, "watching": WATCHING},
        }}, links={"follow": {"operationId": "api_follow", "parameters": {"slug": "$response.body#/0/slug"}}})},
)  # fmt: skip
NO_SHOW = "There is no such show: the answer names every slug (in `fields.slug` too)."
show_presence = operation(
    "How many are watching a show", ANYONE,
    {200: answer("A count, never who.", {
        "title": "Presence", "type": "object", "required": ["watching"], "additionalProperties": False,
        "properties": {"watching": WATCHING}}),
     **refusals(404, _404=NO_SHOW)},
    parameters=[SLUG_PARAMETER],
)  # fmt: skip
follow = operation(
    "Follow a show", SESSION,
    {204: answer("Followed (again is fine); open feeds carry it at once.", links={
        "unfollow": {"operationId": "api_unfollow", "parameters": {"slug": "$request.path.slug"}}}),
     **refusals(401, 404, _404=NO_SHOW)},
    parameters=[SLUG_PARAMETER],
)  # fmt: skip
unfollow = operation(
    "Stop following a show", SESSION,
    {204: answer("Not followed (any more), and its level in the preferences gone with it: followed again, it is "
                 "`live`. Unless the slug is also a topic of the user's personal notifications, whose level it is "
                 "too: that level stays."), **refusals(401, 404, _404=NO_SHOW)},
    parameters=[SLUG_PARAMETER],
)  # fmt: skip
read = operation(
    "Mark everything up to an update read", SESSION,
    {204: answer("Marked; a mark never moves back, and one past the newest update stops there."),
     **refusals(400, 401, 403, 413, 415, 422,
                _403="The session is another user's than the one named in `user` (`other_user`): nothing is marked.")},
    request=request_body({"title": "ReadMark", "type": "object", "required": ["seq"], "properties": {
        "seq": {"type": "integer", "minimum": 0, "maximum": MAX_INT},
        "user": {"type": "string", "description": "Who the page that marks was made for: a browser signed in as "
                 "someone else since is refused, so that a stale tab cannot mark another user's updates read."}}}),
)  # fmt: skip
create_token = operation(
    "Create an API token", SESSION,
    {201: answer("The token, shown this once: only its hash is kept.", {
        "title": "NewToken", "type": "object", "required": ["name", "token", "expires_at"],
        "additionalProperties": False,
        "properties": {"name": TOKEN_NAME, "token": {"type": "string", "pattern": "^gsp_"}, "expires_at": EXPIRES_AT},
     }, links={
        "revoke": {"operationId": "api_revoke_token", "parameters": {"name": "$response.body#/name"}},
        "publish": {"operationId": "post_update", "description": "Publish with it: `Authorization: Bearer <token>`."},
     }), **refusals(400, 401, 409, 413, 415, 422, _409="You have a token with that name already (`taken`), or as "
                                                         "many tokens as a user may hold (`too_many_tokens`).")},
    request=request_body({"title": "TokenRequest", "type": "object", "required": ["name"],
                          "not": {"required": ["expires_in_days", "expires_at"]}, "properties": {
        "name": TOKEN_NAME,
        "expires_in_days": {"type": "integer", "minimum": 1, "maximum": DAYS_MAX, "description": DAYS_RULE},
        "expires_at": {"type": "string", "format": "date-time", "description": AT_RULE},
    }}),
    description="Only a session can manage tokens: a token cannot mint more. Without `expires_in_days` or "
                "`expires_at` (one of them, not both), the token works until it is revoked; an expired one is "
                "refused at once.",
)  # fmt: skip
tokens = operation(
    "The caller's API tokens", SESSION,
    {200: answer("Names, creation, expiry and last use, oldest first; never a token or its hash.", {
        "type": "array", "items": {
        "title": "TokenEntry", "type": "object", "required": ["name", "created_at", "expires_at", "last_used_at"],
        "additionalProperties": False,
        "properties": {"name": TOKEN_NAME, "created_at": TIMESTAMP, "expires_at": EXPIRES_AT, "last_used_at": {
            "type": ["string", "null"], "format": "date-time",
            "description": "When it was last used, noted at most once a minute; null: never."}},
     }}), **refusals(401)},
)  # fmt: skip
revoke_token = operation(
    "Revoke an API token", SESSION,
    {204: answer("Revoked: refused within a second (a found token is trusted for half a second)."),
     **refusals(401, 404, _404="You have no token of that name.")},
    parameters=[TOKEN_PARAMETER],
)  # fmt: skip

DEVICE_NAME: Schema = {"type": "string", "minLength": 1, "maxLength": DEVICE_NAME_MAX, "pattern": NOT_BLANK.pattern,
                       "allOf": [{"pattern": NO_CONTROL.pattern}]}  # fmt: skip
DEVICE_ID = {"name": "id", "in": "path", "required": True, "schema": STRING}
SUBSCRIPTION: Schema = {
    "title": "PushSubscription", "type": "object", "required": ["endpoint", "keys"],
    "description": "What the browser's `PushSubscription.toJSON()` gives, and an optional name.",
    "properties": {
        "endpoint": {"type": "string", "maxLength": ENDPOINT_MAX, "pattern": ENDPOINT.pattern,
                     "description": "The push service's URL for this browser: https:// (http:// on loopback only "
                                    "when the server allows it, for tests and local push services)."},
        "expirationTime": {"type": ["number", "null"], "minimum": 0},
        "keys": {"type": "object", "required": ["p256dh", "auth"], "properties": {
            "p256dh": {"type": "string", "pattern": P256DH.pattern,
                       "description": "The browser's public key, base64url: an uncompressed P-256 point (65 bytes, "
                                      "on the curve)."},
            "auth": {"type": "string", "pattern": AUTH.pattern,
                     "description": "The 16-byte authentication secret, base64url."}}},
        "name": {**DEVICE_NAME, "description": "What the device list shows; by default the browser and system from "
                                               "the User-Agent (\"Chrome on Linux\")."},
    },
}  # fmt: skip
DEVICE_ID_ANSWER: Schema = {"title": "DeviceId", "type": "object", "required": ["id"], "additionalProperties": False,
                            "properties": {"id": STRING}}  # fmt: skip

push_key = operation(
    "The server's VAPID public key", ANYONE,
    {200: answer("The `applicationServerKey` for `PushManager.subscribe`: the uncompressed P-256 point, base64url.", {
        "title": "PushKey", "type": "object", "required": ["key"], "additionalProperties": False,
        "properties": {"key": {"type": "string", "pattern": P256DH.pattern}}})},
)  # fmt: skip
add_device = operation(
    "Turn on push for this browser", SESSION,
    {201: answer("Added: pushes for the caller's `push` shows go to this browser.", DEVICE_ID_ANSWER, links={
        "remove": {"operationId": "api_remove_device", "parameters": {"id": "$response.body#/id"}}}),
     200: answer("This endpoint was added before: the same device (its keys refreshed).", DEVICE_ID_ANSWER),
     **refusals(400, 401, 409, 413, 415, 422, _409=f"The caller has {DEVICES_PER_USER} devices, the most one may "
                                                    "(`too_many_devices`).")},
    request=request_body(SUBSCRIPTION),
    description="An endpoint another user registered before becomes the caller's: a browser's notifications follow "
                "whoever turned push on in it last.",
)  # fmt: skip
devices = operation(
    "The caller's devices with push on", SESSION,
    {200: answer("Oldest first; never an endpoint or a key.", {"type": "array", "items": {
        "title": "Device", "type": "object", "required": ["id", "name", "added_at"], "additionalProperties": False,
        "properties": {"id": STRING, "name": DEVICE_NAME, "added_at": TIMESTAMP}}}), **refusals(401)},
)  # fmt: skip
remove_device = operation(
    "Turn off push for a device", SESSION,
    {204: answer("Removed: nothing more is pushed to it."),
     **refusals(401, 404, _404="The caller has no device with that id.")},
    parameters=[DEVICE_ID],
)  # fmt: skip
preferences = operation(
    "The caller's preferences", SESSION,
    {200: answer("Every preference, defaults filled in.", ref("Preferences")), **refusals(401)},
)  # fmt: skip
change_preferences = operation(
    "Change some preferences", SESSION,
    {200: answer("The preferences after the change; open feeds of the user hear of it at once.", ref("Preferences")),
     **refusals(400, 401, 413, 415, 422, _422="A field is not valid (an unknown show or level, a personal topic "
                                              "not the caller's, a time zone that does not exist, an hour out of "
                                              "range): each is named; nothing was changed.")},
    request=request_body({"title": "PreferencesChange", "type": "object", "properties": PREFERENCE_FIELDS,
                          "additionalProperties": False},
                         "Every key optional: a key left out, or a show not named, keeps its value."),
)  # fmt: skip
OWN: Schema = {"type": "array", "items": {"type": "object"}}
export = operation(
    "Everything Gossip holds about the caller", SESSION,
    {200: answer("As a file to keep (`Content-Disposition: attachment`); never a password's, session's or token's "
                 "hash.", {
        "title": "Export", "type": "object", "additionalProperties": False,
        "required": ["exported_at", "user", "sessions", "tokens", "devices", "sends", "updates"],
        "properties": {
            "exported_at": TIMESTAMP,
            "user": {"type": "object", "required": ["username"], "description": "The account: follows, preferences, "
                     "read mark (`last_read_seq`), email address, dates."},
            "sessions": {"type": "array", "items": {"type": "object", "required": ["created_at", "expires_at"]}},
            "tokens": {"type": "array", "items": {"type": "object", "required": ["name", "created_at"]}},
            "devices": OWN, "sends": OWN,
            "updates": {"type": "array", "items": ref("Update"), "description": "What the caller published."},
        },
     }), **refusals(401)},
)  # fmt: skip
delete_account = operation(
    "Delete the caller's account", SESSION,
    {204: answer("Deleted: sessions (their open feeds end), API tokens, devices, email address, preferences and read "
                 f"state are gone, and the cookie is cleared. Published updates stay, by `{DELETED_AUTHOR}`; the "
                 "username is free again."),
     **refusals(400, 401, 413, 415, 422, 429, 503, _401="Wrong password (or no session).", _503=BUSY_HASHING,
                _422="The password is missing.",
                _429="Too many wrong passwords for this account or address: limited as logins are.")},
    request=request_body({"title": "PasswordConfirmation", "type": "object", "required": ["password"],
                          "properties": {"password": FILLED}}),
    description="The password is checked as a login's is, under the same limits, so this cannot be used to guess it.",
)  # fmt: skip
EMAIL_STATUS: Schema = {
    "title": "EmailStatus", "type": "object", "required": ["email", "verified", "digest"],
    "additionalProperties": False,
    "properties": {
        "email": {"type": ["string", "null"], "description": "The address, in its normal form; null without one."},
        "verified": {"type": "boolean", "description": "Proved through the link mailed to it: only then is the "
                                                       "digest sent there."},
        "digest": {"type": "boolean", "description": "False once turned off, by a digest's unsubscribe link or here."},
    },
}  # fmt: skip
CHECK_MAILS = "Too many mails to check an address, for this account or to this address."
NOT_SENT = "The address is kept, but the mail to check it could not be sent now (`not_sent`): ask again later."

email = operation(
    "The caller's email address and whether the digest goes to it", SESSION,
    {200: answer("The address (null without one), verified or not, and the digest on or off.", EMAIL_STATUS),
     **refusals(401)},
)  # fmt: skip
set_email = operation(
    "Give an email address for the daily digest", SESSION,
    {200: answer("Kept, and a link to confirm it mailed to it (valid 24 hours). The same address again mails a fresh "
                 "link while it is unverified, and changes nothing once it is verified.", EMAIL_STATUS),
     **refusals(400, 401, 413, 415, 422, 429, 503, _429=CHECK_MAILS, _503=NOT_SENT,
                _422="Not an email address (`fields.email` says why).")},
    request=request_body({"title": "EmailAddress", "type": "object", "required": ["email"],
                          "properties": {"email": {"type": "string", "format": "email", "maxLength": 254}}}),
    description="A new address replaces the old one and starts unverified: nothing but the check is mailed to it "
                "until its link is followed. Beyond the `email` format, its domain must be one that can take mail: "
                "not an IP literal, nor a name reserved for tests or local networks (`.test`, `.local`, ...).",
)  # fmt: skip
remove_email = operation(
    "Remove the email address", SESSION,
    {204: answer("Removed (none already is fine): no more mail, and links mailed to it stop working."),
     **refusals(401)},
)  # fmt: skip
digest_on = operation(
    "Turn the daily digest back on", SESSION,
    {204: answer("On (again is fine): shows at the `digest` level are mailed at the digest hour."), **refusals(401)},
)  # fmt: skip
digest_off = operation(
    "Turn the daily digest off", SESSION,
    {204: answer("Off, as a digest's unsubscribe link does."), **refusals(401)},
)  # fmt: skip

ADMIN_ONLY = (
    "Only for the users named in ADMIN_USERS, with their session: anyone else, signed in or not, gets 404 "
    "as for no such path, never 401 or 403, so the console is not advertised."
)
NOT_ADMIN = "Not an admin (or not signed in); or no such document, update or user."
COUNTS: Schema = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
WHEN: Schema = {**TIMESTAMP, "type": ["string", "null"]}
PROCESS: Schema = {
    "title": "StreamProcess", "type": "object", "additionalProperties": False,
    "required": ["process", "users", "feeds", "show_feeds", "lag", "reported_at"],
    "properties": {
        "process": {"type": "string", "description": "host:pid:random, as the process names its presence report."},
        "users": {"type": "integer", "minimum": 0}, "feeds": {"type": "integer", "minimum": 0},
        "show_feeds": {**COUNTS, "description": "Open feeds per show they carry; `*` is feeds of every show."},
        "lag": {"type": ["number", "null"], "description": "Seconds from commit to handling of its last change on "
                                                           "`updates`; null before its first."},
        "reported_at": WHEN,
    },
}  # fmt: skip
OVERVIEW: Schema = {
    "title": "Console", "type": "object", "additionalProperties": False,
    "required": ["at", "processes", "feeds_per_show", "refusals", "empty_buckets", "publishes", "rejected", "audit"],
    "properties": {
        "at": WHEN, "processes": {"type": "array", "items": PROCESS}, "feeds_per_show": COUNTS,
        "refusals": {**COUNTS, "description": "Per limit, the requests refused by every live process of every "
                                              "service, each counted since it started."},
        "empty_buckets": {**COUNTS, "description": "Per limit (`login`, `registration`, `publish`), the token "
                                                   "buckets with no token left now: their next request is refused."},
        "publishes": {"type": "object", "additionalProperties": False, "required": ["per_minute", "capped"],
                      "properties": {
                          "per_minute": {"type": "array", "items": {
                              "type": "object", "additionalProperties": False, "required": ["minute", "count"],
                              "properties": {"minute": WHEN, "count": {"type": "integer", "minimum": 0}}}},
                          "capped": {"type": "boolean", "description": "The read's bound was reached: the oldest "
                                                                        "minutes count fewer than were published."}}},
        "rejected": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["_id", "reason", "show", "text"],
            "properties": {"_id": STRING, "reason": STRING, "show": STRING, "text": STRING}}},
        "audit": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["at", "who", "what", "target"],
            "properties": {"at": WHEN, "who": STRING, "what": {"enum": ["release", "retract", "end_sessions"]},
                           "target": STRING}}},
    },
}  # fmt: skip

admin_console = operation(
    "The operator console's figures", MAYBE_SESSION,
    {200: answer("Open feeds per stream process and per show, publishes per minute, refusals, the newest rejected "
                 "documents and the audit, newest first.", OVERVIEW),
     **refusals(404, _404=NOT_ADMIN)},
    description=ADMIN_ONLY,
)  # fmt: skip
admin_release = operation(
    "Release a rejected document", MAYBE_SESSION,
    {204: answer("Its `rejected` mark (and any seq) is removed: a stream process adopts it again, and rejects it "
                 "again if it is still not an update. Audited."),
     **refusals(400, 403, 404, 413, 415, _404=NOT_ADMIN)},
    parameters=[{"name": "document_id", "in": "path", "required": True, "schema": STRING,
                 "description": "The document's `_id` as the console shows it."}],
    request=request_body({"type": "object"}, "Empty or any JSON object, not read: like every POST of the API, it "
                         "takes `application/json` only."),
    description=ADMIN_ONLY,
)  # fmt: skip
admin_retract = operation(
    "Retract an update", MAYBE_SESSION,
    {204: answer("Deleted: open feeds get `retract`. Audited."), **refusals(403, 404, 422, _404=NOT_ADMIN)},
    parameters=[{"name": "seq", "in": "path", "required": True, "schema": SEQ}],
    description=ADMIN_ONLY,
)  # fmt: skip
admin_end_sessions = operation(
    "End every session of a user", MAYBE_SESSION,
    {200: answer("Their sessions are deleted and their open feeds end. Audited.", {
        "type": "object", "additionalProperties": False, "required": ["ended"],
        "properties": {"ended": {"type": "integer", "minimum": 0}}}),
     **refusals(403, 404, _404=NOT_ADMIN)},
    parameters=[{"name": "username", "in": "path", "required": True, "schema": STRING}],
    description=ADMIN_ONLY,
)  # fmt: skip
