"""Helpers for the processor tests: a capturing pipeline, independent expected costs.

Expected costs come from ``genai_prices.calc_price`` directly (not through
spanledger.pricing), so a pricing bug cannot hide behind itself.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from genai_prices import Usage, calc_price
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanledger import semconv as sc
from spanledger.processor.cost_processor import CostSpanProcessor
from support.local_http import LocalHttpServer, QuietHandler

TOLERANCE = Decimal("1e-9")


@functools.cache
def shared_catalog() -> Any:
    """One default catalog for the whole session (building it parses genai-prices data)."""
    from spanledger.pricing.catalog import PriceCatalog

    return PriceCatalog()


@dataclass
class Capture:
    """TracerProvider -> CostSpanProcessor -> SimpleSpanProcessor -> InMemorySpanExporter."""

    provider: TracerProvider
    processor: CostSpanProcessor
    exporter: InMemorySpanExporter

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, [s.name for s in self.spans()]
        return found[0]

    def tracer(self, name: str = "test") -> Any:
        return self.provider.get_tracer(name)

    def clear(self) -> None:
        self.exporter.clear()


def capture(**kwargs: Any) -> Capture:
    kwargs.setdefault("catalog", shared_catalog())
    exporter = InMemorySpanExporter()
    processor = CostSpanProcessor(SimpleSpanProcessor(exporter), **kwargs)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    return Capture(provider, processor, exporter)


def expected_cost(model: str, provider: str, *, input_tokens: int, output_tokens: int = 0,
                  cache_read: int = 0, cache_write: int = 0, reasoning: int = 0,
                  at: datetime | None = None) -> Decimal:
    """USD by genai-prices itself; ``input_tokens`` includes cache reads and writes."""
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens,
                  cache_read_tokens=cache_read or None, cache_write_tokens=cache_write or None)
    calc = calc_price(usage, model, provider_id=provider,
                      genai_request_timestamp=at or datetime.now(UTC))
    return Decimal(calc.total_price)


def cost_of(span: ReadableSpan) -> Decimal | None:
    value = (span.attributes or {}).get(sc.COST)
    return None if value is None else Decimal(repr(value))


def assert_cost(span: ReadableSpan, expected: Decimal) -> None:
    got = cost_of(span)
    assert got is not None, f"{span.name}: no {sc.COST}; attributes {dict(span.attributes or {})}"
    assert abs(got - expected) <= TOLERANCE, (span.name, got, expected)
    attrs = span.attributes or {}
    parts = sum(Decimal(repr(attrs.get(k, 0.0))) for k in (
        sc.COST_INPUT, sc.COST_OUTPUT, sc.COST_CACHE_READ, sc.COST_CACHE_WRITE))
    assert abs(parts - got) <= TOLERANCE, (span.name, parts, got)
    assert attrs[sc.COST_STATUS] == sc.STATUS_PRICED


def attribution(span: ReadableSpan) -> dict[str, Any]:
    """The ``spanledger.<key>`` attribution attributes of a span, by key."""
    return {k[len(sc.ATTR_PREFIX):]: v for k, v in (span.attributes or {}).items()
            if k.startswith(sc.ATTR_PREFIX) and k.count(".") == 1
            and k[len(sc.ATTR_PREFIX):] not in ("step",)}


@contextlib.contextmanager
def instrumented(provider: TracerProvider) -> Iterator[None]:
    """The real OpenAI and Anthropic instrumentations, sending spans to ``provider``.

    Instrumentors are process-wide singletons; re-instrument so an earlier
    test's provider never receives our spans, and undo it afterwards.
    """
    from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    instrumentors = [OpenAIInstrumentor(), AnthropicInstrumentor()]
    for inst in instrumentors:
        if inst.is_instrumented_by_opentelemetry:
            inst.uninstrument()
        inst.instrument(tracer_provider=provider)
    try:
        yield
    finally:
        for inst in instrumentors:
            inst.uninstrument()


class OtlpHttpReceiver(LocalHttpServer):
    """A test-only OTLP/HTTP traces endpoint on 127.0.0.1: decodes ExportTraceServiceRequest.

    ``spans`` holds one dict per received span: name, attributes (plain Python
    values), resource attributes and the request headers it came with.
    """

    def __init__(self) -> None:
        import threading

        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        self.spans: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    import gzip

                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest.FromString(body)
                headers = {k.lower(): v for k, v in self.headers.items()}
                found = []
                for rs in request.resource_spans:
                    resource = {a.key: _any_value(a.value) for a in rs.resource.attributes}
                    for ss in rs.scope_spans:
                        for span in ss.spans:
                            found.append({
                                "name": span.name,
                                "path": self.path,
                                "trace_id": span.trace_id.hex(),
                                "attributes": {a.key: _any_value(a.value) for a in span.attributes},
                                "resource": resource,
                                "headers": headers,
                            })
                with receiver._lock:
                    receiver.spans.extend(found)
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        super().__init__(Handler)

    @property
    def endpoint(self) -> str:
        return self.base_url

    def named(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [s for s in self.spans if s["name"] == name]

    def __enter__(self) -> OtlpHttpReceiver:
        return self


def openai_client(stub: Any) -> Any:
    """The real OpenAI client against the stub provider (no retries: a test sees the
    first answer)."""
    import openai

    return openai.OpenAI(base_url=stub.base_url, api_key="stub", max_retries=0)


def _any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_any_value(v) for v in value.array_value.values)
    return getattr(value, kind) if kind else None


#: model, usage of the scenario's priced calls (known to genai-prices)
SCENARIO_MODEL = "gpt-4o-mini"


def genai_attrs(model: str = SCENARIO_MODEL, *, input_tokens: int, output_tokens: int,
                cache_read: int = 0, operation: str = "chat") -> dict[str, Any]:
    """What opentelemetry-instrumentation-openai 0.62 puts on a chat span, usage included."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": operation, "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model, "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
    }
    if cache_read:
        attrs["gen_ai.usage.cache_read.input_tokens"] = cache_read
    return attrs


def run_scenario(cap: Capture) -> dict[str, tuple[dict[str, Any], int]]:
    """Every path of the processor, once: span name -> (exported attributes, dropped count).

    Attribution from baggage, from a parent span handed over without baggage, from
    the trace root when only a SpanContext travels; priced calls numbered per trace
    and rolled up into an agent span; a remote parent; an unpriced model; a plain span.
    """
    import threading

    from opentelemetry import context, trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    import spanledger

    tracer = cap.tracer()
    with spanledger.attribute(team="search", feature="answers", customer="acme"), \
            tracer.start_as_current_span("request") as request:
        with tracer.start_as_current_span("http-get", attributes={"http.request.method": "GET"}):
            pass
        with tracer.start_as_current_span("agent", attributes={
                "gen_ai.operation.name": "invoke_agent"}):
            with tracer.start_as_current_span("chat-1", attributes=genai_attrs(
                    input_tokens=1200, output_tokens=300, cache_read=1024)):
                pass
            with tracer.start_as_current_span("chat-2", attributes=genai_attrs(
                    input_tokens=800, output_tokens=40)):
                pass

        def handed_over() -> None:  # a thread pool got the span, not the context
            with tracer.start_as_current_span("worker-chat", context=trace.set_span_in_context(
                    request, context.Context()), attributes=genai_attrs(
                    input_tokens=50, output_tokens=5)):
                pass

        worker = threading.Thread(target=handed_over)
        worker.start()
        worker.join(10)
        only_ids = trace.set_span_in_context(NonRecordingSpan(request.get_span_context()),
                                             context.Context())
        with tracer.start_as_current_span("ids-only", context=only_ids):
            pass
        with tracer.start_as_current_span("unknown-model", attributes=genai_attrs(
                "no-such-model-xyz", input_tokens=10, output_tokens=1)):
            pass
    remote = SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=True,
                         trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with spanledger.attribute(team="edge"), tracer.start_as_current_span(
            "from-remote", context=trace.set_span_in_context(NonRecordingSpan(remote)),
            attributes=genai_attrs(input_tokens=100, output_tokens=10)):
        pass
    return {s.name: (dict(s.attributes or {}), s.dropped_attributes) for s in cap.spans()}
