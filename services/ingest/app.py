"""The ingest service: show updates from scripts (JSON, Bearer token or cookie) and from the publish page."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.ingest.retention import retention
from services.ingest.updates import KEY_HEADER, Updates
from shared.app import create_app
from shared.auth import Caller, require_caller
from shared.body import drain, read_fields
from shared.errors import ApiError
from shared.pages import page_viewer, read_form, redirect, render
from shared.state import Core
from shared.updates import MAX_TEXT


class Ingest(Core):
    updates: Updates


IngestRequest = Request[Ingest]


async def require_author(request: IngestRequest) -> Caller:
    """Who is publishing, decided before the body is read; a refused body is drained so the 401 arrives intact."""
    try:
        return await require_caller(request, allow_bearer=True)
    except ApiError:
        await drain(request)
        raise


async def post_update(request: IngestRequest) -> Response:
    author = await require_author(request)
    fields = await read_fields(request, "show", "text")
    update = await request.state["updates"].publish(author, fields, request.headers.get(KEY_HEADER))
    return JSONResponse(update, status_code=201)


async def get_updates(request: IngestRequest) -> Response:
    await require_caller(request, allow_bearer=True)
    query = request.query_params
    page = await request.state["updates"].page(query.get("show", ""), query.get("after", ""), query.get("limit", ""))
    return JSONResponse(page)


async def publish_page(request: IngestRequest) -> Response:
    """GET shows the form; POST goes through the same publish as the API, and errors keep what was typed."""
    viewer = await page_viewer(request)
    store = request.state["updates"]
    form = {"shows": await store.catalogue.titles(), "max_text": MAX_TEXT}
    if request.method == "GET":
        return render(request, viewer, "publish/index.html", {**form, "show": "", "text": ""})
    fields = await read_form(request, "show", "text")
    try:
        update = await store.publish(viewer.caller, fields, None)
    except ApiError as error:
        return render(request, viewer, "publish/index.html", {**form, **fields, "error": error}, error.status)
    return redirect(request, "/publish", flash=f"Published update #{update['seq']} for {update['title']}.")


@contextlib.asynccontextmanager
async def storing(core: Core) -> AsyncIterator[dict[str, Updates]]:
    """One Updates per process, so that all its concurrent publishes can share their writes."""
    yield {"updates": Updates(core["db"], core["catalogue"])}


routes = [
    Route("/api/updates", post_update, methods=["POST"]),
    Route("/api/updates", get_updates, methods=["GET"]),
    Route("/publish", publish_page, methods=["GET", "POST"]),
]
extensions = [storing, retention]
app = create_app("ingest", routes, extensions=extensions)
