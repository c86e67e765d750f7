"""The absolute links in mail and the signed tokens they carry, built and read here alone.

A token names the user and the address it was sent to, so a link is good for that address only: once the address
changes, links sent to the old one do nothing. Each kind has its own salt, so one cannot stand in for another."""

from __future__ import annotations

from urllib.parse import urlencode

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from shared.errors import ApiError
from shared.settings import Settings

VERIFY_MAX_AGE = 24 * 3600  # seconds a link that checks an address stays good
VERIFY_PATH, UNSUBSCRIBE_PATH = "/email/verify", "/unsubscribe"
VERIFY_SALT, UNSUBSCRIBE_SALT = "gossip.email-verify", "gossip.unsubscribe"


def absolute(settings: Settings, path: str, **query: str) -> str:
    """A link to the site as people reach it (PUBLIC_URL), whatever request, if any, is being answered."""
    return f"{settings.public_url}{path}" + (f"?{urlencode(query)}" if query else "")


def _verifier(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=VERIFY_SALT)


def _unsubscriber(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(settings.secret_key, salt=UNSUBSCRIBE_SALT)


def verify_link(settings: Settings, user_id: str, address: str) -> str:
    return absolute(settings, VERIFY_PATH, token=_verifier(settings).dumps([user_id, address]))


def unsubscribe_link(settings: Settings, user_id: str, address: str) -> str:
    """No expiry: a digest read a month later still turns the digest off."""
    return absolute(settings, UNSUBSCRIBE_PATH, token=_unsubscriber(settings).dumps([user_id, address]))


def _claim(payload: object) -> tuple[str, str]:
    if not (isinstance(payload, list) and len(payload) == 2 and all(isinstance(part, str) for part in payload)):
        raise BadSignature("not a claim")
    return payload[0], payload[1]


BROKEN = "This link is not valid: it may have been cut short or changed. Copy the whole link from the mail."


def verify_claim(settings: Settings, token: str) -> tuple[str, str]:
    """The user and address a verification link was sent for; 400 when it is expired, changed or cut."""
    try:
        return _claim(_verifier(settings).loads(token, max_age=VERIFY_MAX_AGE))
    except SignatureExpired:
        detail = "This link has expired: links to check an address last 24 hours. Ask for a new one on Preferences."
        raise ApiError(400, "expired_link", detail) from None
    except BadSignature:
        raise ApiError(400, "bad_link", BROKEN) from None


def unsubscribe_claim(settings: Settings, token: str) -> tuple[str, str]:
    try:
        return _claim(_unsubscriber(settings).loads(token))
    except BadSignature:
        raise ApiError(400, "bad_link", BROKEN) from None
