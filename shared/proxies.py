"""Forwarded headers believed only from the proxies Settings names (TRUSTED_PROXIES): the client's address decides
the login and registration limits, and its scheme the cookie's Secure flag, so a client must not choose either.

uvicorn's own ProxyHeadersMiddleware believes 127.0.0.1 unless told otherwise: every server here runs with it off
(`proxy_headers=False`, `--no-proxy-headers`) and this one decides, from the settings, in every service alike."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from shared.settings import Settings


class TrustedProxies:
    """Pure ASGI, first of all middleware. The settings are known only once the lifespan has read them, so uvicorn's
    middleware is made for the trusted addresses at the first request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._believing: ProxyHeadersMiddleware | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings: Settings | None = scope.get("state", {}).get("settings")
        trusted = settings.trusted_proxies if settings is not None else ()
        if scope["type"] != "http" or not trusted:
            await self.app(scope, receive, send)
            return
        if self._believing is None:
            self._believing = ProxyHeadersMiddleware(self.app, list(trusted))  # type: ignore[arg-type]
        await self._believing(scope, receive, send)  # type: ignore[arg-type]
