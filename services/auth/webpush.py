"""Sending one Web Push message: the body encrypted for the subscription (aes128gcm, RFC 8291, by http-ece), signed
for the push service with the server's VAPID key (RFC 8292, by py-vapid), and posted without blocking the loop."""

from __future__ import annotations

import base64
import functools
import ssl
import time
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import http_ece
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid

from shared.settings import VAR, Settings

JWT_LIFETIME = 12 * 3600  # seconds a VAPID signature stays valid; push services refuse more than 24 hours
TIMEOUT = 10.0  # seconds for one push service to answer


@functools.cache
def tls() -> ssl.SSLContext:
    """What pushes are sent over: httpx's own TLS context (the CA bundle, or SSL_CERT_FILE), made once per process.
    Loading the bundle takes tens of milliseconds of CPU, and a process may start the service more than once: the
    tests start one for each test."""
    return httpx.create_ssl_context()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    """Base64url with or without its padding; ValueError if it is not that."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def dev_vapid_key(var: Path = VAR) -> str:
    """A per-checkout VAPID private key (the raw P-256 scalar, base64url), generated on first run like the secret:
    the browsers' push subscriptions are bound to its public half, so it must outlive restarts."""
    path = var / "vapid_private_key"
    if not path.exists():
        var.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        key = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value.to_bytes(32, "big")
        path.write_text(b64url(key))
    return path.read_text().strip()


def server_key(settings: Settings, var: Path = VAR) -> Vapid:
    """The key that signs every push: VAPID_PRIVATE_KEY, else this checkout's own (dev_vapid_key), read as the auth
    service starts. One that is not a key fails the start, naming the variable."""
    key = settings.vapid_private_key or dev_vapid_key(var)
    try:
        return Vapid.from_string(key)
    except Exception:  # py-vapid raises whatever its decoders raise
        raise ValueError("VAPID_PRIVATE_KEY must be a P-256 private key in base64url (raw 32 bytes, or DER)") from None


def application_server_key(vapid: Vapid) -> str:
    """The VAPID public key as the browser's PushManager.subscribe takes it: the uncompressed P-256 point."""
    public = vapid.public_key
    return b64url(public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))


@dataclass(frozen=True, slots=True)
class Answer:
    """What the push service said: its status (0: no answer at all), and how long it asked us to wait."""

    status: int
    retry_after: float | None = None


def retry_after(value: str | None, now: float) -> float | None:
    """Retry-After in seconds, given as seconds or as an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() - now)


class WebPush:
    def __init__(self, vapid: Vapid, subject: str, http: httpx.AsyncClient) -> None:
        self.vapid, self.subject, self.http = vapid, subject, http

    def request(self, endpoint: str, keys: dict[str, str], payload: bytes) -> tuple[bytes, dict[str, str]]:
        """The encrypted body and the VAPID header for one subscription. A fresh ephemeral key for each message, as
        RFC 8291 requires."""
        body = http_ece.encrypt(
            payload,
            private_key=ec.generate_private_key(ec.SECP256R1()),
            dh=unb64url(keys["p256dh"]),
            auth_secret=unb64url(keys["auth"]),
            version="aes128gcm",
        )
        parts = urlsplit(endpoint)
        claims: dict[str, Any] = {
            "aud": f"{parts.scheme}://{parts.netloc}",
            "exp": int(time.time()) + JWT_LIFETIME,
            "sub": self.subject,
        }
        return body, dict(self.vapid.sign(claims))

    async def send(
        self, endpoint: str, keys: dict[str, str], payload: bytes, *, ttl: int, urgency: str, topic: str
    ) -> Answer:
        """Posts one message. A push service that cannot be reached answers status 0, to be tried again."""
        body, authorization = self.request(endpoint, keys, payload)
        headers = {
            **authorization,
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(ttl),  # how long the push service keeps it for a device that is offline
            "Urgency": urgency,
            "Topic": topic,  # a newer message of the same topic replaces one still waiting at the push service
        }
        try:
            response = await self.http.post(endpoint, content=body, headers=headers, timeout=TIMEOUT)
        except httpx.HTTPError:
            return Answer(0)
        return Answer(response.status_code, retry_after(response.headers.get("retry-after"), time.time()))
