"""The auth service: accounts, sessions, the show catalogue and follows — JSON API and pages."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.auth import accounts, tokens
from shared.app import create_app
from shared.auth import (
    clear_session_cookie,
    cookie_caller,
    open_session,
    require_caller,
    revoke_session,
    session_caller,
    set_session_cookie,
)
from shared.body import read_fields, read_object
from shared.catalogue import Catalogue
from shared.db import Database
from shared.errors import ApiError
from shared.pages import optional_caller, page_caller, read_form, redirect, render, safe_next


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _logged_in(request: Request, user: dict, response: Response) -> Response:
    cookie = await open_session(request.state.db, request.state.settings, user["_id"], user["username"])
    set_session_cookie(request, response, cookie, request.state.settings)
    return response


async def api_register(request: Request) -> Response:
    fields = await read_fields(request, "username", "password")
    user = await accounts.register(request.state.db, fields["username"], fields["password"])
    return await _logged_in(request, user, JSONResponse({"username": user["username"]}, status_code=201))


async def api_login(request: Request) -> Response:
    fields = await read_fields(request, "username", "password")
    user = await accounts.authenticate(request.state.db, fields["username"], fields["password"], _address(request))
    return await _logged_in(request, user, JSONResponse({"username": user["username"]}))


async def api_logout(request: Request) -> Response:
    """Idempotent: logged out already is what was asked for, and the cookie is cleared either way."""
    caller = await cookie_caller(request)
    if caller is not None:
        await revoke_session(request.state.db, caller.session_id or "")
    response = Response(status_code=204)
    clear_session_cookie(request, response)
    return response


async def api_me(request: Request) -> Response:
    caller = await require_caller(request)
    return JSONResponse(await accounts.me(request.state.db, caller.user_id))


async def api_shows(request: Request) -> Response:
    caller = await session_caller(request)
    follows = await accounts.follows(request.state.db, caller.user_id) if caller else []
    return JSONResponse(await accounts.shows(request.state.catalogue, follows))


async def api_follow(request: Request) -> Response:
    caller = await require_caller(request)
    change = accounts.follow if request.method == "PUT" else accounts.unfollow
    await change(request.state.db, request.state.catalogue, caller.user_id, request.path_params["slug"])
    return Response(status_code=204)


async def api_read(request: Request) -> Response:
    caller = await require_caller(request)
    body = await read_object(request)
    await accounts.mark_read(request.state.db, caller.user_id, body.get("seq"))
    return Response(status_code=204)


async def api_create_token(request: Request) -> Response:
    caller = await require_caller(request)  # the cookie only: a token must not mint more tokens
    fields = await read_fields(request, "name")
    return JSONResponse(await tokens.create(request.state.db, caller, fields["name"]), status_code=201)


async def api_tokens(request: Request) -> Response:
    caller = await require_caller(request)
    return JSONResponse(await tokens.listing(request.state.db, caller.user_id))


async def api_revoke_token(request: Request) -> Response:
    caller = await require_caller(request)
    await tokens.revoke(request.state.db, caller.user_id, request.path_params["name"])
    return Response(status_code=204)


async def home(request: Request) -> Response:
    await optional_caller(request)  # the layout's `me` is all the home page shows
    return render(request, "home.html")


async def account_page(request: Request) -> Response:
    """GET shows the login or register form; POST submits it, and errors re-render it with what was typed."""
    template = "auth/login.html" if request.url.path == "/login" else "auth/register.html"
    target = safe_next(request.query_params.get("next"))
    if request.method == "GET":
        await optional_caller(request)
        return render(request, template, {"next": target, "username": ""})
    fields, db = await read_form(request, "username", "password"), request.state.db
    try:
        if template == "auth/login.html":
            user = await accounts.authenticate(db, fields["username"], fields["password"], _address(request))
        else:
            user = await accounts.register(db, fields["username"], fields["password"])
    except ApiError as error:
        context = {"next": target, "username": fields["username"], "error": error}
        response = render(request, template, context, status_code=error.status)
        response.headers.update(error.headers)
        return response
    return await _logged_in(request, user, redirect(request, target))


async def logout_page(request: Request) -> Response:
    await read_form(request)
    caller = await session_caller(request)
    if caller is not None:
        await revoke_session(request.state.db, caller.session_id or "")
    response = redirect(request, "/login", flash="You are logged out.")
    clear_session_cookie(request, response)
    return response


async def _form_change(db: Database, catalogue: Catalogue, user_id: str, action: str, slug: str) -> None:
    """The form's buttons send action=follow or action=unfollow; the API says the same with PUT and DELETE."""
    change = {"follow": accounts.follow, "unfollow": accounts.unfollow}.get(action)
    if change is None:
        raise ApiError(422, detail="Choose to follow or unfollow.", fields={"action": "follow or unfollow"})
    await change(db, catalogue, user_id, slug)


async def shows_page(request: Request) -> Response:
    """GET lists the shows; POST follows or unfollows one, and a problem is shown on the page, never as JSON."""
    caller = await page_caller(request)
    db, catalogue = request.state.db, request.state.catalogue
    follows = (request.state.me or {}).get("follows", [])  # read with the caller, for the layout's unread badge
    if request.method == "GET":
        return render(request, "shows/index.html", {"shows": await accounts.shows(catalogue, follows)})
    fields = await read_form(request, "show", "action")
    try:
        await _form_change(db, catalogue, caller.user_id, fields["action"], fields["show"])
    except ApiError as error:  # nothing changed: the follows read with the caller still hold
        context = {"shows": await accounts.shows(catalogue, follows), "error": error}
        return render(request, "shows/index.html", context, status_code=error.status)
    return redirect(request, "/shows")


routes = [
    Route("/api/auth/register", api_register, methods=["POST"]),
    Route("/api/auth/login", api_login, methods=["POST"]),
    Route("/api/auth/logout", api_logout, methods=["POST"]),
    Route("/api/me", api_me),
    Route("/api/shows", api_shows),
    Route("/api/me/follows/{slug}", api_follow, methods=["PUT", "DELETE"]),
    Route("/api/me/read", api_read, methods=["POST"]),
    Route("/api/me/tokens", api_create_token, methods=["POST"]),
    Route("/api/me/tokens", api_tokens, methods=["GET"]),
    Route("/api/me/tokens/{name}", api_revoke_token, methods=["DELETE"]),
    Route("/", home),
    Route("/login", account_page, methods=["GET", "POST"]),
    Route("/register", account_page, methods=["GET", "POST"]),
    Route("/logout", logout_page, methods=["POST"]),
    Route("/shows", shows_page, methods=["GET", "POST"]),
]
app = create_app("auth", routes)
