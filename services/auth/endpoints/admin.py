"""The operator console: the /admin page (templates/admin/) and its API, for ADMIN_USERS only; the logic is
services/auth/console.py."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from services.auth import api_docs, console
from services.auth.state import AuthRequest
from shared.auth import Caller, require_caller, session_caller
from shared.body import read_object
from shared.db import MAX_INT, utcnow
from shared.errors import ApiError
from shared.openapi import ApiRoute
from shared.pages import page_viewer, render


async def _admin(request: AuthRequest) -> Caller:
    """Anyone but an admin (ADMIN_USERS), signed in or not, is told there is nothing here: the console is not
    advertised. An admin's POST must then be JSON with the cookie, as across the API, and from this site."""
    caller = await session_caller(request)
    if caller is None or not console.is_admin(request.state["settings"].admin_users, caller.username):
        raise ApiError(404, detail="Not Found")
    return await require_caller(request)


async def admin_page(request: AuthRequest) -> Response:
    """The page is a frame: its script fills it from GET /api/admin/console and sends the admin's actions."""
    await _admin(request)
    return render(request, await page_viewer(request), "admin/index.html", {"minutes": console.MINUTES})


async def api_admin_console(request: AuthRequest) -> Response:
    await _admin(request)
    found = await console.overview(request.state["db"], request.state["settings"], utcnow())
    return JSONResponse(found, headers={"cache-control": "no-store"})


async def api_admin_release(request: AuthRequest) -> Response:
    admin = await _admin(request)
    await read_object(request)
    await console.release(request.state["db"], admin.username, request.path_params["document_id"], utcnow())
    return Response(status_code=204)


async def api_admin_retract(request: AuthRequest) -> Response:
    admin = await _admin(request)
    raw = request.path_params["seq"]
    if not raw.isdigit() or int(raw) > MAX_INT:
        raise ApiError(422, detail="An update's seq is a whole number.", fields={"seq": "a whole number"})
    await console.retract(request.state["db"], admin.username, int(raw), utcnow())
    return Response(status_code=204)


async def api_admin_end_sessions(request: AuthRequest) -> Response:
    admin = await _admin(request)
    state, username = request.state, request.path_params["username"]
    return JSONResponse({"ended": await console.end_sessions(state["db"], admin.username, username, utcnow())})


routes: list[BaseRoute] = [
    Route("/admin", admin_page),
    ApiRoute("/api/admin/console", api_admin_console, "GET", api_docs.admin_console),
    ApiRoute("/api/admin/rejected/{document_id}/release", api_admin_release, "POST", api_docs.admin_release),
    ApiRoute("/api/admin/updates/{seq}", api_admin_retract, "DELETE", api_docs.admin_retract),
    ApiRoute("/api/admin/users/{username}/sessions", api_admin_end_sessions, "DELETE", api_docs.admin_end_sessions),
]
