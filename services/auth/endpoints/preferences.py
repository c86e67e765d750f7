"""Preferences: the JSON API and the /preferences page (templates/preferences/), which also holds the email
section and the account's deletion; the logic is services/auth/preferences.py."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from services.auth import addresses, api_docs, own_data, preferences
from services.auth.endpoints.accounts import client_address, logged_out
from services.auth.state import AuthRequest
from shared.auth import require_caller
from shared.body import read_object
from shared.errors import ApiError
from shared.openapi import ApiRoute
from shared.pages import Viewer, page_viewer, read_form, redirect, render
from shared.preferences import ZONES, preferences_of
from shared.responses import JSONResponse
from shared.updates import personal_topics


async def api_preferences(request: AuthRequest) -> Response:
    caller = await require_caller(request)
    state = request.state
    user, titles = await state["users"](caller.user_id), await state["catalogue"].titles()
    return JSONResponse(preferences.shown(user, titles, await personal_topics(state["db"], caller.user_id)))


async def api_change_preferences(request: AuthRequest) -> Response:
    caller = await require_caller(request)
    body = await read_object(request)
    state = request.state
    return JSONResponse(await preferences.change(state["db"], state["catalogue"], caller.user_id, body))


async def preferences_form(
    request: AuthRequest,
    viewer: Viewer,
    values: dict[str, str] | None = None,
    error: ApiError | None = None,
    email_error: ApiError | None = None,
    topics: Mapping[str, str] | None = None,
) -> Response:
    """The form with `values` (what was typed, when it was refused with `error`), or else the stored preferences; the
    email section with its state, and `email_error` when what was asked of it was refused. `topics`: the user's
    personal topics, when this request has read them already."""
    user, titles = await request.state["users"](viewer.caller.user_id) or {}, await request.state["catalogue"].titles()
    follows = viewer.me["follows"]  # the followed shows of the catalogue: a show gone from it takes no level
    if topics is None:
        topics = await personal_topics(request.state["db"], viewer.caller.user_id)
    personal = preferences.listed(topics, follows)
    context = {
        "values": values or preferences.form_values(preferences_of(user), [*follows, *personal]), "error": error,
        "levels": preferences.MEANINGS, "zones": ZONES, "follows": follows,
        "shows": titles,
        "personal": personal,
        "zone_chosen": "time_zone" in (user.get("preferences") or {}),  # else the page's script offers the browser's
        "email": await addresses.status_of(request.state["db"], viewer.caller.user_id), "email_error": email_error,
    }  # fmt: skip
    failed = error or email_error
    response = render(request, viewer, "preferences/index.html", context, status_code=failed.status if failed else 200)
    response.headers.update(failed.headers if failed else {})
    return response


async def _delete_account(request: AuthRequest, viewer: Viewer, password: str, topics: Mapping[str, str]) -> Response:
    try:
        await own_data.delete(request.state, viewer.caller, password, client_address(request))
    except ApiError as error:
        return await preferences_form(request, viewer, error=error, topics=topics)
    response = redirect(request, "/", flash="Your account is deleted. Your updates stay, by a deleted user.")
    return await logged_out(request, None, response)


async def preferences_page(request: AuthRequest) -> Response:
    """GET shows the form; POST saves it as PUT /api/me/preferences would, and a refusal re-renders it with what was
    typed and each field's problem beside it. The account's deletion is a POST here too (action=delete), with the
    password, as DELETE /api/me."""
    viewer = await page_viewer(request)
    if request.method == "GET":
        return await preferences_form(request, viewer)
    state = request.state
    follows = viewer.me["follows"]
    topics = await personal_topics(state["db"], viewer.caller.user_id)  # once: the form's fields, its check, a refusal
    slugs = [*follows, *preferences.listed(topics, follows)]
    form = await read_form(request, "action", "password", *preferences.form_names(slugs))
    if form["action"] == "delete":
        return await _delete_account(request, viewer, form["password"], topics)
    change = preferences.from_form(form, slugs)
    try:
        await preferences.change(state["db"], state["catalogue"], viewer.caller.user_id, change, topics)
    except ApiError as error:
        return await preferences_form(request, viewer, form, error, topics=topics)
    return redirect(request, "/preferences", flash="Your preferences are saved.")


routes: list[BaseRoute] = [
    ApiRoute("/api/me/preferences", api_preferences, "GET", api_docs.preferences),
    ApiRoute("/api/me/preferences", api_change_preferences, "PUT", api_docs.change_preferences),
    Route("/preferences", preferences_page, methods=["GET", "POST"]),
]
