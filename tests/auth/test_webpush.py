"""The pieces of one push that need no network: Retry-After read as seconds or as a date, the backoff between tries,
and the key the browser subscribes with being the public half of the key that signs."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from services.auth.push import BACKOFF, MAX_BACKOFF, backoff
from services.auth.webpush import WebPush, application_server_key, dev_vapid_key, retry_after, server_key
from shared.settings import Settings
from tests.support.push_receiver import Subscription, unb64url


def test_retry_after_is_read_as_seconds_or_as_a_date() -> None:
    now = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    assert retry_after("120", now) == 120.0
    assert retry_after("Fri, 15 Jan 2027 08:02:00 GMT", now) == 120.0
    assert retry_after("Fri, 15 Jan 2027 07:00:00 GMT", now) == 0.0  # a date gone by: at once
    assert retry_after(None, now) is None
    assert retry_after("soon", now) is None


def test_backoff_doubles_up_to_its_cap_and_never_undercuts_retry_after() -> None:
    assert [backoff(attempts, None) for attempts in (1, 2, 3)] == [BACKOFF, BACKOFF * 2, BACKOFF * 4]
    assert backoff(30, None) == MAX_BACKOFF
    assert backoff(1, 600.0) == 600.0


def test_the_subscribe_key_is_the_public_half_of_the_signing_key(settings: Settings) -> None:
    subscription = Subscription("https://push.example.net/abc")
    vapid = server_key(settings)
    webpush = WebPush(vapid, settings.vapid_subject, None)  # type: ignore[arg-type]
    _, headers = webpush.request(subscription.endpoint, subscription.to_json()["keys"], b"{}")
    key = application_server_key(vapid)
    assert headers["Authorization"].endswith(f",k={key}")
    token = headers["Authorization"].removeprefix("vapid t=").split(",k=")[0]
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
    claims = jwt.decode(token, public, algorithms=["ES256"], audience="https://push.example.net")
    assert claims["sub"] == settings.vapid_subject
    assert len(base64.urlsafe_b64decode(key + "=")) == 65


def test_the_vapid_key_is_generated_once_private_and_usable(tmp_path: Path) -> None:
    first = dev_vapid_key(tmp_path)
    assert dev_vapid_key(tmp_path) == first
    assert stat.S_IMODE((tmp_path / "vapid_private_key").stat().st_mode) == 0o600
    assert server_key(Settings(secret_key="s"), tmp_path).public_key is not None


def test_a_given_key_is_used_and_one_that_is_not_a_key_names_the_variable(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    used = server_key(Settings(secret_key="s", vapid_private_key=dev_vapid_key(elsewhere)), tmp_path)
    assert application_server_key(used) == application_server_key(server_key(Settings(secret_key="s"), elsewhere))
    assert not (tmp_path / "vapid_private_key").exists()  # a given key: none is generated
    with pytest.raises(ValueError, match="VAPID_PRIVATE_KEY"):
        server_key(Settings(secret_key="s", vapid_private_key="not-a-key"), tmp_path)
