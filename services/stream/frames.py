"""The SSE wire format, encoded once per update and shared as the same bytes by every feed that carries it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from shared.updates import wire

RETRY_MS = 2000
RETRY = f"retry: {RETRY_MS}\n\n".encode()
PING = b": ping\n\n"  # a comment line: keeps proxies and browsers from timing the connection out


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def update_frame(update: dict[str, Any]) -> bytes:
    """`id` is the seq, so a reconnecting browser's Last-Event-ID says exactly where it stopped."""
    return f"id: {update['seq']}\nevent: update\ndata: {_json(wire(update))}\n\n".encode()


def follows_frame(follows: Iterable[str]) -> bytes:
    """No `id`: a follows event must not move the browser's Last-Event-ID."""
    return f"event: follows\ndata: {_json({'follows': sorted(follows)})}\n\n".encode()
