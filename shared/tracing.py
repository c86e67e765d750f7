"""Traces with OpenTelemetry, only when asked for: an OTLP endpoint in the settings (or a provider a test gives).

Without one no provider is made, no request is wrapped and no span is started: the services' code checks for a
tracer (None) before any span, so the hot paths pay one comparison. With one, a publish is one trace across two
services: the request's span and the insert's are ingest's, and the W3C traceparent of the insert is stored with the
update as `trace` (never sent on the wire); the stream service reads it back from the change event, checked like
anything another program may have written, and starts its spans for the change and the fan-out as its children."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import INVALID_SPAN, Span, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.settings import Settings

# Version 00 of W3C Trace Context, lower-case hex as the standard writes it; all-zero ids are invalid there too.
TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
PROVIDER = "tracer_provider"  # the key of the lifespan state that holds the provider, when traces are on
UNTRACED_PATHS = "/healthz,/readyz,/metrics,/static"  # probes and scrapes would bury the traces worth reading
_PROPAGATOR = TraceContextTextMapPropagator()


def exporting(settings: Settings, service: str) -> TracerProvider | None:
    """A provider that sends spans over OTLP (HTTP, protobuf) in batches, off the request path; None when no
    endpoint is set."""
    if not settings.otlp_endpoint:
        return None
    provider = TracerProvider(resource=Resource.create({"service.namespace": "gossip", "service.name": service}))
    exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint.rstrip("/") + "/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def tracer_of(provider: TracerProvider | None) -> Tracer | None:
    return None if provider is None else provider.get_tracer("gossip")


def span(tracer: Tracer | None, name: str, **options: Any) -> contextlib.AbstractContextManager[Span]:
    """A span made current for the block, or, without a tracer, nothing at all (a span that records nothing)."""
    if tracer is None:
        return contextlib.nullcontext(INVALID_SPAN)
    return tracer.start_as_current_span(name, **options)


def traceparent() -> str | None:
    """The current span's context as a W3C traceparent, to store with what it wrote; None outside a recording span."""
    if not trace.get_current_span().is_recording():
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def stored_context(document: Mapping[str, Any] | None) -> Context | None:
    """The trace context a document was stored with, if it holds a well-formed one: any program may write to a
    collection, so `trace` is used only when it is a traceparent string, and never as more than a parent."""
    value = document.get("trace") if document is not None else None
    if not isinstance(value, str) or not TRACEPARENT.fullmatch(value):
        return None
    context = _PROPAGATOR.extract({"traceparent": value})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


@contextlib.contextmanager
def within(tracer: Tracer, parent: Context, name: str, **options: Any) -> Iterator[Span]:
    """A span under the current one when that is already in `parent`'s trace (the fan-out inside its change's
    span), else directly under `parent` (an update delivered by a later change, or by a catch-up read)."""
    trace_id = trace.get_current_span(parent).get_span_context().trace_id
    current = trace.get_current_span().get_span_context()
    context = None if current.is_valid and current.trace_id == trace_id else parent
    with tracer.start_as_current_span(name, context=context, **options) as started:
        yield started


class Traced:
    """OpenTelemetry's ASGI middleware around the app once the lifespan has put a provider in its state; without
    one, a request passes straight through (one lookup). Send and receive get no span each: a feed sends for hours."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._traced: tuple[TracerProvider, ASGIApp] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        provider = scope.get("state", {}).get(PROVIDER) if scope["type"] == "http" else None
        if provider is None:
            await self.app(scope, receive, send)
            return
        if self._traced is None or self._traced[0] is not provider:
            middleware = OpenTelemetryMiddleware(
                self.app, excluded_urls=UNTRACED_PATHS, tracer_provider=provider,
                meter_provider=NoOpMeterProvider(), exclude_spans=["receive", "send"],
            )  # fmt: skip
            self._traced = (provider, middleware)
        await self._traced[1](scope, receive, send)
