"""Logging setup and the access log: one line per request, text or JSON, never a body or a header value."""

from __future__ import annotations

import json
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

access = logging.getLogger("gossip.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name}
        entry.update(getattr(record, "fields", {}) or {"message": record.getMessage()})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _text_value(value: object) -> str:
    """Quoted and escaped when it holds a space, a quote or a control character: a request path with an encoded
    newline must not be able to write a line of its own."""
    text = str(value)
    if text and text.isprintable() and not any(char in text for char in ' "\\'):
        return text
    return json.dumps(text)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if fields:
            record.msg, record.args = " ".join(f"{key}={_text_value(value)}" for key, value in fields.items()), ()
        return super().format(record)


def configure(log_format: str, level: int = logging.INFO) -> None:
    """One handler on the root logger, so every line of a process has one format, uvicorn's own lines included."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    uvicorn = logging.getLogger("uvicorn")  # the uvicorn CLI gave it a handler of its own, in its own format
    uvicorn.handlers.clear()
    uvicorn.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # ours carries the service and the duration


CLIENT_GONE = 499  # nginx's "client closed request": the client left before any answer, so none was sent


class AccessLog:
    """Pure ASGI, so a streaming response is logged once, when it ends, with its whole duration. A request that
    ends with no answer started is logged 500 when the app failed, and else CLIENT_GONE: the app returns without
    answering only when its client left first (a feed's page closed before the feed answered), and a 5xx no one was
    sent would be a false alarm. Which it was is not read from `receive`: no middleware before the feeds may wrap it
    (services/stream/server.py)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), None

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except Exception:
            status = status or 500
            raise
        finally:
            fields = {
                "service": self.service, "method": scope["method"], "path": scope["path"],
                "status": status or CLIENT_GONE,
                "duration_ms": round((time.perf_counter() - start) * 1000, 1),
            }  # fmt: skip
            access.info("request", extra={"fields": fields})
