"""All three services' routes in one app: what `make run` serves on one port with the embedded database."""

from __future__ import annotations

from services.auth import app as auth
from services.ingest import app as ingest
from services.stream import app as stream
from shared.app import Extension, create_app

routes = [*auth.routes, *ingest.routes, *stream.routes]
extensions: list[Extension] = [*auth.extensions, *ingest.extensions, *stream.extensions]
app = create_app("gossip", routes, extensions=extensions)
