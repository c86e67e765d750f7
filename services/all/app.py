"""All three services' routes in one app: what `make run` serves on one port with the embedded database, and what
the tests serve. Assembled here alone."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette

from services.auth import app as auth
from services.ingest import app as ingest
from services.stream import app as stream
from shared.app import create_app
from shared.settings import Settings


def create(settings: Settings | None = None, tracer_provider: TracerProvider | None = None) -> Starlette:
    """Without `settings` the app reads them from the environment at startup (create_app)."""
    return create_app(
        "gossip",
        [*auth.routes, *ingest.routes, *stream.routes],
        settings,
        [*auth.extensions, *ingest.extensions, *stream.extensions],
        tracer_provider,
    )


app = create()
