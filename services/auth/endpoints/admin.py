"""The operator console: the /admin page (templates/admin/) and its API, for ADMIN_USERS only, which AdminGate
checks once for every path under them; the logic is services/auth/console.py."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import URLPath
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound, Route
from starlette.types import Receive, Scope, Send

from services.auth import api_docs, console
from services.auth.state import AuthRequest
from shared.auth import require_caller, session_holder
from shared.body import read_object
from shared.db import MAX_INT, utcnow
from shared.errors import ApiError
from shared.openapi import ApiRoute
from shared.pages import page_viewer, render
from shared.responses import JSONResponse

PREFIXES = ("/admin", "/api/admin")
PASSED = "gossip.admin"  # in the scope of a request the gate has let through


def _under(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in PREFIXES)


class AdminGate(BaseRoute):
    """Every path under PREFIXES, whatever the method and with or without a trailing slash, meets this first: anyone
    but an admin (ADMIN_USERS), signed in or not, from this site or another, is told there is nothing here, the 404
    of a path that does not exist. Routing would otherwise tell them more before any endpoint could check: a 405
    naming the methods a path takes, a 307 to the path without its slash. An admin's request is routed again, past
    the gate, and gets what routing gives (those 405s and 307s included); their POSTs must then be JSON with the
    cookie, as across the API, and from this site (require_caller)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope.get(PASSED) or not _under(scope["path"]):
            return Match.NONE, {}
        return Match.FULL, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request: AuthRequest = Request(scope, receive)
        holder = await session_holder(request)
        if holder is None or not console.is_admin(request.state["settings"].admin_users, holder.username):
            raise ApiError(404, detail="Not Found")
        scope[PASSED] = True
        await scope["router"](scope, receive, send)


async def admin_page(request: AuthRequest) -> Response:
    """The page is a frame: its script fills it from GET /api/admin/console and sends the admin's actions."""
    return render(request, await page_viewer(request), "admin/index.html", {"minutes": console.MINUTES})


async def api_admin_console(request: AuthRequest) -> Response:
    found = await console.overview(request.state["db"], request.state["settings"], utcnow())
    return JSONResponse(found, headers={"cache-control": "no-store"})


async def api_admin_release(request: AuthRequest) -> Response:
    admin = await require_caller(request)
    await read_object(request)
    await console.release(request.state["db"], admin.username, request.path_params["document_id"], utcnow())
    return Response(status_code=204)


async def api_admin_retract(request: AuthRequest) -> Response:
    admin = await require_caller(request)
    raw = request.path_params["seq"]
    if not raw.isdigit() or int(raw) > MAX_INT:
        raise ApiError(422, detail="An update's seq is a whole number.", fields={"seq": "a whole number"})
    await console.retract(request.state["db"], admin.username, int(raw), utcnow())
    return Response(status_code=204)


async def api_admin_end_sessions(request: AuthRequest) -> Response:
    admin = await require_caller(request)
    state, username = request.state, request.path_params["username"]
    return JSONResponse({"ended": await console.end_sessions(state["db"], admin.username, username, utcnow())})


routes: list[BaseRoute] = [
    AdminGate(),
    Route("/admin", admin_page),
    ApiRoute("/api/admin/console", api_admin_console, "GET", api_docs.admin_console),
    ApiRoute("/api/admin/rejected/{document_id}/release", api_admin_release, "POST", api_docs.admin_release),
    ApiRoute("/api/admin/updates/{seq}", api_admin_retract, "DELETE", api_docs.admin_retract),
    ApiRoute("/api/admin/users/{username}/sessions", api_admin_end_sessions, "DELETE", api_docs.admin_end_sessions),
]
