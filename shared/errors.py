"""ApiError and the one JSON error shape: raised where a problem is found, shaped here."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match, Route

from shared.responses import JSONResponse

CRASH_DETAIL = "Something went wrong on our side."

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "throttled",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        error: str = "",
        detail: str = "",
        fields: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or error)
        self.status = status
        self.error = error or ERROR_CODES.get(status, "error")
        self.detail = detail
        self.fields = dict(fields or {})
        self.headers = dict(headers or {})


def invalid(fields: Mapping[str, str]) -> ApiError:
    """A 422 whose detail says what each field must be, as a script in a terminal reads it; pages show the same
    words under each field."""
    return ApiError(
        422, detail="Invalid " + "; ".join(f"{name}: {rule}" for name, rule in fields.items()), fields=fields
    )


def error_response(error: ApiError) -> JSONResponse:
    body = {"error": error.error, "detail": error.detail, "fields": error.fields}
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def _allowed(request: Request) -> str:
    """Starlette's 405 names the methods of the first route whose path matches. A path served by one route per method
    (PUT and DELETE of /api/me/follows/{slug}) allows every one of theirs."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


def as_api_error(request: Request, exc: Exception) -> ApiError:
    """Ours as raised, or Starlette's HTTPException (an unknown path, a wrong method) in the same terms."""
    if isinstance(exc, ApiError):
        return exc
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed(request)
    return ApiError(exc.status_code, detail=exc.detail, headers=headers)


async def on_error(request: Request, exc: Exception) -> Response:
    return error_response(as_api_error(request, exc))


async def on_crash(request: Request, exc: Exception) -> Response:
    """Starlette re-raises after this, so the traceback reaches the log and never the client."""
    return error_response(ApiError(500, "internal", CRASH_DETAIL))


async def on_gone(request: Request, exc: Exception) -> Response:
    """A client that hung up before its body was in (or a gateway that gave up on it) is no bug: no traceback.
    Nobody reads the answer; the access log shows a 400."""
    return error_response(ApiError(400, "incomplete", "The request ended before its body did."))


EXCEPTION_HANDLERS = {ApiError: on_error, HTTPException: on_error, ClientDisconnect: on_gone, Exception: on_crash}
