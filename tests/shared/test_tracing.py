"""Traces with the real OpenTelemetry SDK: one publish is one trace from ingest's request to the stream's fan-out,
exported over OTLP to a real receiver when an endpoint is set, and nothing at all when none is."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import ProxyTracerProvider, SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dev.processes import ServiceProcess
from shared.db import Database
from shared.settings import Settings
from shared.tracing import exporting, stored_context
from tests.support.accounts import registered
from tests.support.http import async_client
from tests.support.servers import LiveServer, gossip_server, serving
from tests.support.sse import events
from tests.support.updates import publish, stored_update
from tests.support.waiting import wait_until

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def traced(settings: Settings, exporter: InMemorySpanExporter) -> Iterator[str]:
    """The all-in-one server with every span it ends kept in memory."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with serving(settings, provider) as url:
        yield url
    provider.shutdown()


def named(exporter: InMemorySpanExporter, name: str, seq: int | None = None) -> list[ReadableSpan]:
    spans = [span for span in exporter.get_finished_spans() if span.name == name]
    return [span for span in spans if seq is None or (span.attributes or {}).get("gossip.seq") == seq]


def parent_of(span: ReadableSpan) -> int:
    assert span.parent is not None, f"{span.name} has no parent"
    return span.parent.span_id


async def test_one_publish_is_one_trace_from_the_request_through_the_insert_and_change_to_the_fan_out(
    traced: str, exporter: InMemorySpanExporter, db: Database
) -> None:
    async with registered(traced, "alice") as alice:
        await alice.put("/api/me/follows/flash")
        async with events(alice) as feed:
            sent = await publish(alice, "flash", "traced")
            assert await feed.updates(1) == [sent]  # the wire shape: no trace in the answer nor on the feed
        (fan_out,) = await wait_until(lambda: named(exporter, "fan-out", sent["seq"]))
    trace_id = fan_out.context.trace_id
    (insert,) = [span for span in named(exporter, "insert updates") if span.context.trace_id == trace_id]
    (change,) = [span for span in named(exporter, "change updates") if span.context.span_id == parent_of(fan_out)]
    (request,) = [span for span in exporter.get_finished_spans() if span.context.span_id == parent_of(insert)]
    assert (request.kind, (request.attributes or {}).get("http.method")) == (SpanKind.SERVER, "POST")
    assert "/api/updates" in str((request.attributes or {}).get("http.target"))
    assert parent_of(change) == insert.context.span_id
    assert {span.context.trace_id for span in (request, insert, change, fan_out)} == {trace_id}
    assert (fan_out.attributes or {})["gossip.feeds"] == 1
    stored = await db.updates.find_one({"seq": sent["seq"]})
    assert stored is not None
    assert stored["trace"][:-2] == f"00-{insert.context.trace_id:032x}-{insert.context.span_id:016x}-"  # then flags


async def test_an_update_written_with_a_forged_trace_is_delivered_and_starts_no_span(
    traced: str, exporter: InMemorySpanExporter, db: Database
) -> None:
    """Another program's `trace` is checked like any field it writes: one that is not a traceparent is ignored."""
    async with registered(traced, "alice") as alice:
        await alice.put("/api/me/follows/flash")
        async with events(alice) as feed:
            await db.updates.insert_one({**stored_update(1), "trace": {"$gt": ""}})
            await db.updates.insert_one({**stored_update(2), "trace": PARENT})
            assert [update["seq"] for update in await feed.updates(2)] == [1, 2]
    await wait_until(lambda: named(exporter, "fan-out", 2))
    assert named(exporter, "fan-out", 1) == []
    (change,) = named(exporter, "change updates")
    assert (change.context.trace_id, parent_of(change)) == (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331)


@pytest.mark.parametrize(
    "value",
    [None, 7, {"traceparent": PARENT}, PARENT.upper(), PARENT + "-00", "ff" + PARENT[2:], " " + PARENT,
     "00-00000000000000000000000000000000-b7ad6b7169203331-01",
     "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
     "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g", "x" * 10_000],
)  # fmt: skip
def test_a_stored_trace_is_used_only_when_it_is_a_well_formed_traceparent(value: Any) -> None:
    assert stored_context({"trace": value}) is None
    assert stored_context(None) is None


def test_a_well_formed_stored_trace_is_the_parent() -> None:
    context = stored_context({"trace": PARENT})
    assert context is not None
    parent = trace.get_current_span(context).get_span_context()
    assert (parent.trace_id, parent.span_id, parent.is_remote) == (
        0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True,
    )  # fmt: skip


async def test_without_an_endpoint_no_provider_is_made_and_nothing_is_stored_or_exported(
    server: str, settings: Settings, db: Database
) -> None:
    assert exporting(settings, "gossip") is None
    async with registered(server, "alice") as alice:
        sent = await publish(alice, "flash", "untraced")
    stored = await db.updates.find_one({"seq": sent["seq"]})
    assert stored is not None and "trace" not in stored
    assert isinstance(trace.get_tracer_provider(), ProxyTracerProvider)  # nothing installed a global one either


@dataclass(frozen=True)
class Received:
    service: str
    name: str
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes


@contextlib.contextmanager
def otlp_receiver() -> Iterator[tuple[str, list[Received]]]:
    """A real OTLP/HTTP receiver on loopback, decoding what exporters send with OpenTelemetry's own protobufs: its
    URL, and every span received."""
    received: list[Received] = []

    async def collect(request: Request) -> Response:
        assert request.headers["content-type"] == "application/x-protobuf"
        export = ExportTraceServiceRequest.FromString(await request.body())
        for resource in export.resource_spans:
            service = next(a.value.string_value for a in resource.resource.attributes if a.key == "service.name")
            received.extend(Received(service, span.name, span.trace_id, span.span_id, span.parent_span_id)
                            for scope in resource.scope_spans for span in scope.spans)  # fmt: skip
        return Response(ExportTraceServiceRequest().SerializeToString(), media_type="application/x-protobuf")

    receiver = LiveServer(Starlette(routes=[Route("/v1/traces", collect, methods=["POST"])])).start()
    try:
        yield receiver.url, received
    finally:
        receiver.stop()


async def test_with_an_endpoint_the_spans_go_to_it_over_otlp(settings: Settings) -> None:
    with otlp_receiver() as (url, received):
        env = {"SECRET_KEY": settings.secret_key, "MONGO_URL": settings.mongo_url, "MONGO_DB": settings.mongo_db}
        live = gossip_server(Settings.from_env({**env, "OTEL_EXPORTER_OTLP_ENDPOINT": url}))
        try:
            async with registered(live.url, "alice") as alice, events(alice, "/events/all") as feed:
                sent = await publish(alice, "flash", "exported")
                assert await feed.updates(1) == [sent]  # fanned out: its span ended with the write, on the server
        finally:
            live.stop()  # the lifespan's end shuts the provider down, which sends the spans still batched
    names = {span.name for span in received if span.service == "gossip"}
    assert {"insert updates", "change updates", "fan-out"} <= names


async def test_across_processes_the_stream_joins_the_trace_through_mongodb(settings: Settings) -> None:
    """Ingest and stream as processes of their own, as deployed, both exporting to one receiver: nothing but the
    update stored in MongoDB links them, and the stream's change and fan-out spans are in the trace of ingest's
    insert, the change's parent being that insert."""
    with otlp_receiver() as (url, received):
        traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": url}
        with (
            ServiceProcess("services.auth.app", settings) as auth,
            ServiceProcess("services.ingest.app", settings, **traced) as ingest,
            ServiceProcess("services.stream.app", settings, **traced) as stream,
        ):
            async with (
                registered(auth.url, "alice") as alice,
                async_client(base_url=stream.url, cookies=alice.cookies) as watching,
                events(watching, "/events/all") as feed,
            ):
                async with async_client(base_url=ingest.url, cookies=alice.cookies) as publishing:
                    sent = await publish(publishing, "flash", "across processes")
                assert await feed.updates(1) == [sent]
            ingest.stop()  # each lifespan's end sends the spans still batched
            stream.stop()
    (insert,) = [span for span in received if (span.service, span.name) == ("ingest", "insert updates")]
    mine = [span for span in received if span.trace_id == insert.trace_id]
    (change,) = [span for span in mine if (span.service, span.name) == ("stream", "change updates")]
    (fan_out,) = [span for span in mine if (span.service, span.name) == ("stream", "fan-out")]
    assert (change.parent_span_id, fan_out.parent_span_id) == (insert.span_id, change.span_id)
    assert any(span.service == "ingest" and span.span_id == insert.parent_span_id for span in mine)  # the request's
