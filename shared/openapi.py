"""A service's OpenAPI 3.1 document, served at /api/openapi.json and assembled from its routes: each route of the
JSON API and of the feeds is an ApiRoute, declared with its operation. The all-in-one app, given every service's
routes, serves the union. Error answers, the two ways to authenticate and the named schemas are written once here
and in shared/schemas.py; each service's operations live in services/<name>/api_docs.py."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from importlib.metadata import version
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from shared.auth import SAFE_METHODS
from shared.body import MAX_BODY
from shared.responses import END
from shared.schemas import SCHEMAS, Schema, ref

Operation = dict[str, Any]
PATH = "/api/openapi.json"

# Who may call: alternatives, any one of which is enough ({} is "nobody in particular").
SESSION: list[dict[str, list[str]]] = [{"session": []}]
TOKEN_OR_SESSION: list[dict[str, list[str]]] = [{"token": []}, {"session": []}]
MAYBE_SESSION: list[dict[str, list[str]]] = [{"session": []}, {}]
ANYONE: list[dict[str, list[str]]] = []

SECURITY_SCHEMES = {
    "session": {
        "type": "apiKey", "in": "cookie", "name": "gossip_session",
        "description": "The signed session cookie that register and login set; `__Host-gossip_session` over HTTPS. "
                       "A POST with it must carry `Content-Type: application/json`, even with no body: a cross-site "
                       "form cannot send that.",
    },
    "token": {
        "type": "http", "scheme": "bearer", "bearerFormat": "gsp_...",
        "description": "An API token from POST /api/me/tokens, for scripts. Refused from the request after it is "
                       "revoked, or once it has expired.",
    },
}  # fmt: skip

REFUSALS = {
    400: "The body is not valid JSON, not UTF-8, or not a JSON object (`invalid_json`, `bad_encoding`).",
    401: "No valid session cookie (or API token, where one is accepted).",
    403: "Not the caller's to do; or a change sent with the session cookie from another site (`cross_site`).",
    404: "No such resource.",
    409: "Taken already.",
    413: f"The body is over {MAX_BODY // 1024} KiB.",
    415: "The body is not `application/json`; with a session cookie, a POST must say so even with no body.",
    422: "A field, parameter or header is wrong; `fields` names each one.",
    429: "Too many attempts; try again after `Retry-After` seconds.",
    503: "Busy: no room for this now; try again after `Retry-After` seconds.",
}
RETRY_AFTER = {"Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"},
                               "description": "Seconds to wait."}}  # fmt: skip
SET_COOKIE = {"Set-Cookie": {"required": True, "schema": {"type": "string"}, "description": "The session cookie."}}


def json_content(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def request_body(schema: Schema, description: str = "", *, required: bool = True) -> dict[str, Any]:
    """A JSON request body. Unknown properties are ignored, not refused."""
    return {"required": required, "description": description, "content": json_content(schema)}


def answer(
    description: str,
    schema: Schema | None = None,
    *,
    headers: Mapping[str, Any] | None = None,
    links: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A successful answer: JSON with `schema`, or no content."""
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response["content"] = json_content(schema)
    if headers:
        response["headers"] = dict(headers)
    if links:
        response["links"] = dict(links)
    return response


def refusals(*statuses: int, **descriptions: str) -> dict[int, Any]:
    """Error answers, each the one JSON error shape. `descriptions` override the usual ones (key: `_409`)."""
    found: dict[int, Any] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": descriptions.get(f"_{status}", REFUSALS[status]),
            "content": json_content(ref("Error")),
        }
        if status in (429, 503):
            response["headers"] = RETRY_AFTER
        found[status] = response
    return found


def operation(
    summary: str,
    security: list[dict[str, list[str]]],
    responses: Mapping[int, Any],
    *,
    request: dict[str, Any] | None = None,
    parameters: Sequence[dict[str, Any]] = (),
    description: str = "",
) -> Operation:
    found: Operation = {"summary": summary, "security": security}
    if description:
        found["description"] = description
    if parameters:
        found["parameters"] = list(parameters)
    if request is not None:
        found["requestBody"] = request
    found["responses"] = {str(status): response for status, response in responses.items()}
    return found


class ApiRoute(Route):
    """A route of the JSON API or a feed: one method, and the operation that documents it, declared together so
    that neither goes without the other. Its operationId is the endpoint's name."""

    def __init__(self, path: str, endpoint: Callable[..., Any], method: str, documented: Operation) -> None:
        super().__init__(path, endpoint, methods=[method])
        self.method = method.lower()
        self.operation: Operation = {"operationId": endpoint.__name__, **documented}
        if method not in SAFE_METHODS and {"session": []} in documented["security"]:
            cross_site = {str(status): answer for status, answer in refusals(403).items()}
            self.operation["responses"] = {**cross_site, **documented["responses"]}  # shared/auth.py refuses them


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "$ref" and isinstance(inner, str):
                yield inner.rsplit("/", 1)[-1]
            else:
                yield from _refs(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _refs(inner)


def _used_schemas(paths: Mapping[str, Any]) -> dict[str, Schema]:
    """The named schemas the operations refer to, and those they refer to in turn: a service lists only its own."""
    used: set[str] = set()
    pending = list(_refs(paths))
    while pending:
        if (name := pending.pop()) not in used:
            used.add(name)
            pending.extend(_refs(SCHEMAS[name]))
    return {name: schema for name, schema in SCHEMAS.items() if name in used}


def openapi_path(path: str) -> str:
    """Starlette's `{seq:int}` is OpenAPI's `{seq}`."""
    return re.sub(r"{(\w+):\w+}", r"{\1}", path)


def _linked_within(operation: Operation, ids: set[str]) -> Operation:
    """A link to another service's operation stays only in a document that has it (the all-in-one app's)."""
    responses = {}
    for status, response in operation["responses"].items():
        links = {name: link for name, link in response.get("links", {}).items() if link["operationId"] in ids}
        response = {key: value for key, value in response.items() if key != "links"}
        responses[status] = {**response, "links": links} if links else response
    return {**operation, "responses": responses}


def document(name: str, routes: Iterable[BaseRoute]) -> dict[str, Any]:
    served = [route for route in routes if isinstance(route, ApiRoute)]
    ids = {route.operation["operationId"] for route in served}
    paths: dict[str, dict[str, Operation]] = {}
    for route in served:
        paths.setdefault(openapi_path(route.path), {})[route.method] = _linked_within(route.operation, ids)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Gossip" if name == "gossip" else f"Gossip {name}",
            "version": version("gossip"),
            "description": "TV-show updates, published by scripts and pages and delivered live over Server-Sent "
                           "Events. Errors are always JSON `{\"error\", \"detail\", \"fields\"}`.",
        },
        "paths": paths,
        "components": {"schemas": _used_schemas(paths), "securitySchemes": SECURITY_SCHEMES},
    }  # fmt: skip


def encoded(name: str, routes: Iterable[BaseRoute]) -> bytes:
    """Ending as every JSON answer does (shared/responses.py), whether a service serves it or the gateway serves the
    file services/all/openapi.py writes."""
    return json.dumps(document(name, routes), ensure_ascii=False).encode() + END


def document_route(name: str, routes: Sequence[BaseRoute]) -> ApiRoute:
    """GET /api/openapi.json: the document of `routes` and of itself, encoded once."""
    served = b""

    async def openapi(request: Request[Any]) -> Response:
        return Response(served, media_type="application/json")

    route = ApiRoute(PATH, openapi, "GET", SELF)
    served = encoded(name, [*routes, route])
    return route


SELF = operation(
    "This document", ANYONE, {200: answer("The OpenAPI 3.1 document of the service that answers.", {"type": "object"})}
)
