"""A user's email address and the daily digest: the JSON API, the Preferences page's email form, and the pages
the mailed links open (templates/email/); the logic is services/auth/addresses.py and links.py."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from services.auth import addresses, api_docs, links
from services.auth.endpoints.preferences import preferences_form
from services.auth.state import AuthRequest
from shared.auth import require_caller
from shared.body import read_body, read_fields
from shared.errors import ApiError
from shared.openapi import ApiRoute
from shared.pages import optional_viewer, page_viewer, read_form, redirect, render
from shared.responses import JSONResponse


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
        return await preferences_form(request, viewer, email_error=error)
    return redirect(request, "/preferences#email", flash=said[fields["action"]])


routes: list[BaseRoute] = [
    ApiRoute("/api/me/email", api_email, "GET", api_docs.email),
    ApiRoute("/api/me/email", api_set_email, "PUT", api_docs.set_email),
    ApiRoute("/api/me/email", api_remove_email, "DELETE", api_docs.remove_email),
    ApiRoute("/api/me/email/digest", api_digest_on, "PUT", api_docs.digest_on),
    ApiRoute("/api/me/email/digest", api_digest_off, "DELETE", api_docs.digest_off),
    Route("/email", email_form, methods=["POST"]),
    Route("/email/verify", verify_page, methods=["GET", "POST"]),
    Route("/unsubscribe", unsubscribe_page, methods=["GET", "POST"]),
]
