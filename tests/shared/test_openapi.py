"""The API document: every route of the JSON API and of the feeds is documented, in every app; the document is valid
OpenAPI 3.1; and the all-in-one app serves it at /api/openapi.json. (Schemathesis checks the answers against it:
tests/all/test_app.py; each service's own document: tests/ops/test_processes.py.)"""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema_rs
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR  # the OpenAPI 3.1 meta-schema
from starlette.routing import BaseRoute, Route

from services.all import app as everything
from services.auth import app as auth
from services.ingest import app as ingest
from services.stream import app as stream
from shared.openapi import PATH, ApiRoute, document, openapi_path

APPS = {"auth": auth, "ingest": ingest, "stream": stream, "gossip": everything}


def routes_of_the_api(routes: list[BaseRoute]) -> set[tuple[str, str]]:
    """Every path and method of an app that is part of the API or a feed, however it was declared."""
    return {
        (openapi_path(route.path), method.lower())
        for route in routes
        if isinstance(route, Route) and route.path.startswith(("/api/", "/events"))
        for method in (route.methods or set()) - {"HEAD"}  # Starlette's, for every GET
    }


def operations(found: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, methods in found["paths"].items() for method in methods}


@pytest.mark.parametrize("name", APPS)
def test_every_route_of_the_api_and_the_feeds_has_a_documented_operation(name: str) -> None:
    routes = APPS[name].app.routes
    assert routes_of_the_api(routes) == operations(document(name, routes))


def test_a_route_declared_without_its_operation_fails_the_contract() -> None:
    """What the test above catches: a plain Route where an ApiRoute belongs."""
    routes = [*ingest.app.routes, Route("/api/updates/{seq:int}/pin", ingest.post_update, methods=["PUT"])]
    assert routes_of_the_api(routes) - operations(document("ingest", routes)) == {("/api/updates/{seq}/pin", "put")}


def test_the_all_in_one_document_is_the_union_of_the_services() -> None:
    union: set[tuple[str, str]] = set()
    for name in ("auth", "ingest", "stream"):
        union |= operations(document(name, APPS[name].app.routes))
    assert union == operations(document("gossip", everything.app.routes))


@pytest.mark.parametrize("name", APPS)
def test_the_document_is_valid_openapi_31_with_valid_schemas(name: str) -> None:
    found = document(name, APPS[name].app.routes)
    assert OPENAPI_31_VALIDATOR.is_valid(found), [str(error) for error in OPENAPI_31_VALIDATOR.iter_errors(found)]
    for schema in _schemas(found):
        assert jsonschema_rs.meta.is_valid(schema), schema


def _schemas(value: Any) -> list[Any]:
    """Every schema of the document: the named ones, and those of each body, parameter and answer."""
    found = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "schema":
                found.append(inner)
            elif key == "schemas":
                found.extend(inner.values())
            else:
                found.extend(_schemas(inner))
    elif isinstance(value, list):
        for inner in value:
            found.extend(_schemas(inner))
    return found


def test_every_operation_documents_its_refusals_in_the_one_error_shape() -> None:
    for path, methods in document("gossip", everything.app.routes)["paths"].items():
        for method, operation in methods.items():
            for status, answer in operation["responses"].items():
                if int(status) >= 400:
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (path, method, status)


def test_both_ways_to_authenticate_are_documented() -> None:
    found = document("gossip", everything.app.routes)
    schemes = found["components"]["securitySchemes"]
    assert (schemes["session"]["in"], schemes["session"]["name"]) == ("cookie", "gossip_session")
    assert (schemes["token"]["type"], schemes["token"]["scheme"]) == ("http", "bearer")
    assert found["paths"]["/api/updates"]["post"]["security"] == [{"token": []}, {"session": []}]


def test_the_feeds_document_each_event_type_and_its_data() -> None:
    found = document("gossip", everything.app.routes)
    for path in ("/events", "/events/all"):
        stream_schema = found["paths"][path]["get"]["responses"]["200"]["content"]["text/event-stream"]["schema"]
        assert stream_schema == {"$ref": "#/components/schemas/FeedEvent"}
    schemas = found["components"]["schemas"]
    kinds = {}
    for choice in schemas["FeedEvent"]["oneOf"]:
        event = schemas[choice["$ref"].rsplit("/", 1)[1]]
        kinds[event["properties"]["event"]["const"]] = event["properties"]["data"]["contentSchema"]["$ref"]
    assert kinds == {
        "update": "#/components/schemas/Update", "follows": "#/components/schemas/Follows",
        "preferences": "#/components/schemas/Preferences",
        "read": "#/components/schemas/Read", "resync": "#/components/schemas/Resync",
        "edit": "#/components/schemas/Edit", "retract": "#/components/schemas/Retract",
        "expired": "#/components/schemas/Expired",
    }  # fmt: skip


def test_a_service_lists_only_the_schemas_and_links_it_uses() -> None:
    found = document("auth", auth.app.routes)
    assert "UpdateEvent" not in found["components"]["schemas"]  # the auth service serves no feed
    links = found["paths"]["/api/me/tokens"]["post"]["responses"]["201"]["links"]
    assert set(links) == {"revoke"}  # publishing is ingest's: linked only in the all-in-one document
    union = document("gossip", everything.app.routes)
    assert set(union["paths"]["/api/me/tokens"]["post"]["responses"]["201"]["links"]) == {"revoke", "publish"}


def test_an_operation_is_named_after_its_endpoint() -> None:
    route = next(route for route in ingest.app.routes if isinstance(route, ApiRoute) and route.method == "post")
    assert route.operation["operationId"] == "post_update"


async def test_the_all_in_one_app_serves_the_union_at_api_openapi_json(client: httpx.AsyncClient) -> None:
    response = await client.get(PATH)
    assert (response.status_code, response.headers["content-type"]) == (200, "application/json")
    assert response.json() == document("gossip", everything.app.routes)
