"""Sending one Web Push message: the body encrypted for the subscription (aes128gcm, RFC 8291, by http-ece), signed
for the push service with the server's VAPID key (RFC 8292, by py-vapid), and posted without blocking the loop."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import http_ece
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid

from shared.settings import Settings

JWT_LIFETIME = 12 * 3600  # seconds a VAPID signature stays valid; push services refuse more than 24 hours
TIMEOUT = 10.0  # seconds for one push service to answer


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    """Base64url with or without its padding; ValueError if it is not that."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def application_server_key(settings: Settings) -> str:
    """The VAPID public key as the browser's PushManager.subscribe takes it: the uncompressed P-256 point."""
    public = Vapid.from_string(settings.vapid_private_key).public_key
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
    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.vapid = Vapid.from_string(settings.vapid_private_key)
        self.subject, self.http = settings.vapid_subject, http

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
