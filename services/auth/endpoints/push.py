"""Web Push: the key browsers subscribe with, a user's devices, and the service worker (web/static/sw.js); the
logic is services/auth/devices.py, the sending services/auth/push.py."""

from __future__ import annotations

from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from services.auth import api_docs, devices
from services.auth.state import AuthRequest
from shared.auth import require_caller
from shared.body import read_object
from shared.openapi import ApiRoute
from shared.responses import JSONResponse
from shared.settings import ROOT

SERVICE_WORKER = ROOT / "web" / "static" / "sw.js"


async def api_push_key(request: AuthRequest) -> Response:
    return JSONResponse({"key": request.state["push_key"]})


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


routes: list[BaseRoute] = [
    ApiRoute("/api/push/key", api_push_key, "GET", api_docs.push_key),
    ApiRoute("/api/me/push", api_add_device, "POST", api_docs.add_device),
    ApiRoute("/api/me/push", api_devices, "GET", api_docs.devices),
    ApiRoute("/api/me/push/{id}", api_remove_device, "DELETE", api_docs.remove_device),
    Route("/sw.js", service_worker),
]
