"""Signing up, in and out: the JSON API and the login, register and logout pages (templates/auth/); the logic
is services/auth/accounts.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from services.auth import accounts, api_docs, browsers
from services.auth.state import AuthRequest
from shared.auth import (
    Caller,
    clear_session_cookie,
    cookie_caller,
    open_session,
    revoke_previous_session,
    revoke_session,
    session_caller,
    set_session_cookie,
)
from shared.body import read_fields, read_object
from shared.errors import ApiError
from shared.openapi import ApiRoute
from shared.pages import optional_viewer, read_form, redirect, render, safe_next
from shared.responses import JSONResponse

Submit = Callable[[AuthRequest, dict[str, str]], Awaitable[dict[str, Any]]]


def client_address(request: AuthRequest) -> str:
    """The client's address; behind a trusted proxy, the one it forwarded (shared/proxies.py)."""
    return request.client.host if request.client else "unknown"


async def logged_in(request: AuthRequest, user: dict[str, Any], response: Response) -> Response:
    """A new session in place of the browser's previous one, and the browser is remembered as one that signed in to
    this account (services/auth/browsers.py)."""
    state = request.state
    await revoke_previous_session(request)
    cookie = await open_session(state["db"], state["settings"], user["_id"], user["username"])
    set_session_cookie(request, response, cookie, state["settings"])
    browsers.remember(request, response, state["settings"], user["username_key"])
    return response


async def logged_out(request: AuthRequest, caller: Caller | None, response: Response) -> Response:
    """Idempotent: logged out already is what was asked for, and the cookie is cleared either way."""
    if caller is not None and caller.session_key is not None:
        await revoke_session(request.state["db"], caller.session_key)
    clear_session_cookie(request, response)
    return response


async def api_register(request: AuthRequest) -> Response:
    fields = await read_fields(request, "username", "password")
    user = await accounts.register(request.state, fields["username"], fields["password"], client_address(request))
    return await logged_in(request, user, JSONResponse({"username": user["username"]}, status_code=201))


async def api_login(request: AuthRequest) -> Response:
    fields = await read_fields(request, "username", "password")
    user = await _authenticate(request, fields)
    return await logged_in(request, user, JSONResponse({"username": user["username"]}))


async def api_logout(request: AuthRequest) -> Response:
    """Takes JSON like every POST of the API, though it reads none: one rule, which a cross-site form cannot meet."""
    caller = await cookie_caller(request)
    await read_object(request)
    return await logged_out(request, caller, Response(status_code=204))


async def _authenticate(request: AuthRequest, fields: dict[str, str]) -> dict[str, Any]:
    device = browsers.remembered(request, request.state["settings"])
    return await accounts.authenticate(
        request.state, fields["username"], fields["password"], client_address(request), device
    )


async def _register(request: AuthRequest, fields: dict[str, str]) -> dict[str, Any]:
    return await accounts.register(request.state, fields["username"], fields["password"], client_address(request))


async def _account_page(
    request: AuthRequest, template: str, submit: Submit, rules: dict[str, str] | None = None
) -> Response:
    """GET shows the form; POST submits it, and errors re-render it with what was typed, as a page, never JSON.
    `rules`: what each field must be, said under it before it is filled in."""
    target = safe_next(request.query_params.get("next"))
    page = {"next": target, "rules": rules or {}}
    if request.method == "GET":
        return render(request, await optional_viewer(request), template, {**page, "username": ""})
    fields = await read_form(request, "username", "password")
    try:
        user = await submit(request, fields)
    except ApiError as error:
        context = {**page, "username": fields["username"], "error": error}
        response = render(request, None, template, context, status_code=error.status)
        response.headers.update(error.headers)
        return response
    return await logged_in(request, user, redirect(request, target))


async def login_page(request: AuthRequest) -> Response:
    return await _account_page(request, "auth/login.html", _authenticate)


async def register_page(request: AuthRequest) -> Response:
    return await _account_page(request, "auth/register.html", _register, accounts.RULES)


async def logout_page(request: AuthRequest) -> Response:
    await read_form(request)
    response = redirect(request, "/login", flash="You are logged out.")
    return await logged_out(request, await session_caller(request), response)


routes: list[BaseRoute] = [
    ApiRoute("/api/auth/register", api_register, "POST", api_docs.register),
    ApiRoute("/api/auth/login", api_login, "POST", api_docs.login),
    ApiRoute("/api/auth/logout", api_logout, "POST", api_docs.logout),
    Route("/login", login_page, methods=["GET", "POST"]),
    Route("/register", register_page, methods=["GET", "POST"]),
    Route("/logout", logout_page, methods=["POST"]),
]
