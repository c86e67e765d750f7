"""The ingest service: show updates from scripts (JSON, Bearer token or cookie) and from the publish page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.ingest import updates
from shared.app import create_app
from shared.auth import Caller, require_caller
from shared.body import drain, read_fields
from shared.errors import ApiError
from shared.pages import page_caller, read_form, redirect, render
from shared.updates import MAX_TEXT


async def require_author(request: Request) -> Caller:
    """Who is publishing, decided before the body is read; a refused body is drained so the 401 arrives intact."""
    try:
        return await require_caller(request, allow_bearer=True)
    except ApiError:
        await drain(request)
        raise


async def post_update(request: Request) -> Response:
    author = await require_author(request)
    fields = await read_fields(request, "show", "text")
    update = await updates.publish(request.state.db, author, fields, request.headers.get(updates.KEY_HEADER))
    return JSONResponse(update, status_code=201)


async def get_updates(request: Request) -> Response:
    await require_caller(request, allow_bearer=True)
    query = request.query_params
    page = await updates.page(request.state.db, query.get("show", ""), query.get("after", ""), query.get("limit", ""))
    return JSONResponse(page)


async def publish_page(request: Request) -> Response:
    """GET shows the form; POST goes through the same publish as the API, and errors keep what was typed."""
    author = await page_caller(request)
    db = request.state.db
    form = {"shows": await updates.catalogue(db), "max_text": MAX_TEXT}
    if request.method == "GET":
        return render(request, "publish/index.html", {**form, "show": "", "text": ""})
    fields = await read_form(request, "show", "text")
    try:
        update = await updates.publish(db, author, fields, None)
    except ApiError as error:
        return render(request, "publish/index.html", {**form, **fields, "error": error}, error.status)
    return redirect(request, "/publish", flash=f"Published update #{update['seq']} for {update['title']}.")


routes = [
    Route("/api/updates", post_update, methods=["POST"]),
    Route("/api/updates", get_updates, methods=["GET"]),
    Route("/publish", publish_page, methods=["GET", "POST"]),
]
app = create_app("ingest", routes)
