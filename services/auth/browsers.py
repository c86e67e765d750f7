"""The browser cookie: a browser that has signed in to an account before says so, signed, so that a stranger's
flood of wrong passwords from elsewhere cannot lock that browser out (services/auth/throttle.py).

It names the account (its username key) and nothing else; it grants nothing but exemption from the account-wide
failure cap, so a copy of it lets nobody in. Set at each sign-in, long-lived, HttpOnly, SameSite=Lax, and Secure with
the `__Host-` prefix over HTTPS."""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.responses import Response

from shared.cookies import is_https, set_cookie
from shared.settings import Settings
from shared.state import AnyRequest


def _signer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt="gossip.device")


def cookie_name(request: AnyRequest) -> str:
    return "__Host-gossip_device" if is_https(request) else "gossip_device"


def remembered(request: AnyRequest, settings: Settings) -> str | None:
    """The username key of the account this browser last signed in to, if its cookie is genuine and not too old."""
    raw = request.cookies.get(cookie_name(request))
    if not raw:
        return None
    try:
        account = _signer(settings).loads(raw, max_age=settings.device_max_age)
    except BadSignature:
        return None
    return account if isinstance(account, str) else None


def remember(request: AnyRequest, response: Response, settings: Settings, username_key: str) -> None:
    set_cookie(request, response, cookie_name(request), _signer(settings).dumps(username_key), settings.device_max_age)
