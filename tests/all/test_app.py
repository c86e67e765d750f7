"""The whole API against its OpenAPI document: Schemathesis generates requests for every operation of the all-in-one
app, sends them over real HTTP to a live server, and checks every answer against the document: its status, content
type, headers and body, the events of the feeds, and never a 5xx. Then it chains operations by the document's links
(register, create a token, publish with it, ...) as one client would."""

from __future__ import annotations

import contextlib
import itertools
import re
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hypothesis
import pymongo
import pytest
import schemathesis
from pymongo.collection import Collection
from schemathesis import Case, HookContext, Response
from schemathesis.auths import AuthContext

from services.all import app as gossip
from services.auth.addresses import MAX_ADDRESS
from services.auth.devices import AUTH, P256DH
from services.ingest.updates import KEY_HEADER, MAX_KEY
from shared.auth import session_document
from shared.db import MAX_INT, SHOWS, utcnow
from shared.openapi import document
from shared.preferences import LEVELS, ZONES
from shared.settings import Settings
from tests.support.accounts import PASSWORD
from tests.support.http import sync_client
from tests.support.push_receiver import Subscription
from tests.support.servers import gossip_server

EXAMPLES = 15  # per operation and generation mode
# A failing scenario is reported as found: shrinking would replay it against a server that remembers the first go.
STATEFUL = hypothesis.settings(max_examples=8, stateful_step_count=6, deadline=None, database=None,
                               phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])  # fmt: skip
SLUGS = sorted(SHOWS)
CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"max-examples": EXAMPLES},
        # A body made too long by breaking a length is refused by its size before its shape: 413 is a refusal too.
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [
                    "400",
                    "401",
                    "403",
                    "404",
                    "405",
                    "406",
                    "409",
                    "413",
                    "415",
                    "422",
                    "428",
                    "429",
                    "5xx",
                ],
            }
        },
        # A feed never ends: read what it sends at once (what `after` or Last-Event-ID replays), then hang up.
        "operations": [
            {"include-path-regex": "^/events", "request-timeout": 0.5},
            # A body these do not read may be blank, which JSON Schema cannot say of a body that is an object.
            {
                "include-path-regex": "^/api/(auth/logout|admin/)",
                "checks": {"negative_data_rejection": {"enabled": False}},
            },
            # Schemathesis probes a method the document does not declare without the session, and anyone but an
            # admin is told nothing is at an admin path, whatever the method: 404, not a 405 naming the methods
            # (tests/auth/test_console.py checks both sides).
            {"include-path-regex": "^/api/admin/", "checks": {"unsupported_method": {"enabled": False}}},
        ],
    }
)
DOCUMENT = document("gossip", gossip.app.routes)  # what the all-in-one app serves (tests/shared/test_openapi.py)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)  # each operation a test of its own
chained = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)  # the same, with the links' own callers


@dataclass(frozen=True)
class Target:
    url: str
    settings: Settings
    mongo: pymongo.MongoClient[dict[str, Any]]

    @property
    def sessions(self) -> Collection[dict[str, Any]]:
        return self.mongo[self.settings.mongo_db].sessions


@contextlib.contextmanager
def live_target(mongo_url: str) -> Iterator[Target]:
    """The all-in-one app on a live uvicorn with a database of its own: throttles and follows start empty. The mail it
    sends (checks of the addresses it is given) is written to a folder of its own, unthrottled: every example of the
    operations that mail may mail."""
    with tempfile.TemporaryDirectory() as mail, pymongo.MongoClient(mongo_url) as mongo:
        settings = Settings(secret_key=uuid.uuid4().hex, mongo_url=mongo_url, ping_interval=1.0,
                            mongo_db=f"test_api_{uuid.uuid4().hex[:8]}", mail_dir=Path(mail),
                            verification_mails=1000, admin_users=("schemathesis",))  # fmt: skip
        live = gossip_server(settings)
        try:
            yield Target(live.url, settings, mongo)
        finally:
            live.stop()  # before the drop: a database dropped under open change streams broke the embedded server
        mongo.drop_database(settings.mongo_db)


def _accepts_token(case: Case) -> bool:
    return {"token": []} in case.operation.definition.raw.get("security", [])


@schema.hook
@chained.hook
def map_body(context: HookContext, body: Any) -> Any:
    """The catalogue is data, not schema: a show named in a generated body is one of the catalogue's, and so are the
    shows of preferences (each a different one, so that no level that is none is overwritten). So is the time zone
    database: a time zone is one of its names. And quiet hours that start when they end are refused (null turns them
    off), which no schema can say: they end a minute later. Nor can a pattern say that a push subscription's key is a
    point on the curve: keys of the documented shape are made real ones. So is a domain that takes mail: an address
    the `email` format allows, at a name reserved for tests (`a@b.test`) or an IP literal, is refused as no one's; a
    generated one is given a real domain. A token's `expires_at` must lie ahead, which depends on the clock: a generated
    moment is moved a year ahead of now, and anything else left as it is, to be refused (a negative example stays
    one). An address made too long to break the schema is left so, to be refused."""
    if not isinstance(body, dict):
        return body
    body = dict(body)
    if isinstance(body.get("show"), str):
        body["show"] = SLUGS[len(body["show"]) % len(SLUGS)]
    if isinstance(email := body.get("email"), str) and "@" in email and len(email) <= MAX_ADDRESS:
        body["email"] = f"reader{len(email)}@example.com"
    if isinstance(shows := body.get("shows"), dict):  # one show each, those with a level that is none first
        levels = sorted(shows.values(), key=lambda level: level in LEVELS)[: len(SLUGS)]
        body["shows"] = dict(zip(SLUGS, levels, strict=False))
    if isinstance(zone := body.get("time_zone"), str):
        body["time_zone"] = ZONES[len(zone) % len(ZONES)]
    if isinstance(quiet := body.get("quiet_hours"), dict) and quiet.get("start") == quiet.get("end"):
        body["quiet_hours"] = {**quiet, "end": "00:01" if quiet.get("start") == "00:00" else "00:00"}
    if _is_moment(body.get("expires_at")):
        body["expires_at"] = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    keys = body.get("keys")
    if isinstance(keys, dict) and _matches(keys.get("p256dh"), P256DH) and _matches(keys.get("auth"), AUTH):
        body["keys"] = {**keys, **Subscription("https://push.example.net/").to_json()["keys"]}
    return body


def _is_moment(value: object) -> bool:
    """Whether the tokens endpoint reads `value` as a moment: ISO 8601 with its offset."""
    try:
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _matches(value: object, pattern: re.Pattern[str]) -> bool:
    return isinstance(value, str) and pattern.match(value) is not None


@schema.hook
@chained.hook
def map_query(context: HookContext, query: dict[str, Any] | None) -> dict[str, Any] | None:
    """The same for the show a history query names; and a valid `after` is one within the history, so that the
    feeds replay updates for their events to be checked, and history pages are not all empty."""
    query = dict(query or {})
    if isinstance(query.get("show"), str):
        query["show"] = SLUGS[len(query["show"]) % len(SLUGS)]
    if isinstance(after := query.get("after"), int) and 0 <= after <= MAX_INT:
        query["after"] = after % 4
    return query


@schema.hook
@chained.hook
def map_headers(context: HookContext, headers: dict[str, Any] | None) -> dict[str, Any] | None:
    """An Idempotency-Key promises the same update each time it is sent: a generated one that is valid is made unique,
    so that two examples never send one key with two different updates (a 422, rightly)."""
    key = (headers or {}).get(KEY_HEADER)
    if isinstance(key, str) and 1 <= len(key) <= MAX_KEY:
        return {**(headers or {}), KEY_HEADER: uuid.uuid4().hex}
    return headers


@schema.hook
@chained.hook
def map_path_parameters(context: HookContext, parameters: dict[str, Any] | None) -> dict[str, Any] | None:
    """Half the slugs in a path are the catalogue's, so that follows are made and undone, not only refused; and an
    update's seq is one of the first few, which the user has published, so that edits and retractions happen; and half
    the device ids are the user's own (see `target`), so that some are removed."""
    parameters = dict(parameters or {})
    if isinstance(slug := parameters.get("slug"), str) and len(slug) % 2:
        parameters["slug"] = SLUGS[len(slug) % len(SLUGS)]
    if isinstance(seq := parameters.get("seq"), int) and 0 <= seq <= MAX_INT:
        admin = context.operation is not None and context.operation.path.startswith("/api/admin/")
        parameters["seq"] = ADMIN_SEQS + seq % 8 if admin else seq % 8  # the admin retracts updates of its own
    if isinstance(device := parameters.get("id"), str) and len(device) % 2:
        parameters["id"] = DEVICES[len(device) % len(DEVICES)]
    if isinstance(document := parameters.get("document_id"), str) and len(document) % 2:
        parameters["document_id"] = REJECTED[len(document) % len(REJECTED)]
    if isinstance(username := parameters.get("username"), str) and len(username) % 2:
        parameters["username"] = "schemathesis"
    return parameters


ANSWERS: defaultdict[str, set[int]] = defaultdict(set)
DEVICES = [f"device-{number}" for number in range(4)]
ADMIN_SEQS = 9  # updates 9 to 16, published before any example, are the admin's to retract
REJECTED = [f"rejected-{number}" for number in range(4)]  # no author: released, each is rejected again, to release


@pytest.fixture(scope="module")
def target(mongo_url: str) -> Iterator[Target]:
    """One user makes every example: each with a fresh session (the one before may have logged out) and, where an API
    token is accepted, the user's token every other time, so that both ways in are checked."""
    with live_target(mongo_url) as target, sync_client(base_url=target.url, timeout=10) as http:
        assert http.post("/api/auth/register", json={"username": "schemathesis", "password": PASSWORD}).is_success
        token = http.post("/api/me/tokens", json={"name": "schemathesis"}).json()["token"]
        user = target.mongo[target.settings.mongo_db].users.find_one({"username": "schemathesis"})
        assert user is not None
        target.mongo[target.settings.mongo_db].devices.insert_many([
            {"_id": device, "user_id": user["_id"], "endpoint": f"https://push.example.net/{device}", "slot": slot,
             "keys": Subscription("").to_json()["keys"], "name": device, "added_at": utcnow()}
            for slot, device in enumerate(DEVICES)
        ])  # fmt: skip
        for number in range(ADMIN_SEQS + 7):  # updates to edit and retract, whichever operation comes first
            assert http.post("/api/updates", json={"show": "flash", "text": f"update {number}"},
                             headers={"authorization": f"Bearer {token}"}).is_success  # fmt: skip
        target.mongo[target.settings.mongo_db].updates.insert_many([
            {"_id": document, "show": "flash", "text": document, "rejected": "author: required, as text"}
            for document in REJECTED
        ])  # fmt: skip
        turns = itertools.count()

        class Caller:
            def get(self, case: Case, context: AuthContext) -> str:
                cookie, session = session_document(target.settings, user["_id"], user["username"])
                target.sessions.insert_one(session)
                return cookie

            def set(self, case: Case, cookie: str, context: AuthContext) -> None:
                case.cookies = {**(case.cookies or {}), "gossip_session": cookie}
                if _accepts_token(case) and next(turns) % 2:
                    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}

        schema.auth(refresh_interval=None)(Caller)
        yield target
        schema.auth.unregister()
    # An operation only ever refused would pass while checking little: each must have worked at least once.
    refused = {label for label, statuses in ANSWERS.items() if not any(200 <= status < 300 for status in statuses)}
    needs_password = {"POST /api/auth/login", "DELETE /api/me"}  # never guessed; the user must live on anyway
    assert refused <= needs_password, f"never answered with a 2xx: {sorted(refused)}"


@schema.parametrize()
def test_every_operation_answers_as_documented(case: Case, target: Target) -> None:
    response = case.call_and_validate(base_url=target.url)
    ANSWERS[case.operation.label].add(response.status_code)


def _session_cookie(response: Response) -> str | None:
    """The session cookie a register, login or logout answer sets: a value, "" once cleared, None if it sets none."""
    for header in response.headers.get("set-cookie", []):
        name, _, rest = header.partition("=")
        if name == "gossip_session":
            return rest.split(";", 1)[0].strip('"')
    return None


def test_chains_of_operations_answer_as_documented(mongo_url: str) -> None:
    """Each scenario is one client: the session cookie that register or login answered, and the token that creating
    one answered, go with its later requests, so that register → create a token → publish with it is followed."""
    with live_target(mongo_url) as target:

        class Client:
            """What the scenario under way has been given; no credentials at all before it registers or logs in."""

            cookie: str | None = None
            token: str | None = None

            def get(self, case: Case, context: AuthContext) -> bool | None:
                return True if Client.cookie or Client.token else None

            def set(self, case: Case, given: bool, context: AuthContext) -> None:
                if Client.cookie:
                    case.cookies = {**(case.cookies or {}), "gossip_session": Client.cookie}
                if Client.token and _accepts_token(case):
                    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {Client.token}"}

        chained.auth(refresh_interval=None)(Client)

        class Scenario(chained.as_state_machine()):  # type: ignore[misc]
            def setup(self) -> None:
                Client.cookie = Client.token = None

            def get_call_kwargs(self, case: Case) -> dict[str, Any]:
                return {"base_url": target.url}

            def after_call(self, response: Response, case: Case) -> None:
                super().after_call(response, case)
                if (cookie := _session_cookie(response)) is not None:
                    Client.cookie = cookie or None
                if case.operation.label == "POST /api/me/tokens" and response.status_code == 201:
                    Client.token = response.json()["token"]

        try:
            Scenario.run(settings=STATEFUL)
        finally:
            chained.auth.unregister()
