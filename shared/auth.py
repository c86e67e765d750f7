"""Who is calling: the signed session cookie, its revocation, and CSRF tokens; and the digest API tokens are kept by."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.body import media_type
from shared.cookies import clear_cookie, is_https, set_cookie
from shared.db import Database, as_datetime, utcnow
from shared.errors import ApiError
from shared.settings import Settings
from shared.state import AnyRequest, core

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_COOKIE = "gossip_csrf"
CSRF_MAX_AGE = 24 * 3600


RENEWED = "gossip.renewed_session"  # in a request's scope: the Set-Cookie of a session renewed while answering it


@dataclass(frozen=True, slots=True)
class Caller:
    user_id: str
    username: str
    # The stored session's `_id` (the digest of the id in the cookie), as change events name it when it is revoked;
    # None when the caller came with a Bearer token.
    session_key: str | None = None
    expires_at: datetime | None = None  # when the session ends, unless it is used (and so renewed) before then


def _signer(settings: Settings, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=f"gossip.{purpose}")


def session_cookie_name(request: AnyRequest) -> str:
    """Over HTTPS the __Host- prefix makes the browser insist on Secure, Path=/ and no Domain."""
    return "__Host-gossip_session" if is_https(request) else "gossip_session"


def _first_age(settings: Settings) -> int:
    """A new session's lifetime: the sliding one, unless the absolute one is shorter."""
    return min(settings.session_max_age, settings.session_absolute_age)


def session_document(settings: Settings, user_id: str, username: str) -> tuple[str, dict[str, Any]]:
    """The one shape of a `sessions` document, for a login and for sessions made in bulk, with the cookie value that
    goes with it. A fresh random id each time; only its digest is stored (as `_id`), so a copy of the database holds
    no session anyone could use."""
    session_id, now = secrets.token_urlsafe(32), utcnow()
    document = {
        "_id": token_digest(session_id),
        "user_id": user_id,
        "username": username,
        "created_at": now,
        "expires_at": now + timedelta(seconds=_first_age(settings)),
    }
    return session_cookie(settings, session_id), document


async def open_session(db: Database, settings: Settings, user_id: str, username: str) -> str:
    """A fresh random id at every login: nothing from before the login is reused. Returns the cookie value."""
    cookie, session = session_document(settings, user_id, username)
    await db.sessions.insert_one(session)
    return cookie


def session_cookie(settings: Settings, session_id: str) -> str:
    """The cookie value for a session: its id, signed. Only the id's digest is stored."""
    return _signer(settings, "session").dumps(session_id)


async def revoke_session(db: Database, session_key: str) -> None:
    await db.sessions.delete_one({"_id": session_key})


async def revoke_previous_session(request: AnyRequest) -> None:
    """Signing in ends the session the browser had, whoever's it was: its cookie is replaced, and a copy of the old
    one (left in another tab, or taken) must not live on."""
    if (session_id := _session_id(request, core(request)["settings"])) is not None:
        await revoke_session(core(request)["db"], token_digest(session_id))


def absolute_end(session: dict[str, Any], absolute_age: float) -> datetime:
    """The moment a session ends however much it is used: SESSION_ABSOLUTE_AGE after its login."""
    return as_datetime(session.get("created_at")) + timedelta(seconds=absolute_age)


def session_end(session: dict[str, Any], absolute_age: float) -> datetime:
    """When a session ends unless it is renewed first: its sliding end, never past its absolute end, whatever wrote
    the sliding one (another program, a hand in mongosh). TypeError if a date is not
    one."""
    return min(as_datetime(session.get("expires_at")), absolute_end(session, absolute_age))


def set_session_cookie(
    request: AnyRequest, response: Response, value: str, settings: Settings, max_age: int | None = None
) -> None:
    """`max_age`: the seconds the session has left, when fewer than a new one's."""
    set_cookie(request, response, session_cookie_name(request), value, max_age or _first_age(settings))


def clear_session_cookie(request: AnyRequest, response: Response) -> None:
    clear_cookie(request, response, session_cookie_name(request))


async def session_caller(request: AnyRequest) -> Caller | None:
    """A missing, tampered, expired or revoked cookie all mean the same thing: logged out. A cookie that comes with
    a change from another site is refused outright (see `refuse_cross_site`)."""
    if not request.cookies.get(session_cookie_name(request)):
        return None
    refuse_cross_site(request)
    return await session_holder(request)


async def session_holder(request: AnyRequest) -> Caller | None:
    """Whose session the cookie holds, whatever site the request came from: for a check that must answer everyone
    but a few alike, a change from another site included (the operator console's gate). Never enough to act on:
    that is session_caller's, which refuses such a change."""
    settings = core(request)["settings"]
    session_id = _session_id(request, settings)
    session = await core(request)["sessions"](token_digest(session_id)) if session_id is not None else None
    if session_id is None or session is None:
        return None
    lifetime = settings.session_absolute_age
    try:
        ends, last = session_end(session, lifetime), absolute_end(session, lifetime)
    except TypeError:  # dates that are not dates make no session
        return None
    now = utcnow()
    if ends <= now:
        return None  # the TTL monitor runs only once a minute, so expiry is checked here as well
    if ends < last and ends - now < timedelta(seconds=settings.session_max_age / 2):
        ends = await _renew(request, settings, session, session_id, last)
    return Caller(session["user_id"], session["username"], session["_id"], ends)


def _session_id(request: AnyRequest, settings: Settings) -> str | None:
    """The session id the browser's cookie carries, if its signature holds and is not too old."""
    raw = request.cookies.get(session_cookie_name(request))
    if not raw:
        return None
    try:
        session_id = _signer(settings, "session").loads(raw, max_age=settings.session_max_age)
    except BadSignature:
        return None
    return session_id if isinstance(session_id, str) else None


def refuse_cross_site(request: AnyRequest) -> None:
    """403 for a request that would change something with the session cookie and comes from another site, by its
    `Origin` or by the browser's `Sec-Fetch-Site`. SameSite=Lax, the JSON content type and the CSRF tokens stop such
    requests already; this is the line behind them, for the browser or the form that gets past one."""
    if request.method in SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    own = str(request.base_url).rstrip("/")
    if (origin is not None and origin != own) or request.headers.get("sec-fetch-site") == "cross-site":
        raise ApiError(403, "cross_site", "This request came from another site, with your session: it was refused.")


async def _renew(
    request: AnyRequest, settings: Settings, session: dict[str, Any], session_id: str, last: datetime
) -> datetime:
    """A session used past half its life gets a whole one again, so nobody is signed out while using the site, up to
    its absolute end (`last`). Its cookie is signed anew too, since the signature's age is checked as well.
    replace_one, not $set: the embedded server would store the date as a string. Only if unchanged since read, so a
    logout or an expiry set meanwhile stands."""
    now = utcnow()
    ends = min(now + timedelta(seconds=settings.session_max_age), last)
    await core(request)["db"].sessions.replace_one(
        {"_id": session["_id"], "expires_at": session["expires_at"]}, {**session, "expires_at": ends}
    )
    carrier = Response()  # only to write the Set-Cookie header as every session cookie is written
    left = max(1, int((ends - now).total_seconds()))
    set_session_cookie(request, carrier, session_cookie(settings, session_id), settings, left)
    request.scope[RENEWED] = carrier.headers["set-cookie"]
    return ends


class RenewedSession:
    """Sends the cookie of a session renewed while answering (see _renew) with the answer, whatever the endpoint,
    unless the answer sets the session cookie itself (a login, a logout)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_renewed(message: Message) -> None:
            if message["type"] == "http.response.start" and (cookie := scope.get(RENEWED)):
                headers = MutableHeaders(scope=message)
                name = cookie.partition("=")[0]
                if not any(value.startswith(name + "=") for value in headers.getlist("set-cookie")):
                    headers.append("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_renewed if scope["type"] == "http" else send)


def token_digest(token: str) -> str:
    """Tokens are long random strings, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()


async def cookie_caller(request: AnyRequest) -> Caller | None:
    """For the JSON API. A cookie-authenticated POST must be JSON, which a cross-site form cannot send."""
    caller = await session_caller(request)
    if caller is not None and request.method == "POST" and media_type(request) != "application/json":
        detail = "Send the header Content-Type: application/json, even with no body: a session cookie needs it."
        raise ApiError(415, detail=detail)
    return caller


async def require_caller(request: AnyRequest) -> Caller:
    """For the JSON API: the session cookie. Only ingest also takes an API token (services/ingest/authors.py)."""
    caller = await cookie_caller(request)
    if caller is None:
        raise ApiError(401, detail=_why_not(request))
    return caller


def same_user(caller: Caller, named: object) -> None:
    """A page names the user it was made for, in what it sends: a browser signed in as someone else since must not
    stream that person's events into it, nor mark their updates read from it (a stale tab on a shared computer):
    403, which the page takes as signed out. Nothing named, nothing to check."""
    if named is not None and named != caller.username:
        detail = "The page was made for another user than the one this browser is signed in as now."
        raise ApiError(403, "other_user", detail, {"user": "not the signed-in user"})


def _why_not(request: AnyRequest) -> str:
    if request.headers.get("authorization", "").lower().startswith("bearer"):
        return "This needs a logged-in session: an API token publishes and reads history, nothing else."
    return "Log in first."


def csrf_token(request: AnyRequest) -> tuple[str, str]:
    """The form token is the browser's random CSRF cookie, signed: a cross-site page can read neither."""
    browser = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(16)
    return _signer(core(request)["settings"], "csrf").dumps(browser), browser


def set_csrf_cookie(request: AnyRequest, response: Response, browser: str) -> None:
    if request.cookies.get(CSRF_COOKIE) != browser:
        set_cookie(request, response, CSRF_COOKIE, browser, CSRF_MAX_AGE)


def csrf_ok(request: AnyRequest, token: str) -> bool:
    browser = request.cookies.get(CSRF_COOKIE)
    if not browser or not token:
        return False
    try:
        signed = _signer(core(request)["settings"], "csrf").loads(token, max_age=CSRF_MAX_AGE)
    except BadSignature:
        return False
    return isinstance(signed, str) and hmac.compare_digest(signed, browser)
