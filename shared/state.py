"""What every service holds for its lifetime, typed: built once in the lifespan, read by endpoints through
`Request[TheServiceState]` (Starlette's typed state). A service's own state extends `Core` with what its parts add.
Per-request values (who is calling, what they have unread) never go in it: pages pass them on explicitly."""

from __future__ import annotations

from typing import Any, TypedDict

from opentelemetry.sdk.trace import TracerProvider
from starlette.requests import HTTPConnection, Request

from shared.batching import Lookup
from shared.catalogue import Catalogue
from shared.db import Database
from shared.limits import Buckets
from shared.settings import Settings

# What the `users` lookup reads of a user.
USER_FIELDS = {"username": 1, "follows": 1, "last_read_seq": 1, "preferences": 1}


class Core(TypedDict):
    settings: Settings
    db: Database
    catalogue: Catalogue
    # Every request asks who is calling and many ask what the user follows: concurrent lookups share one query.
    sessions: Lookup
    users: Lookup
    buckets: Buckets  # rate limits shared by every process
    tracer_provider: TracerProvider | None  # None: traces are off (shared/tracing.py)


# What code in `shared/` takes: any service's request. Request is invariant in its state type, so each service's
# endpoints declare their own (`Request[Ingest]`) and shared code reads the core they all extend through `core()`.
AnyRequest = Request[Any]


def core(connection: HTTPConnection[Any]) -> Core:
    """The core of whichever service serves the request, for the code in `shared/` that every service runs."""
    state: Core = connection.state
    return state
