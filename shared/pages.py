"""Jinja pages: one render that adds the caller, their unread count, the CSRF token and the flash message, and the
login redirect."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from itsdangerous import BadSignature, URLSafeSerializer
from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from shared.auth import Caller, csrf_ok, csrf_token, session_caller, set_csrf_cookie
from shared.body import fields_of, read_object
from shared.cookies import clear_cookie, set_cookie
from shared.errors import CRASH_DETAIL, ApiError, as_api_error, on_crash, on_error
from shared.headers import PAGE_HEADERS
from shared.settings import ROOT
from shared.state import AnyRequest, core
from shared.updates import COUNT_CAP, Reading, reading


def counted(number: int) -> str:
    """A count of updates as a page shows it: "200+" once it reaches COUNT_CAP, where counting stops."""
    return f"{COUNT_CAP}+" if number >= COUNT_CAP else str(number)


templates = Jinja2Templates(directory=ROOT / "web" / "templates")
templates.env.filters["counted"] = counted
templates.env.globals["count_cap"] = COUNT_CAP  # for the page's script, which counts on as updates arrive
FLASH_COOKIE = "gossip_flash"


class LoginRequired(Exception):
    """Raised by a page that needs a session; answered with a redirect to /login?next=..."""


class CsrfRejected(Exception):
    """A form post without a valid CSRF token; answered with a page saying so."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking at a page and what they read: looked up once per page, for the layout's header and badge."""

    caller: Caller
    me: Reading


def _flash_signer(request: AnyRequest) -> URLSafeSerializer:
    return URLSafeSerializer(core(request)["settings"].secret_key, salt="gossip.flash")


def render(
    request: AnyRequest,
    viewer: Viewer | None,
    template: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    """`viewer=None`: the logged-out layout."""
    token, browser = csrf_token(request)
    flash = None
    if raw := request.cookies.get(FLASH_COOKIE):
        try:
            flash = _flash_signer(request).loads(raw)
        except BadSignature:
            flash = None
    page = {
        "csrf_token": token, "flash": flash, "caller": viewer and viewer.caller, "me": viewer and viewer.me,
        **(context or {}),
    }  # fmt: skip
    response = templates.TemplateResponse(request, template, page, status_code=status_code)
    set_csrf_cookie(request, response, browser)
    if raw:
        clear_cookie(request, response, FLASH_COOKIE)
    response.headers.update(PAGE_HEADERS)
    return response


def redirect(request: AnyRequest, url: str, flash: str | None = None) -> Response:
    """POST-redirect-GET; the flash message rides along in a signed cookie read once."""
    response = RedirectResponse(url, status_code=303)
    if flash:
        set_cookie(request, response, FLASH_COOKIE, _flash_signer(request).dumps(flash))
    return response


def safe_next(target: str | None) -> str:
    """Only a local path: never an open redirect to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def optional_viewer(request: AnyRequest) -> Viewer | None:
    """None when logged out, or when the account has gone since the session began."""
    caller = await session_caller(request)
    if caller is None:
        return None
    state = core(request)
    me = await reading(state["db"], await state["users"](caller.user_id), await state["catalogue"].titles())
    return None if me is None else Viewer(caller, me)


async def page_viewer(request: AnyRequest) -> Viewer:
    """For a page that needs a login: the login page otherwise, coming back here after."""
    viewer = await optional_viewer(request)
    if viewer is None:
        raise LoginRequired()
    return viewer


async def read_form(request: AnyRequest, *names: str) -> dict[str, str]:
    """A form post's fields, once its CSRF token has been checked; same names as the JSON API."""
    form = await read_object(request, form=True)
    if not csrf_ok(request, str(form.get("csrf_token", ""))):
        raise CsrfRejected()
    return fields_of(form, *names)


async def on_login_required(request: AnyRequest, exc: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


async def _error_page(request: AnyRequest, message: str, status_code: int) -> Response:
    """With the caller's own header, even where no page looked them up (an unknown path, a wrong method); with the
    logged-out one if the database cannot say, or if the session is refused (a write from another site), since the
    page itself needs nothing from it."""
    try:
        viewer = await optional_viewer(request)
    except (PyMongoError, ApiError):
        viewer = None
    return render(request, viewer, "error.html", {"message": message}, status_code=status_code)


async def on_csrf_rejected(request: AnyRequest, exc: Exception) -> Response:
    message = "This form has expired or did not come from this site. Reload the page and try again."
    return await _error_page(request, message, 403)


def _wants_page(request: AnyRequest) -> bool:
    """A browser navigating to a page accepts HTML; the API, the feeds and scripts get the JSON error."""
    api = request.url.path.startswith(("/api/", "/events"))
    return not api and "text/html" in request.headers.get("accept", "")


async def on_page_error(request: AnyRequest, exc: Exception) -> Response:
    """The error page, with the same status, for a browser that asked for a page (an unknown one, GET /logout)."""
    if not _wants_page(request):
        return await on_error(request, exc)
    error = as_api_error(request, exc)
    response = await _error_page(request, error.detail, error.status)
    response.headers.update(error.headers)
    return response


async def on_page_crash(request: AnyRequest, exc: Exception) -> Response:
    """A bug's 500 as the error page for a browser; Starlette re-raises after this, so the traceback is logged."""
    if not _wants_page(request):
        return await on_crash(request, exc)
    return render(request, None, "error.html", {"message": CRASH_DETAIL}, status_code=500)


# They take over the JSON handlers of shared/errors.py, falling back to them.
PAGE_HANDLERS = {
    LoginRequired: on_login_required, CsrfRejected: on_csrf_rejected, ApiError: on_page_error,
    HTTPException: on_page_error, Exception: on_page_crash,
}  # fmt: skip
