"""The ingest service: show updates from scripts (JSON, Bearer token or cookie) and from the publish page."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.ingest import api_docs
from services.ingest.authors import remembering_tokens, require_author
from services.ingest.remembered import Remembered
from services.ingest.retention import retention
from services.ingest.updates import KEY_HEADER, Updates
from shared.app import create_app
from shared.auth import Caller
from shared.body import read_fields, whole_number
from shared.errors import ApiError
from shared.expiry import expiring
from shared.limits import Limit, Rate
from shared.openapi import ApiRoute
from shared.pages import Viewer, page_viewer, read_form, redirect, render
from shared.responses import JSONResponse
from shared.state import Core
from shared.tracing import tracer_of
from shared.updates import MAX_TEXT

PUBLISHING_TOO_FAST = "You are publishing or editing faster than the limit allows. Wait a moment and try again."


class Ingest(Core):
    tokens: Remembered  # API tokens, each one found trusted for a moment (authors.TOKEN_MAX_AGE)
    updates: Updates


IngestRequest = Request[Ingest]
MINE = 20  # of the caller's own updates on the publish page


async def post_update(request: IngestRequest) -> Response:
    author = await require_author(request)
    fields = await read_fields(request, "show", "text")
    update = await request.state["updates"].publish(author, fields, request.headers.get(KEY_HEADER))
    return JSONResponse(update, status_code=201)


async def patch_update(request: IngestRequest) -> Response:
    """The author's own update, with a new text; every open feed that carries it is told."""
    author = await require_author(request)
    fields = await read_fields(request, "text")
    edited = await request.state["updates"].edit(author, request.path_params["seq"], fields["text"])
    return JSONResponse(edited)


async def delete_update(request: IngestRequest) -> Response:
    """The author's own update, retracted: gone from history, and from every open page."""
    await request.state["updates"].retract(await require_author(request), request.path_params["seq"])
    return Response(status_code=204)


async def get_updates(request: IngestRequest) -> Response:
    caller = await require_author(request)
    query = request.query_params
    page = await request.state["updates"].page(
        caller.user_id, query.get("show", ""), query.get("after"), query.get("limit")
    )
    return JSONResponse(page)


async def _publish_form(request: IngestRequest, viewer: Viewer, context: dict[str, Any], status: int = 200) -> Response:
    """The form, and the caller's own recent updates to edit or retract."""
    store = request.state["updates"]
    form = {"shows": await store.catalogue.titles(), "max_text": MAX_TEXT, "show": "", "text": "",
            "mine": await store.mine(viewer.caller, MINE)}  # fmt: skip
    return render(request, viewer, "publish/index.html", {**form, **context}, status)


async def publish_page(request: IngestRequest) -> Response:
    """GET shows the form. POST publishes through the same publish as the API, or with action=edit or retract and
    a seq, edits or retracts one of the caller's own updates as the API does; errors keep what was typed."""
    viewer = await page_viewer(request)
    if request.method == "GET":  # ?show=: the show chosen last, kept for the next update
        return await _publish_form(request, viewer, {"show": request.query_params.get("show", "")})
    fields = await read_form(request, "action", "seq", "show", "text")
    try:
        flash = await _submit(request.state["updates"], viewer.caller, fields)
    except ApiError as error:
        failed = {"failed": fields["seq"]} if fields["action"] else {}
        return await _publish_form(request, viewer, {**fields, **failed, "error": error}, error.status)
    chosen = f"?{urlencode({'show': fields['show']})}" if not fields["action"] else ""
    return redirect(request, f"/publish{chosen}", flash=flash)


async def _submit(store: Updates, caller: Caller, fields: dict[str, str]) -> str:
    """Does what the form asked; returns the flash that says it is done."""
    if not fields["action"]:
        update = await store.publish(caller, fields, None)
        return f"Published update #{update['seq']} for {update['title']}."
    seq = whole_number("seq", fields["seq"]) or 0  # no seq: no such update
    if fields["action"] == "edit":
        await store.edit(caller, seq, fields["text"])
        return f"Update #{seq} is edited."
    if fields["action"] == "retract":
        await store.retract(caller, seq)
        return f"Update #{seq} is retracted."
    raise ApiError(422, detail="Choose to edit or retract.", fields={"action": "edit or retract"})


@contextlib.asynccontextmanager
async def storing(core: Core) -> AsyncIterator[dict[str, Updates]]:
    """One Updates per process, so that all its concurrent publishes can share their writes."""
    settings = core["settings"]
    rate = Rate(settings.publishes_per_author, settings.publish_window)
    publishing = Limit(core["buckets"], "publish", rate, PUBLISHING_TOO_FAST)
    yield {"updates": Updates(core["db"], core["catalogue"], publishing, tracer_of(core["tracer_provider"]))}


routes = [
    ApiRoute("/api/updates", post_update, "POST", api_docs.post_update),
    ApiRoute("/api/updates", get_updates, "GET", api_docs.get_updates),
    ApiRoute("/api/updates/{seq:int}", patch_update, "PATCH", api_docs.patch_update),
    ApiRoute("/api/updates/{seq:int}", delete_update, "DELETE", api_docs.delete_update),
    Route("/publish", publish_page, methods=["GET", "POST"]),
]
extensions = [remembering_tokens, storing, retention, expiring("spent_keys")]
app = create_app("ingest", routes, extensions=extensions)
