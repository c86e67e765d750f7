"""API tokens: create, list and revoke them (the list is on templates/home.html); the logic is
services/auth/tokens.py."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute

from services.auth import api_docs, tokens
from services.auth.state import AuthRequest
from shared.auth import require_caller
from shared.body import fields_of, read_object
from shared.db import utcnow
from shared.openapi import ApiRoute
from shared.responses import JSONResponse


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


routes: list[BaseRoute] = [
    ApiRoute("/api/me/tokens", api_create_token, "POST", api_docs.create_token),
    ApiRoute("/api/me/tokens", api_tokens, "GET", api_docs.tokens),
    ApiRoute("/api/me/tokens/{name}", api_revoke_token, "DELETE", api_docs.revoke_token),
]
