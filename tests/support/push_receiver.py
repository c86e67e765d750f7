"""A real Web Push receiver on loopback, as a push service and a browser are to Gossip: it checks each message's
VAPID JWT (ES256, against the server's public key; aud, exp, sub) and its headers (TTL, Urgency, Topic as RFC 8030
allows them), decrypts its aes128gcm body with the private key of a subscription a test made, and keeps what it
read. A test can have it answer 410, or 429 with Retry-After."""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import http_ece
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.servers import LiveServer


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Subscription:
    """What a browser's PushManager.subscribe makes: its own P-256 key pair and auth secret, and an endpoint."""

    endpoint: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    def to_json(self) -> dict[str, Any]:
        """As PushSubscription.toJSON() gives it."""
        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"endpoint": self.endpoint, "expirationTime": None,
                "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)}}  # fmt: skip


@dataclass
class Received:
    token: str
    payload: dict[str, Any]
    headers: dict[str, str]
    claims: dict[str, Any]
    status: int  # what the receiver answered
    at: float  # time.monotonic() when it arrived


class PushReceiver:
    """Start with `with PushReceiver(server_key) as receiver:`; `receiver.subscription()` makes one."""

    def __init__(self, server_key: str) -> None:
        """`server_key`: the application server key from GET /api/push/key."""
        point = unb64url(server_key)
        self.server_key = server_key
        self.verifier = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        self.subscriptions: dict[str, Subscription] = {}
        self.received: list[Received] = []
        self.problems: list[str] = []  # every message it could not accept, and why
        self._answers: dict[str, deque[tuple[int, dict[str, str]]]] = {}
        self._lock = threading.Lock()
        self.live = LiveServer(Starlette(routes=[Route("/push/{token}", self._push, methods=["POST"])]))
        self.origin = self.live.url

    def __enter__(self) -> PushReceiver:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()

    def subscription(self) -> Subscription:
        token = b64url(os.urandom(12))
        subscription = self.subscriptions[token] = Subscription(f"{self.origin}/push/{token}")
        return subscription

    def answer(self, subscription: Subscription, status: int, headers: dict[str, str] | None = None) -> None:
        """The next message to `subscription` is answered `status` instead of 201."""
        token = subscription.endpoint.rsplit("/", 1)[1]
        self._answers.setdefault(token, deque()).append((status, headers or {}))

    def to(self, subscription: Subscription) -> list[Received]:
        with self._lock:
            return [r for r in self.received if subscription.endpoint.endswith("/" + r.token)]

    def accepted(self, subscription: Subscription) -> list[dict[str, Any]]:
        return [r.payload for r in self.to(subscription) if r.status == 201]

    def _claims(self, authorization: str) -> dict[str, Any]:
        """RFC 8292: `vapid t=<JWT>, k=<public key>`; the key must be the server's, and the JWT signed by it."""
        scheme, _, rest = authorization.partition(" ")
        assert scheme.lower() == "vapid", f"Authorization scheme {scheme!r}"
        parts = dict(part.strip().split("=", 1) for part in rest.split(","))
        assert parts.get("k") == self.server_key, "k is not the server's public key"
        claims: dict[str, Any] = jwt.decode(
            parts["t"], self.verifier, algorithms=["ES256"], audience=self.origin,
            options={"require": ["aud", "exp", "sub"]},
        )  # fmt: skip
        assert claims["exp"] <= time.time() + 24 * 3600, "exp is more than 24 hours away"
        assert claims["sub"].startswith(("mailto:", "https://")), f"sub {claims['sub']!r}"
        return claims

    async def _push(self, request: Request) -> Response:
        token = request.path_params["token"]
        subscription = self.subscriptions.get(token)
        if subscription is None:
            return Response(status_code=404)
        headers = {name.lower(): value for name, value in request.headers.items()}
        body = await request.body()
        try:
            claims = self._claims(headers.get("authorization", ""))
            assert headers.get("content-encoding") == "aes128gcm", "Content-Encoding"
            assert headers.get("ttl", "").isdigit(), "TTL"
            assert headers.get("urgency") in ("very-low", "low", "normal", "high"), "Urgency"
            assert re.fullmatch(r"[A-Za-z0-9_-]{1,32}", headers.get("topic", "-")), "Topic: RFC 8030's 32 base64url"
            plain = http_ece.decrypt(body, private_key=subscription.key, auth_secret=subscription.auth,
                                     version="aes128gcm")  # fmt: skip
            payload = json.loads(plain)
        except Exception as error:  # the test reads the problems and fails on them
            with self._lock:
                self.problems.append(f"{type(error).__name__}: {error}")
            return Response(status_code=400)
        status, extra = 201, {}
        with self._lock:
            if answers := self._answers.get(token):
                status, extra = answers.popleft()
            self.received.append(Received(token, payload, headers, claims, status, time.monotonic()))
        return Response(status_code=status, headers=extra)
