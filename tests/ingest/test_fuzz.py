"""Hypothesis throws malformed bodies, headers and unicode at POST /api/updates on a live server: never a 5xx.
And the abuse scenario's fuzz (bench/fuzz.py), smaller: never a 5xx, never a connection reset."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pymongo
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bench.fuzz import fuzz
from services.all import app as gossip
from shared.settings import Settings
from tests.support.accounts import PASSWORD
from tests.support.http import sync_client
from tests.support.servers import LiveServer


@dataclass(frozen=True)
class Target:
    url: str
    token: str
    cookie: str


@pytest.fixture(scope="module")
def target(mongo_url: str) -> Iterator[Target]:
    """One live server and one publisher for every example: starting them per example would dominate the run."""
    config = Settings(secret_key=uuid.uuid4().hex, mongo_url=mongo_url, mongo_db=f"test_fuzz_{uuid.uuid4().hex[:8]}")
    live = LiveServer(gossip.create(config)).start()
    try:
        with sync_client(base_url=live.url, timeout=10) as http:
            assert http.post("/api/auth/register", json={"username": "fuzz", "password": PASSWORD}).status_code == 201
            token = http.post("/api/me/tokens", json={"name": "fuzz"}).json()["token"]
            yield Target(live.url, token, http.cookies["gossip_session"])
    finally:
        live.stop()
        with pymongo.MongoClient(mongo_url) as client:
            client.drop_database(config.mongo_db)


# Text with lone surrogates and NUL mixed in; JSON values of every kind, numbers far beyond 64 bits, deep nesting.
surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1)
unicode = st.text() | st.lists(st.text() | surrogates | st.just("\x00"), max_size=4).map("".join)
scalars = st.none() | st.booleans() | st.integers(min_value=-(10**40), max_value=10**40) | st.floats() | unicode
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(unicode, inner, max_size=4),
                      max_leaves=20)  # fmt: skip
known = st.sampled_from(["flash", "sherlock"])
shows = st.one_of(known, known, st.sampled_from(["", "Flash", "nope", "flash\x00"]), values)
updates = st.fixed_dictionaries(
    {"show": shows, "text": st.one_of(unicode, unicode, values)}, optional={"extra": values}
)


def _encoded(value: object) -> bytes:
    """ensure_ascii escapes lone surrogates as \\ud800: valid JSON, but no database can store them."""
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


odd_bodies = (
    values.map(_encoded)
    | st.binary(max_size=512)
    | unicode.map(lambda text: text.encode("utf-8", "surrogatepass"))
    | st.sampled_from([b"", b"{", b"[]", b"null", b'{"text":' * 200,
                       b'{"show":"flash","text":"' + b"x" * 20_000 + b'"}',
                       b'{"show":"flash","text":"' + b"x" * 3_000_000 + b'"}',  # reset, when it was cut off at 1 MiB
                       b"\xef\xbb\xbf{}", b"1e999999", b'{"show":"flash","text":"\\ud800\\u0000"}'])
)  # fmt: skip
# What HTTP allows in a header value (visible ASCII, inner spaces, obs-text bytes); sent as latin-1 bytes.
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=300)
header_text = header_text.map(str.strip)
content_types = st.sampled_from(
    ["application/json; charset=latin-1", "APPLICATION/JSON ;", "text/plain", "application/x-www-form-urlencoded",
     "multipart/form-data; boundary=x", ""]
) | header_text  # fmt: skip


@st.composite
def requests(draw: st.DrawFn, target: Target) -> tuple[bytes, dict[str, bytes], dict[str, str]]:
    """Half the examples look like a publisher's request, so they get past the checks in front to the validation."""
    plausible = draw(st.booleans())
    auth = draw(st.sampled_from(["token", "cookie"] if plausible else ["token", "cookie", "garbage", "none"]))
    headers = {"content-type": "application/json" if plausible else draw(content_types)}
    if auth == "token":
        headers["authorization"] = f"Bearer {target.token}"
    elif auth == "garbage":
        headers["authorization"] = draw(header_text)
    if draw(st.booleans()):
        headers["idempotency-key"] = draw(st.uuids().map(str) | header_text)
    cookies = {"gossip_session": target.cookie} if auth == "cookie" else {}
    body = draw(updates.map(_encoded) if plausible else odd_bodies)
    return body, {name: value.encode("latin-1") for name, value in headers.items()}, cookies


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_request_gets_a_server_error(target: Target, data: st.DataObject) -> None:
    body, headers, cookies = data.draw(requests(target))
    with sync_client(base_url=target.url, cookies=cookies, timeout=10) as http:
        response = http.post("/api/updates", content=body, headers=headers)
    event(f"status {response.status_code}")  # pytest --hypothesis-show-statistics shows what the examples reached
    assert response.status_code < 500, response.text
    if response.status_code == 201:
        assert set(response.json()) == {"seq", "show", "title", "text", "author", "created_at"}
    else:
        assert set(response.json()) == {"error", "detail", "fields"}


async def test_the_abuse_fuzz_gets_no_server_error_and_no_reset(target: Target) -> None:
    tally = await fuzz(int(target.url.rsplit(":", 1)[1]), target.token, target.cookie, count=300, seed=7)
    assert (tally.resets, tally.server_errors, tally.unanswered) == (0, 0, 0), tally.statuses
    assert sum(tally.statuses.values()) == 300 and {201, 413} <= set(tally.statuses)
