"""The auth service: accounts, sessions, the show catalogue and follows — JSON API and pages."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from services.auth import (
    accounts,
    addresses,
    browsers,
    console,
    devices,
    links,
    operations,
    own_data,
    preferences,
    tokens,
)
from services.auth.mailer import announce, mailer_for
from services.auth.scheduler import scheduling
from services.auth.state import Auth
from services.auth.webpush import application_server_key
from shared.app import Extension, create_app
from shared.auth import (
    Caller,
    clear_session_cookie,
    cookie_caller,
    open_session,
    require_caller,
    revoke_previous_session,
    revoke_session,
    same_user,
    session_caller,
    set_session_cookie,
)
from shared.body import fields_of, read_body, read_fields, read_object
from shared.db import MAX_INT, utcnow
from shared.errors import ApiError
from shared.openapi import ApiRoute
from shared.pages import Viewer, optional_viewer, page_viewer, read_form, redirect, render, safe_next
from shared.preferences import preferences_of
from shared.settings import ROOT
from shared.state import Core

AuthRequest = Request[Auth]
Submit = Callable[[AuthRequest, dict[str, str]], Awaitable[dict[str, Any]]]
SERVICE_WORKER = ROOT / "web" / "static" / "sw.js"


def _address(request: AuthRequest) -> str:
    """The client's address; behind a trusted proxy, the one it forwarded (shared/proxies.py)."""
    return request.client.host if request.client else "unknown"


async def _logged_in(request: AuthRequest, user: dict[str, Any], response: Response) -> Response:
    """A new session in place of the browser's previous one, and the browser is remembered as one that signed in to
    this account (services/auth/browsers.py)."""
    state = request.state
    await revoke_previous_session(request)
    cookie = await open_session(state["db"], state["settings"], user["_id"], user["username"])
    set_session_cookie(request, response, cookie, state["settings"])
    browsers.remember(request, response, state["settings"], user["username_key"])
    return response


async def _logged_out(request: AuthRequest, caller: Caller | None, response: Response) -> Response:
    """Idempotent: logged out already is what was asked for, and the cookie is cleared either way."""
    if caller is not None and caller.session_key is not None:
        await revoke_session(request.state["db"], caller.session_key)
    clear_session_cookie(request, response)
    return response


async def api_register(request: AuthRequest) -> Response:
    fields = await read_fields(request, "username", "password")
    user = await accounts.register(request.state, fields["username"], fields["password"], _address(request))
    return await _logged_in(request, user, JSONResponse({"username": user["username"]}, status_code=201))


async def api_login(request: AuthRequest) -> Response:
    fields = await read_fields(request, "username", "password")
    user = await _authenticate(request, fields)
    return await _logged_in(request, user, JSONResponse({"username": user["username"]}))


async def api_logout(request: AuthRequest) -> Response:
    """Takes JSON like every POST of the API, though it reads none: one rule, which a cross-site form cannot meet."""
    caller = await cookie_caller(request)
    await read_object(request)
    return await _logged_out(request, caller, Response(status_code=204))


async def api_me(request: AuthRequest) -> Response:
    caller = await require_caller(request)
    user = await request.state["users"](caller.user_id)
    return JSONResponse(await accounts.me(request.state["db"], user))


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
    same_user(caller, body.get("user"))
    await accounts.mark_read(request.state["db"], caller.user_id, body.get("seq"))
    return Response(status_code=204)


async def api_create_token(request: AuthRequest) -> Response:
    caller = await require_caller(request)  # the cookie only: a token must not mint more tokens
    body = await read_object(request)
    name = fields_of(body, "name")["name"]
    expires_at = tokens.expiry(body.get("expires_in_days"), body.get("expires_at"), utcnow())
    most = request.state["settings"].tokens_per_user
    return JSONResponse(await tokens.create(request.state["db"], caller, name, most, expires_at), status_code=201)


async def api_tokens(request: AuthRequest) -> Response:
    caller = await require_caller(request)
    return JSONResponse(await tokens.listing(request.state["db"], caller.user_id))


async def api_revoke_token(request: AuthRequest) -> Response:
    caller = await require_caller(request)
    await tokens.revoke(request.state["db"], caller.user_id, request.path_params["name"])
    return Response(status_code=204)


async def api_push_key(request: AuthRequest) -> Response:
    return JSONResponse({"key": application_server_key(request.state["settings"])})


async def api_add_device(request: AuthRequest) -> Response:
    caller = await require_caller(request)
    allow_http = request.state["settings"].push_allow_http_loopback
    endpoint, keys, name = devices.check(await read_object(request), allow_http)
    name = name or devices.device_name(request.headers.get("user-agent", ""))
    device_id, new = await devices.add(request.state["db"], caller.user_id, endpoint, keys, name)
    return JSONResponse({"id": device_id}, status_code=201 if new else 200)


async def api_devices(request: AuthRequest) -> Response:
    caller = await require_caller(request)
    return JSONResponse(await devices.listing(request.state["db"], caller.user_id))


async def api_remove_device(request: AuthRequest) -> Response:
    caller = await require_caller(request)
    await devices.remove(request.state["db"], caller.user_id, request.path_params["id"])
    return Response(status_code=204)


async def service_worker(request: AuthRequest) -> Response:
    """At the root, so that its scope is the whole site; never cached, so that a new version reaches browsers."""
    return FileResponse(SERVICE_WORKER, media_type="application/javascript", headers={"Cache-Control": "no-cache"})


async def api_email(request: AuthRequest) -> Response:
    caller = await require_caller(request)
    return JSONResponse(await addresses.status_of(request.state["db"], caller.user_id))


async def api_set_email(request: AuthRequest) -> Response:
    caller = await require_caller(request)
    fields = await read_fields(request, "email")
    return JSONResponse(await addresses.change(request.state, caller.user_id, fields["email"]))


async def api_remove_email(request: AuthRequest) -> Response:
    caller = await require_caller(request)
    await addresses.remove(request.state["db"], caller.user_id)
    return Response(status_code=204)


async def api_digest_on(request: AuthRequest) -> Response:
    caller = await require_caller(request)
    await addresses.set_digest(request.state["db"], caller.user_id, on=True)
    return Response(status_code=204)


async def api_digest_off(request: AuthRequest) -> Response:
    caller = await require_caller(request)
    await addresses.set_digest(request.state["db"], caller.user_id, on=False)
    return Response(status_code=204)


async def api_preferences(request: AuthRequest) -> Response:
    caller = await require_caller(request)
    return JSONResponse(preferences.shown(await request.state["users"](caller.user_id)))


async def api_change_preferences(request: AuthRequest) -> Response:
    caller = await require_caller(request)
    body = await read_object(request)
    state = request.state
    return JSONResponse(await preferences.change(state["db"], state["catalogue"], caller.user_id, body))


async def api_export(request: AuthRequest) -> Response:
    caller = await require_caller(request)
    found = await own_data.export(request.state["db"], request.state["catalogue"], caller.user_id)
    headers = {
        "content-disposition": f'attachment; filename="gossip-{caller.username}.json"',
        "cache-control": "no-store",  # one person's data: no cache on the way keeps a copy
    }
    return JSONResponse(found, headers=headers)


async def api_delete_account(request: AuthRequest) -> Response:
    caller = await require_caller(request)
    fields = await read_fields(request, "password")
    await own_data.delete(request.state, caller, fields["password"], _address(request))
    return await _logged_out(request, None, Response(status_code=204))


async def home(request: AuthRequest) -> Response:
    """The layout's `me` is all it reads; the API tokens section says what a token's name may be."""
    page = {"token_rule": tokens.RULE, "token_max": tokens.NAME_MAX,
            "token_days_rule": tokens.DAYS_RULE, "token_days_max": tokens.DAYS_MAX}  # fmt: skip
    return render(request, await optional_viewer(request), "home.html", page)


async def api_page(request: AuthRequest) -> Response:
    """The API document, readable: Swagger UI from this origin (the pages' CSP allows no other)."""
    return render(request, await optional_viewer(request), "api/index.html")


async def _authenticate(request: AuthRequest, fields: dict[str, str]) -> dict[str, Any]:
    device = browsers.remembered(request, request.state["settings"])
    return await accounts.authenticate(request.state, fields["username"], fields["password"], _address(request), device)


async def _register(request: AuthRequest, fields: dict[str, str]) -> dict[str, Any]:
    return await accounts.register(request.state, fields["username"], fields["password"], _address(request))


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
    return await _logged_in(request, user, redirect(request, target))


async def login_page(request: AuthRequest) -> Response:
    return await _account_page(request, "auth/login.html", _authenticate)


async def register_page(request: AuthRequest) -> Response:
    return await _account_page(request, "auth/register.html", _register, accounts.RULES)


async def logout_page(request: AuthRequest) -> Response:
    await read_form(request)
    response = redirect(request, "/login", flash="You are logged out.")
    return await _logged_out(request, await session_caller(request), response)


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


async def verify_page(request: AuthRequest) -> Response:
    """The link mailed to check an address: GET says what it would do and asks (a mail program's link scanner that
    opens it verifies nothing); the page's button POSTs, CSRF-checked like every form, and verifies. Works signed in
    or not, since it may be opened on another device."""
    viewer, token, state = await optional_viewer(request), request.query_params.get("token", ""), request.state
    try:
        if request.method != "POST":  # GET, and HEAD, which a link checker may send
            outcome = await addresses.pending(state["db"], token, state["settings"])
            return render(request, viewer, "email/verify.html", {"outcome": outcome, "token": token})
        await read_form(request)
        outcome = await addresses.verify(state["db"], token, state["settings"])
    except ApiError as error:
        return render(request, viewer, "email/verify.html", {"error": error}, status_code=error.status)
    return render(request, viewer, "email/verify.html", {"outcome": outcome})


async def unsubscribe_page(request: AuthRequest) -> Response:
    """GET asks (a link scanner that follows it changes nothing); POST turns the digest off, from the page's button
    or from a mail program's one-click (RFC 8058: `List-Unsubscribe=One-Click`, form-encoded or multipart). The
    signed token in the address is the authority, so POST needs neither a session nor a CSRF token, and its body is
    read, bounded, but not required to parse."""
    token, settings = request.query_params.get("token", ""), request.state["settings"]
    try:
        if request.method != "POST":  # GET, and HEAD, which a link checker may send
            links.unsubscribe_claim(settings, token)
            return render(request, await optional_viewer(request), "email/unsubscribe.html", {"token": token})
        await read_body(request)
        still = await addresses.unsubscribe(request.state["db"], token, settings)
    except ApiError as error:
        context = {"error": error}
        return render(request, None, "email/unsubscribe.html", context, status_code=error.status)
    return render(request, None, "email/unsubscribe.html", {"done": True, "still": still})


async def email_form(request: AuthRequest) -> Response:
    """The Preferences page's email section: the buttons send action=save (with email), resend, remove, digest_on
    or digest_off; the outcome is said on the page it came from, and what is wrong in its section, not as JSON."""
    viewer = await page_viewer(request)
    fields = await read_form(request, "action", "email")
    state, user_id = request.state, viewer.caller.user_id
    said = {
        "save": "Check your mail: a link to confirm the address is on its way.",
        "resend": "Sent again: check your mail.",
        "remove": "Your address is removed.", "digest_on": "The daily digest is on again.",
        "digest_off": "The daily digest is off.",
    }  # fmt: skip
    try:
        match fields["action"]:
            case "save":
                if (await addresses.change(state, user_id, fields["email"]))["verified"]:
                    said["save"] = "That address is verified already."
            case "resend":
                await addresses.resend(state, user_id)
            case "remove":
                await addresses.remove(state["db"], user_id)
            case "digest_on" | "digest_off":
                await addresses.set_digest(state["db"], user_id, on=fields["action"] == "digest_on")
            case _:
                raise ApiError(422, detail="Choose what to do with your address.", fields={"action": "unknown"})
    except ApiError as error:  # the page again, the problem said in its email section
        return await _preferences_form(request, viewer, email_error=error)
    return redirect(request, "/preferences#email", flash=said[fields["action"]])


async def _preferences_form(
    request: AuthRequest,
    viewer: Viewer,
    values: dict[str, str] | None = None,
    error: ApiError | None = None,
    email_error: ApiError | None = None,
) -> Response:
    """The form with `values` (what was typed, when it was refused with `error`), or else the stored preferences; the
    email section with its state, and `email_error` when what was asked of it was refused."""
    user = await request.state["users"](viewer.caller.user_id) or {}
    follows = viewer.me["follows"]
    context = {
        "values": values or preferences.form_values(preferences_of(user), follows), "error": error,
        "levels": preferences.MEANINGS, "zones": preferences.ZONES, "follows": follows,
        "shows": await request.state["catalogue"].titles(),
        "zone_chosen": "time_zone" in (user.get("preferences") or {}),  # else the page's script offers the browser's
        "email": await addresses.status_of(request.state["db"], viewer.caller.user_id), "email_error": email_error,
    }  # fmt: skip
    failed = error or email_error
    response = render(request, viewer, "preferences/index.html", context, status_code=failed.status if failed else 200)
    response.headers.update(failed.headers if failed else {})
    return response


async def _delete_account(request: AuthRequest, viewer: Viewer, password: str) -> Response:
    try:
        await own_data.delete(request.state, viewer.caller, password, _address(request))
    except ApiError as error:
        return await _preferences_form(request, viewer, error=error)
    response = redirect(request, "/", flash="Your account is deleted. Your updates stay, by a deleted user.")
    return await _logged_out(request, None, response)


async def preferences_page(request: AuthRequest) -> Response:
    """GET shows the form; POST saves it as PUT /api/me/preferences would, and a refusal re-renders it with what was
    typed and each field's problem beside it. The account's deletion is a POST here too (action=delete), with the
    password, as DELETE /api/me."""
    viewer = await page_viewer(request)
    if request.method == "GET":
        return await _preferences_form(request, viewer)
    follows = viewer.me["follows"]
    form = await read_form(request, "action", "password", *preferences.form_names(follows))
    if form["action"] == "delete":
        return await _delete_account(request, viewer, form["password"])
    state, change = request.state, preferences.from_form(form, follows)
    try:
        await preferences.change(state["db"], state["catalogue"], viewer.caller.user_id, change)
    except ApiError as error:
        return await _preferences_form(request, viewer, form, error)
    return redirect(request, "/preferences", flash="Your preferences are saved.")


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


routes = [
    ApiRoute("/api/auth/register", api_register, "POST", operations.register),
    ApiRoute("/api/auth/login", api_login, "POST", operations.login),
    ApiRoute("/api/auth/logout", api_logout, "POST", operations.logout),
    ApiRoute("/api/me", api_me, "GET", operations.me),
    ApiRoute("/api/shows", api_shows, "GET", operations.shows),
    ApiRoute("/api/shows/{slug}/presence", api_show_presence, "GET", operations.show_presence),
    ApiRoute("/api/me/follows/{slug}", api_follow, "PUT", operations.follow),
    ApiRoute("/api/me/follows/{slug}", api_unfollow, "DELETE", operations.unfollow),
    ApiRoute("/api/me/read", api_read, "POST", operations.read),
    ApiRoute("/api/me/tokens", api_create_token, "POST", operations.create_token),
    ApiRoute("/api/me/tokens", api_tokens, "GET", operations.tokens),
    ApiRoute("/api/me/tokens/{name}", api_revoke_token, "DELETE", operations.revoke_token),
    ApiRoute("/api/push/key", api_push_key, "GET", operations.push_key),
    ApiRoute("/api/me/push", api_add_device, "POST", operations.add_device),
    ApiRoute("/api/me/push", api_devices, "GET", operations.devices),
    ApiRoute("/api/me/push/{id}", api_remove_device, "DELETE", operations.remove_device),
    Route("/sw.js", service_worker),
    ApiRoute("/api/me", api_delete_account, "DELETE", operations.delete_account),
    ApiRoute("/api/me/export", api_export, "GET", operations.export),
    ApiRoute("/api/me/email", api_email, "GET", operations.email),
    ApiRoute("/api/me/email", api_set_email, "PUT", operations.set_email),
    ApiRoute("/api/me/email", api_remove_email, "DELETE", operations.remove_email),
    ApiRoute("/api/me/email/digest", api_digest_on, "PUT", operations.digest_on),
    ApiRoute("/api/me/email/digest", api_digest_off, "DELETE", operations.digest_off),
    ApiRoute("/api/me/preferences", api_preferences, "GET", operations.preferences),
    ApiRoute("/api/me/preferences", api_change_preferences, "PUT", operations.change_preferences),
    Route("/", home),
    Route("/api", api_page),
    Mount("/static/swagger-ui", StaticFiles(packages=[("swagger_ui", "static")]), name="swagger-ui"),
    Route("/login", login_page, methods=["GET", "POST"]),
    Route("/register", register_page, methods=["GET", "POST"]),
    Route("/logout", logout_page, methods=["POST"]),
    Route("/shows", shows_page, methods=["GET", "POST"]),
    Route("/email", email_form, methods=["POST"]),
    Route("/email/verify", verify_page, methods=["GET", "POST"]),
    Route("/unsubscribe", unsubscribe_page, methods=["GET", "POST"]),
    Route("/preferences", preferences_page, methods=["GET", "POST"]),
    Route("/admin", admin_page),
    ApiRoute("/api/admin/console", api_admin_console, "GET", operations.admin_console),
    ApiRoute("/api/admin/rejected/{document_id}/release", api_admin_release, "POST", operations.admin_release),
    ApiRoute("/api/admin/updates/{seq}", api_admin_retract, "DELETE", operations.admin_retract),
    ApiRoute("/api/admin/users/{username}/sessions", api_admin_end_sessions, "DELETE", operations.admin_end_sessions),
]


@contextlib.asynccontextmanager
async def mailing(core: Core) -> AsyncIterator[dict[str, Any]]:
    """Where mail goes, said once in the log at startup."""
    mailer = mailer_for(core["settings"])
    announce(mailer)
    yield {"mailer": mailer}


extensions: list[Extension] = [mailing, scheduling]
app = create_app("auth", routes, extensions=extensions)
