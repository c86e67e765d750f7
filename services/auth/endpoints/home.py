"""The home page (templates/home.html), and the API document made readable at /api (templates/api/)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from services.auth import tokens
from services.auth.state import AuthRequest
from shared.pages import optional_viewer, render


async def home(request: AuthRequest) -> Response:
    """The layout's `me` is all it reads; the API tokens section says what a token's name may be."""
    page = {"token_rule": tokens.RULE, "token_max": tokens.NAME_MAX,
            "token_days_rule": tokens.DAYS_RULE, "token_days_max": tokens.DAYS_MAX}  # fmt: skip
    return render(request, await optional_viewer(request), "home.html", page)


async def api_page(request: AuthRequest) -> Response:
    """The API document, readable: Swagger UI from this origin (the pages' CSP allows no other)."""
    return render(request, await optional_viewer(request), "api/index.html")


routes: list[BaseRoute] = [
    Route("/", home),
    Route("/api", api_page),
    Mount("/static/swagger-ui", StaticFiles(packages=[("swagger_ui", "static")]), name="swagger-ui"),
]
