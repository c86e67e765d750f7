"""Jinja pages: one render that adds the caller, their unread count, the CSRF token and the flash message, and the
login redirect."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from itsdangerous import BadSignature, URLSafeSerializer
from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from shared.auth import Caller, csrf_ok, csrf_token, is_https, session_caller, set_csrf_cookie
from shared.body import fields_of, read_object
from shared.errors import CRASH_DETAIL, ApiError, as_api_error, on_crash, on_error
from shared.settings import ROOT
from shared.updates import reading

templates = Jinja2Templates(directory=ROOT / "web" / "templates")
FLASH_COOKIE = "gossip_flash"


class LoginRequired(Exception):
    """Raised by a page that needs a session; answered with a redirect to /login?next=..."""


class CsrfRejected(Exception):
    """A form post without a valid CSRF token; answered with a page saying so."""


def _flash_signer(request: Request) -> URLSafeSerializer:
    return URLSafeSerializer(request.state.settings.secret_key, salt="gossip.flash")


def render(request: Request, template: str, context: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    token, browser = csrf_token(request)
    flash = None
    if raw := request.cookies.get(FLASH_COOKIE):
        try:
            flash = _flash_signer(request).loads(raw)
        except BadSignature:
            flash = None
    page = {
        "csrf_token": token, "flash": flash, "caller": getattr(request.state, "caller", None),
        "me": getattr(request.state, "me", None), **(context or {}),
    }  # fmt: skip
    response = templates.TemplateResponse(request, template, page, status_code=status_code)
    set_csrf_cookie(request, response, browser)
    if raw:
        response.delete_cookie(FLASH_COOKIE, path="/", httponly=True, samesite="Lax", secure=is_https(request))
    response.headers["cache-control"] = "no-store"
    response.headers["x-frame-options"] = "DENY"  # no other site may frame a page to trick clicks out of it
    response.headers["content-security-policy"] = "frame-ancestors 'none'"  # the same, for current browsers
    return response


def redirect(request: Request, url: str, flash: str | None = None) -> Response:
    """POST-redirect-GET; the flash message rides along in a signed cookie read once."""
    response = RedirectResponse(url, status_code=303)
    if flash:
        response.set_cookie(
            FLASH_COOKIE, _flash_signer(request).dumps(flash), path="/", httponly=True, samesite="Lax",
            secure=is_https(request),
        )  # fmt: skip
    return response


def safe_next(target: str | None) -> str:
    """Only a local path: never an open redirect to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def optional_caller(request: Request) -> Caller | None:
    """Looked up once per page, so the layout can show who is logged in and their unread count on every page."""
    caller = request.state.caller = await session_caller(request)
    request.state.me = await reading(request.state.db, caller.user_id) if caller else None
    return caller


async def page_caller(request: Request) -> Caller:
    caller = await optional_caller(request)
    if caller is None:
        raise LoginRequired()
    return caller


async def read_form(request: Request, *names: str) -> dict[str, str]:
    """A form post's fields, once its CSRF token has been checked; same names as the JSON API."""
    form = await read_object(request, form=True)
    if not csrf_ok(request, str(form.get("csrf_token", ""))):
        raise CsrfRejected()
    return fields_of(form, *names)


async def on_login_required(request: Request, exc: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


async def _error_page(request: Request, message: str, status_code: int) -> Response:
    """With the caller's own header, even where no page looked them up (an unknown path, a wrong method); with the
    logged-out one if the database cannot say, since the page itself needs nothing from it."""
    if not hasattr(request.state, "caller"):
        try:
            await optional_caller(request)
        except PyMongoError:
            request.state.caller = request.state.me = None
    return render(request, "error.html", {"message": message}, status_code=status_code)


async def on_csrf_rejected(request: Request, exc: Exception) -> Response:
    message = "This form has expired or did not come from this site. Reload the page and try again."
    return await _error_page(request, message, 403)


def _wants_page(request: Request) -> bool:
    """A browser navigating to a page accepts HTML; the API, the feeds and scripts get the JSON error."""
    api = request.url.path.startswith(("/api/", "/events"))
    return not api and "text/html" in request.headers.get("accept", "")


async def on_page_error(request: Request, exc: Exception) -> Response:
    """The error page, with the same status, for a browser that asked for a page (an unknown one, GET /logout)."""
    if not _wants_page(request):
        return await on_error(request, exc)
    error = as_api_error(exc)
    response = await _error_page(request, error.detail, error.status)
    response.headers.update(error.headers)
    return response


async def on_page_crash(request: Request, exc: Exception) -> Response:
    """A bug's 500 as the error page for a browser; Starlette re-raises after this, so the traceback is logged."""
    if not _wants_page(request):
        return await on_crash(request, exc)
    return render(request, "error.html", {"message": CRASH_DETAIL}, status_code=500)


# They take over the JSON handlers of shared/errors.py, falling back to them.
PAGE_HANDLERS = {
    LoginRequired: on_login_required, CsrfRejected: on_csrf_rejected, ApiError: on_page_error,
    HTTPException: on_page_error, Exception: on_page_crash,
}  # fmt: skip
