"""Who is signed in, the show catalogue, follows and read marks: the JSON API and the /shows page
(templates/shows/); the logic is services/auth/accounts.py."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from services.auth import accounts, api_docs
from services.auth.state import AuthRequest
from shared.auth import require_caller, same_user, session_caller
from shared.body import fields_of, read_object
from shared.errors import ApiError
from shared.openapi import ApiRoute
from shared.pages import Viewer, page_viewer, read_form, redirect, render
from shared.responses import JSONResponse


async def api_me(request: AuthRequest) -> Response:
    caller = await require_caller(request)
    user = await request.state["users"](caller.user_id)
    return JSONResponse(await accounts.me(request.state["db"], request.state["catalogue"], user))


async def api_shows(request: AuthRequest) -> Response:
    caller = await session_caller(request)
    user = await request.state["users"](caller.user_id) if caller else None
    state = request.state
    return JSONResponse(await accounts.shows(state["db"], state["catalogue"], user["follows"] if user else []))


async def api_show_presence(request: AuthRequest) -> Response:
    state = request.state
    return JSONResponse(await accounts.watching(state["db"], state["catalogue"], request.path_params["slug"]))


async def api_follow(request: AuthRequest) -> Response:
    caller = await require_caller(request)
    await accounts.follow(request.state["db"], request.state["catalogue"], caller.user_id, request.path_params["slug"])
    return Response(status_code=204)


async def api_unfollow(request: AuthRequest) -> Response:
    caller = await require_caller(request)
    state = request.state
    await accounts.unfollow(state["db"], state["catalogue"], caller.user_id, request.path_params["slug"])
    return Response(status_code=204)


async def api_read(request: AuthRequest) -> Response:
    caller = await require_caller(request)
    body = await read_object(request)
    same_user(caller, fields_of(body, "user")["user"] if "user" in body else None)  # null is no name: 422
    await accounts.mark_read(request.state["db"], caller.user_id, body.get("seq"))
    return Response(status_code=204)


async def _shows_listing(request: AuthRequest, viewer: Viewer) -> list[dict[str, Any]]:
    """The follows were read with the viewer, for the layout's badge: the listing does not read the user again."""
    return await accounts.shows(request.state["db"], request.state["catalogue"], viewer.me["follows"])


async def shows_page(request: AuthRequest) -> Response:
    """GET lists the shows; POST follows or unfollows one (the form's buttons send action=follow or unfollow), and
    a problem is shown on the page, never as JSON."""
    viewer = await page_viewer(request)
    if request.method == "GET":
        return render(request, viewer, "shows/index.html", {"shows": await _shows_listing(request, viewer)})
    fields = await read_form(request, "show", "action")
    change = {"follow": accounts.follow, "unfollow": accounts.unfollow}.get(fields["action"])
    try:
        if change is None:
            raise ApiError(422, detail="Choose to follow or unfollow.", fields={"action": "follow or unfollow"})
        await change(request.state["db"], request.state["catalogue"], viewer.caller.user_id, fields["show"])
    except ApiError as error:  # nothing changed: the follows read with the viewer still hold
        context = {"shows": await _shows_listing(request, viewer), "error": error}
        return render(request, viewer, "shows/index.html", context, status_code=error.status)
    return redirect(request, "/shows")


routes: list[BaseRoute] = [
    ApiRoute("/api/me", api_me, "GET", api_docs.me),
    ApiRoute("/api/shows", api_shows, "GET", api_docs.shows),
    ApiRoute("/api/shows/{slug}/presence", api_show_presence, "GET", api_docs.show_presence),
    ApiRoute("/api/me/follows/{slug}", api_follow, "PUT", api_docs.follow),
    ApiRoute("/api/me/follows/{slug}", api_unfollow, "DELETE", api_docs.unfollow),
    ApiRoute("/api/me/read", api_read, "POST", api_docs.read),
    Route("/shows", shows_page, methods=["GET", "POST"]),
]
