"""create_app: what every service has — the database in the lifespan, error handlers, health, metrics, static files."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import pymongo
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import AsyncMongoClient
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from shared import db as database
from shared import refusals, tasks
from shared.auth import RenewedSession
from shared.batching import by_id
from shared.catalogue import Catalogue
from shared.errors import EXCEPTION_HANDLERS, ApiError
from shared.headers import Nosniff
from shared.limits import Buckets
from shared.lingering import answer_then_drain
from shared.logs import AccessLog, configure
from shared.memory import traced
from shared.openapi import document_route
from shared.pages import PAGE_HANDLERS
from shared.proxies import TrustedProxies
from shared.responses import JSONResponse
from shared.settings import ROOT, Settings
from shared.state import USER_FIELDS, AnyRequest, Core, core
from shared.tracing import Traced, exporting

GC_THRESHOLDS = (50_000, 20, 100)  # Python's defaults are (700, 10, 10)
# Seconds the extensions' shutdown may take in all (feeds ended, change streams and loops stopped, goodbyes said):
# a stop ends within a few seconds whatever the database does. The client's own goodbyes (ending its sessions) then
# have FAREWELL_WAIT: the server reaps what they would have ended.
SHUTDOWN_WAIT = 3.0

# A part of one service that lives as long as it (auth's password hashing, ingest's token cache, the stream's hub and
# watcher): entered once the core is ready, left at shutdown. What it yields joins the service's state (its own
# TypedDict extends Core). The core holds only what every service uses.
Extension = Callable[[Core], AbstractAsyncContextManager[Mapping[str, Any]]]


async def healthz(request: AnyRequest) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: AnyRequest) -> Response:
    try:
        await core(request)["db"].command("ping")
    except Exception:
        raise ApiError(503, "unavailable", "The database is not reachable.") from None
    return JSONResponse({"status": "ready"})


async def metrics(request: AnyRequest) -> Response:
    return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _tune_gc() -> None:
    """Python's collector rescans every long-lived object each time their number has grown by a quarter, and a
    stream process holding thousands of connections holds a great many: rescanning them would take much of its CPU,
    in long pauses (docs/benchmarks.md). So: far fewer, larger young collections, and whatever exists once the
    service is ready is frozen out of every scan."""
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()


class Service(Starlette):
    """Starlette, draining a body it answered unread before the connection closes (shared/lingering.py)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        await answer_then_drain(super().__call__, scope, receive, send)


async def _core(
    name: str, settings: Settings | None, tracer_provider: TracerProvider | None
) -> tuple[AsyncMongoClient[dict[str, Any]], Core]:
    """What every service holds for its lifetime. Without given settings the app is its own process (`uvicorn
    services.<name>.app:app`), which reads them from the environment and sets up its own logging."""
    resolved = settings or Settings.from_env()
    if settings is None:
        configure(resolved.log_format)
    if not resolved.mongo_url:
        raise RuntimeError("MONGO_URL is not set: name a MongoDB, or use `make run` for the embedded one")
    client = database.connect(resolved.mongo_url)
    db = client[resolved.mongo_db]
    await database.prepare(db)
    core = Core(
        settings=resolved, db=db, catalogue=Catalogue(db), sessions=by_id(db.sessions),
        users=by_id(db.users, USER_FIELDS), buckets=Buckets(db),
        tracer_provider=tracer_provider or exporting(resolved, name),
    )  # fmt: skip
    return client, core


def create_app(
    name: str,
    routes: Sequence[BaseRoute],
    settings: Settings | None = None,
    extensions: Sequence[Extension] = (),
    tracer_provider: TracerProvider | None = None,
) -> Starlette:
    """`tracer_provider`: where spans go (a test's in-memory exporter); without one, traces are on only when the
    settings name an OTLP endpoint (shared/tracing.py)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        client, base = await _core(name, settings, tracer_provider)
        try:
            async with tasks.unwound_within(SHUTDOWN_WAIT, "the shutdown") as stack:
                if tracer_provider is None and (exported := base["tracer_provider"]) is not None:
                    stack.callback(exported.shutdown)  # sends the spans still batched
                resolved = base["settings"]
                await stack.enter_async_context(traced(resolved.memory_trace, resolved.memory_trace_every))
                await stack.enter_async_context(refusals.reported(base["db"], name, resolved.presence_interval))
                state: dict[str, Any] = dict(base)
                for extension in extensions:
                    state.update(await stack.enter_async_context(extension(base)))
                _tune_gc()
                yield state
        finally:
            with pymongo.timeout(database.FAREWELL_WAIT):
                await client.close()

    common = [
        document_route(name, routes),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(directory=ROOT / "web" / "static"), name="static"),
    ]
    return Service(
        routes=[*routes, *common],
        lifespan=lifespan,
        exception_handlers={**EXCEPTION_HANDLERS, **PAGE_HANDLERS},
        middleware=[
            Middleware(TrustedProxies),
            Middleware(Traced),  # after TrustedProxies: a request's span names the client's address
            Middleware(Nosniff),
            Middleware(AccessLog, service=name),
            Middleware(RenewedSession),
        ],
    )
