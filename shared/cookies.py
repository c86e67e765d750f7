"""Every cookie Gossip sets carries the same options: HttpOnly, SameSite=Lax, Path=/, and Secure over HTTPS."""

from __future__ import annotations

from starlette.responses import Response

from shared.state import AnyRequest


def is_https(request: AnyRequest) -> bool:
    return request.url.scheme == "https"


def set_cookie(request: AnyRequest, response: Response, name: str, value: str, max_age: int | None = None) -> None:
    """`max_age=None`: a cookie for this browser session only."""
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="lax", secure=is_https(request))


def clear_cookie(request: AnyRequest, response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="lax", secure=is_https(request))
