"""The instrumentation coverage matrix: expected prices, two pipelines, captured fixtures.

Each case of the matrix is one provider call with usage numbers the test chose, made by
a real client through a real instrumentation against the stub provider (or replayed
from spans captured from an instrumentation too heavy to install here, see
``tests/fixtures/capture/``). The expected price comes from ``genai_prices.calc_price``
itself, never through spanledger.pricing.

A :class:`Pipelines` provider hands every span to two pipelines at once: the in-service
processor (``priced``: what a service with ``CostSpanProcessor`` exports) and a bare one
(``raw``: what a service without it sends, which the collector prices). Both go to the
collector in one run; the raw copies get their trace ids flipped so the collector sees
two distinct spans, never a retry of one.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from genai_prices import Usage, calc_price
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from spanledger import semconv as sc
from spanledger.processor.cost_processor import CostSpanProcessor
from support.processor import shared_catalog

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "spans"
TOLERANCE = Decimal("1e-9")


@dataclass(frozen=True)
class Expected:
    """One call as the provider billed it; ``input_tokens`` INCLUDES cache reads and writes."""

    provider: str
    model: str
    input_tokens: int
    output_tokens: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    #: genai-prices request context: {"service_tier": "flex"}, {"processing": "batch"}
    context: dict[str, str] = field(default_factory=dict)

    def price(self, at: datetime | None = None) -> Decimal:
        """USD by genai-prices itself."""
        usage = Usage(input_tokens=self.input_tokens, output_tokens=self.output_tokens,
                      cache_read_tokens=self.cache_read or None,
                      cache_write_tokens=self.cache_write or None,
                      cache_write_1h_tokens=self.cache_write_1h or None)
        calc = calc_price(usage, self.model, provider_id=self.provider,
                          genai_request_timestamp=at or datetime.now(UTC),
                          price_context=self.context or None)
        return Decimal(calc.total_price)


def cost(span: ReadableSpan | dict[str, Any]) -> Decimal | None:
    attrs = span.attributes if isinstance(span, ReadableSpan) else span
    value = (attrs or {}).get(sc.COST)
    return None if value is None else Decimal(repr(value) if isinstance(value, float) else value)


def status(span: ReadableSpan) -> str | None:
    return (span.attributes or {}).get(sc.COST_STATUS)


def assert_one_counted(spans: Sequence[ReadableSpan], expected: Decimal) -> ReadableSpan:
    """Exactly one span of the call carries the cost, equal to ``expected`` to 1e-9 USD;
    every other span with usage is a duplicate pointing at it."""
    counted = [s for s in spans if status(s) in (sc.STATUS_PRICED, sc.STATUS_UNPRICED)]
    assert len(counted) == 1, [(s.name, status(s)) for s in spans]
    (span,) = counted
    got = cost(span)
    assert got is not None and abs(got - expected) <= TOLERANCE, (span.name, got, expected)
    attrs = span.attributes or {}
    parts = sum(Decimal(repr(attrs.get(k, 0.0))) for k in (
        sc.COST_INPUT, sc.COST_OUTPUT, sc.COST_CACHE_READ, sc.COST_CACHE_WRITE))
    assert abs(parts - got) <= TOLERANCE
    for other in spans:
        if status(other) == sc.STATUS_DUPLICATE:
            oattrs = other.attributes or {}
            assert sc.COST not in oattrs
            assert oattrs[sc.DUPLICATE_OF] == f"{span.context.span_id:016x}"
    return span


class Pipelines:
    """One TracerProvider, two exports of every span: processor-priced and raw."""

    def __init__(self) -> None:
        self.priced = InMemorySpanExporter()
        self.raw = InMemorySpanExporter()
        self.processor = CostSpanProcessor(SimpleSpanProcessor(self.priced),
                                           catalog=shared_catalog())
        self.provider = TracerProvider(resource=Resource.create({"service.name": "matrix"}))
        self.provider.add_span_processor(self.processor)
        self.provider.add_span_processor(SimpleSpanProcessor(self.raw))

    def tracer(self, name: str = "matrix-app") -> trace.Tracer:
        return self.provider.get_tracer(name)

    def clear(self) -> None:
        self.priced.clear()
        self.raw.clear()

    def priced_spans(self) -> list[ReadableSpan]:
        return list(self.priced.get_finished_spans())

    def raw_spans(self) -> list[ReadableSpan]:
        return list(self.raw.get_finished_spans())


#: instrumentor classes by short name (imported when used: each package is optional here)
INSTRUMENTORS = {
    "openllmetry-openai": "opentelemetry.instrumentation.openai:OpenAIInstrumentor",
    "openllmetry-anthropic": "opentelemetry.instrumentation.anthropic:AnthropicInstrumentor",
    "openllmetry-mistralai": "opentelemetry.instrumentation.mistralai:MistralAiInstrumentor",
    "openllmetry-bedrock": "opentelemetry.instrumentation.bedrock:BedrockInstrumentor",
    "openai-v2": "opentelemetry.instrumentation.openai_v2:OpenAIInstrumentor",
    "openinference-openai": "openinference.instrumentation.openai:OpenAIInstrumentor",
}


@contextlib.contextmanager
def instrumented(provider: TracerProvider, *names: str) -> Iterator[None]:
    """These instrumentations (and no other of the list) send spans to ``provider``.

    Instrumentors are process-wide singletons: every known one is undone first, so an
    earlier test's provider never receives these spans, and undone again afterwards.
    """
    def get(name: str) -> Any:
        module, _, cls = INSTRUMENTORS[name].partition(":")
        return getattr(importlib.import_module(module), cls)()

    for name in INSTRUMENTORS:
        with contextlib.suppress(ImportError):
            inst = get(name)
            if inst.is_instrumented_by_opentelemetry:
                inst.uninstrument()
    active = [get(n) for n in names]
    for inst in active:
        inst.instrument(tracer_provider=provider)
    try:
        yield
    finally:
        for inst in active:
            inst.uninstrument()


@contextlib.contextmanager
def mistral_sdk_tracing(provider: TracerProvider) -> Iterator[None]:
    """The mistralai SDK's own spans to ``provider``.

    mistralai 1.x traces itself on the GLOBAL tracer provider, which a test process can
    set only once; its hook asks for the tracer on every request, so this points that one
    lookup at ``provider`` (the SDK's spans, names and attributes are its own).
    """
    from mistralai._hooks import tracing as hook
    from mistralai.extra.observability import otel

    original = hook.get_or_create_otel_tracer
    hook.get_or_create_otel_tracer = lambda: (  # type: ignore[assignment]
        True, provider.get_tracer(otel.MISTRAL_SDK_OTEL_TRACER_NAME))
    try:
        yield
    finally:
        hook.get_or_create_otel_tracer = original  # type: ignore[assignment]


# -- captured fixtures --------------------------------------------------------------------

def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def fixture_expected(usage: dict[str, Any]) -> Expected:
    return Expected(usage["provider"], usage["model"], usage["input_tokens"],
                    usage.get("output_tokens", 0), usage.get("cache_read_tokens", 0),
                    usage.get("cache_write_tokens", 0), usage.get("cache_write_1h_tokens", 0))


def _value(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def replay(provider: TracerProvider, records: Sequence[dict[str, Any]]) -> None:
    """Re-create captured spans on ``provider``: same scopes, names, attributes, times and
    parent/child shape (new ids), started in start order and ended in end order."""
    by_id = {r["span_id"]: r for r in records}
    started: dict[str, Any] = {}
    for r in sorted(records, key=lambda r: (r["start_ns"], r["end_ns"])):
        tracer = provider.get_tracer(r["scope"], r["scope_version"] or None)
        parent = by_id.get(r["parent_span_id"])
        if parent is not None and r["parent_span_id"] in started:
            ctx = trace.set_span_in_context(started[r["parent_span_id"]])
        elif r["parent_span_id"]:  # a parent we did not capture (an app span): keep the trace
            anchor = next((s for s in started.values()
                           if f"{s.context.trace_id:032x}" == r["trace_id"]), None)
            if anchor is not None:
                sctx = anchor.get_span_context()
            else:
                sctx = SpanContext(int(r["trace_id"], 16), int(r["parent_span_id"], 16),
                                   is_remote=False, trace_flags=TraceFlags(1))
            ctx = trace.set_span_in_context(NonRecordingSpan(sctx))
        else:
            ctx = None
        span = tracer.start_span(r["name"], context=ctx, start_time=r["start_ns"],
                                 attributes={k: _value(v) for k, v in r["attributes"].items()})
        started[r["span_id"]] = span
    for r in sorted(records, key=lambda r: r["end_ns"]):
        started[r["span_id"]].end(end_time=r["end_ns"])


# -- OTLP -------------------------------------------------------------------------------------

def flip_trace(span: ReadableSpan) -> ReadableSpan:
    """The same span in another trace (first byte of the trace id flipped), parent kept,
    as another provider call: its response id gets a suffix (the collector prices every
    span, and two spans of one response id are one call in any trace)."""
    def flipped(ctx: SpanContext | None) -> SpanContext | None:
        if ctx is None:
            return None
        return SpanContext(ctx.trace_id ^ (0xFF << 120), ctx.span_id, ctx.is_remote,
                           ctx.trace_flags, ctx.trace_state)

    attributes = dict(span.attributes or {})
    if isinstance(attributes.get("gen_ai.response.id"), str):
        attributes["gen_ai.response.id"] += "-flipped"
    return ReadableSpan(
        name=span.name, context=flipped(span.context), parent=flipped(span.parent),
        resource=span.resource, attributes=attributes, events=span.events,
        links=span.links, kind=span.kind, status=span.status, start_time=span.start_time,
        end_time=span.end_time, instrumentation_scope=span.instrumentation_scope)


def otlp_request(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    return encode_spans(list(spans))


def hex_trace(span: ReadableSpan) -> str:
    return f"{span.context.trace_id:032x}"
