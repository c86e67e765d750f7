"""Your data: its export, and the account's deletion through the API (the page's is on /preferences); the
logic is services/auth/own_data.py."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute

from services.auth import api_docs, own_data
from services.auth.endpoints.accounts import client_address, logged_out
from services.auth.state import AuthRequest
from shared.auth import require_caller
from shared.body import read_fields
from shared.openapi import ApiRoute
from shared.responses import JSONResponse


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
    await own_data.delete(request.state, caller, fields["password"], client_address(request))
    return await logged_out(request, None, Response(status_code=204))


routes: list[BaseRoute] = [
    ApiRoute("/api/me", api_delete_account, "DELETE", api_docs.delete_account),
    ApiRoute("/api/me/export", api_export, "GET", api_docs.export),
]
