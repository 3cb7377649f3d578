"""Real OTLP from the OpenTelemetry SDK exporters (gRPC and HTTP) into a running collector.

Checks what a user sees in ClickHouse after SIGTERM: every span stored once
with the contrib exporter's column values, every GenAI span priced by the collector
with the same cost attributes as the in-service processor would (a service's own
figure kept beside it as reported), and rollups equal to sums computed here in
Python with Decimal.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from spanledger.collector.convert import SPAN_KINDS, STATUS_CODES
from support.collector import read_store_many, start_collector

Q = Decimal("1e-12")


def _provider(exporter: object, service: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({
        "service.name": service, "deployment.environment.name": "test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[arg-type]
    return provider


def _emit(provider: TracerProvider, n: int, prefix: str) -> list[dict[str, object]]:
    """n priced chat spans (cost set like the processor does) + n unpriced ones + an agent span."""
    tracer = provider.get_tracer("tests.collector", "1.0")
    expected: list[dict[str, object]] = []
    with tracer.start_as_current_span("invoke_agent planner", kind=SpanKind.INTERNAL) as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        agent.set_attribute("gen_ai.usage.input_tokens", 999)
        agent.set_attribute("spanledger.team", f"{prefix}-team")
        for i in range(n):
            cost = Decimal("0.000123456789") * (i + 1)  # the service's figure: not stored
            with tracer.start_as_current_span(f"chat gpt-4o-mini {i}", kind=SpanKind.CLIENT) as sp:
                sp.set_attribute("gen_ai.operation.name", "chat")
                sp.set_attribute("gen_ai.provider.name", "openai")
                sp.set_attribute("gen_ai.request.model", "gpt-4o-mini")
                sp.set_attribute("gen_ai.usage.input_tokens", 100 + i)
                sp.set_attribute("gen_ai.usage.output_tokens", 10 + i)
                sp.set_attribute("gen_ai.usage.cost", float(cost))
                sp.set_attribute("spanledger.cost.input", float(cost))
                sp.set_attribute("spanledger.cost.status", "priced")
                sp.set_attribute("spanledger.team", f"{prefix}-team")
                sp.set_attribute("llm.is_streaming", False)
                sp.set_attribute("gen_ai.request.temperature", 0.5)
                if i == 0:
                    sp.set_status(Status(StatusCode.ERROR, "rate limited"))
                expected.append({"cost": cost, "usage": (100 + i, 10 + i, 0), "kind": "priced"})
        for i in range(n):
            usage = (1000 + 10 * i, 50 + i, 200)
            with tracer.start_as_current_span(f"chat unpriced {i}", kind=SpanKind.CLIENT) as sp:
                sp.set_attribute("gen_ai.operation.name", "chat")
                sp.set_attribute("gen_ai.provider.name", "openai")
                sp.set_attribute("gen_ai.request.model", "gpt-4o-mini")
                sp.set_attribute("gen_ai.usage.input_tokens", usage[0])
                sp.set_attribute("gen_ai.usage.output_tokens", usage[1])
                sp.set_attribute("gen_ai.usage.cache_read.input_tokens", usage[2])
                sp.set_attribute("spanledger.team", f"{prefix}-team")
                expected.append({"usage": usage, "kind": "collector"})
        with tracer.start_as_current_span("chat mystery-model-9000", kind=SpanKind.CLIENT) as sp:
            sp.set_attribute("gen_ai.operation.name", "chat")
            sp.set_attribute("gen_ai.provider.name", "openai")
            sp.set_attribute("gen_ai.request.model", "mystery-model-9000")
            sp.set_attribute("gen_ai.usage.input_tokens", 10)
            sp.set_attribute("gen_ai.usage.output_tokens", 10)
            sp.set_attribute("spanledger.team", f"{prefix}-team")
            expected.append({"kind": "unknown"})
    provider.force_flush()
    provider.shutdown()
    return expected


def _independent_cost(usage: tuple[int, int, int]) -> Decimal:
    """The price straight from genai-prices, not through spanledger's catalog."""
    price = calc_price(Usage(input_tokens=usage[0], output_tokens=usage[1],
                             cache_read_tokens=usage[2]),
                       model_ref="gpt-4o-mini", provider_id="openai",
                       genai_request_timestamp=dt.datetime.now(dt.UTC))
    return Decimal(price.total_price).quantize(Q)


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_exporter_to_rollups(tmp_path: Path, transport: str) -> None:
    store = tmp_path / "store"
    collector = start_collector(store)
    try:
        if transport == "grpc":
            exporter = GrpcExporter(endpoint=collector.grpc_target, insecure=True)
        else:
            exporter = HttpExporter(endpoint=collector.http_url)
        expected = _emit(_provider(exporter, f"svc-{transport}"), 6, transport)
        sent = len(expected) + 1  # + the agent span
        assert collector.wait_metric("spans_written_total", sent) == sent
        status, health = collector.get("healthz")
        assert (status, health.strip()) == (200, "ok")
    finally:
        assert collector.stop() == 0, "".join(collector.output)
    assert not (store / "collector.json").exists()  # the SQL endpoint was withdrawn

    (rows, traces, calls, daily, by_trace, attrs, reported) = read_store_many(store, [
        "SELECT count(), uniqExact(TraceId, SpanId) FROM otel_traces",
        "SELECT DISTINCT ServiceName, length(TraceId), length(SpanId), ScopeName, ScopeVersion "
        "FROM otel_traces",
        "SELECT Status, count(), sum(Cost) FROM llm_calls GROUP BY Status ORDER BY Status",
        "SELECT sum(Calls), sum(Cost) FROM llm_cost_daily WHERE Status = 'priced'",
        "SELECT sum(Calls), sum(UnpricedCalls), sum(Cost), sum(ErrorCalls) FROM llm_cost_by_trace",
        "SELECT SpanKind, StatusCode, StatusMessage, SpanAttributes['llm.is_streaming'], "
        "SpanAttributes['gen_ai.request.temperature'], SpanAttributes['gen_ai.usage.input_tokens'] "
        "FROM otel_traces WHERE SpanName = 'chat gpt-4o-mini 0'",
        "SELECT CostReportedBy, count(), sum(CostReported) FROM llm_calls "
        "WHERE CostReportedBy != '' GROUP BY CostReportedBy",
    ])
    assert rows[0] == (sent, sent)
    assert traces == [(f"svc-{transport}", 32, 16, "tests.collector", "1.0")]
    assert attrs == [(SPAN_KINDS[3], STATUS_CODES[2], "rate limited", "false", "0.5", "100")]

    # the collector decides every cost; the services' own figures are kept beside, not summed
    total = sum((_independent_cost(e["usage"]) for e in expected  # type: ignore[arg-type]
                 if e["kind"] in ("priced", "collector")), Decimal(0)).quantize(Q)
    service_figures = sum((e["cost"] for e in expected if e["kind"] == "priced"), Decimal(0))
    assert [(by, n) for by, n, _ in reported] == [("service", 6)]
    assert abs(reported[0][2] - service_figures) <= Decimal("1e-9")
    by_status = {s: (n, c) for s, n, c in calls}
    assert by_status["aggregate"] == (1, Decimal(0))  # the agent span: marked, not counted
    assert by_status["unpriced"] == (1, Decimal(0))  # unknown model: no silent $0 cost row
    assert by_status["priced"][0] == 12
    assert abs(by_status["priced"][1] - total) <= Decimal("1e-9")
    assert daily[0][0] == 12 and abs(daily[0][1] - total) <= Decimal("1e-9")
    assert by_trace[0][0] == 13 and by_trace[0][1] == 1  # 12 priced + 1 unpriced calls
    assert abs(by_trace[0][2] - total) <= Decimal("1e-9")
    assert by_trace[0][3] == 1  # the span with an error status counts as an error call


def test_collector_prices_unpriced_spans_like_the_processor(tmp_path: Path) -> None:
    """The attributes the collector adds are the processor's: status, cost, parts, source."""
    store = tmp_path / "store"
    collector = start_collector(store)
    try:
        exporter = GrpcExporter(endpoint=collector.grpc_target, insecure=True)
        expected = _emit(_provider(exporter, "svc-price"), 2, "p")
        collector.wait_metric("spans_written_total", len(expected) + 1)
        assert collector.metric("spans_priced_total") == 4  # the services' two re-priced too
        assert collector.metric("spans_unpriced_total") == 1
        assert collector.metric("spans_aggregate_total") == 1
    finally:
        assert collector.stop() == 0
    (rows,) = read_store_many(store, [
        "SELECT SpanAttributes['spanledger.cost.status'], SpanAttributes['gen_ai.usage.cost'], "
        "SpanAttributes['spanledger.cost.input'], SpanAttributes['spanledger.cost.output'], "
        "SpanAttributes['spanledger.cost.cache_read'], SpanAttributes['spanledger.price.source'] "
        "FROM otel_traces WHERE SpanName = 'chat unpriced 0'",
    ])
    status, total, inp, out, cache_read, source = rows[0]
    assert status == "priced"
    assert source.startswith("genai-prices@")
    assert "e" not in total.lower()  # plain decimal text: ClickHouse parses it exactly
    parts = Decimal(inp) + Decimal(out) + Decimal(cache_read)
    assert abs(Decimal(total) - _independent_cost(expected[2]["usage"])) <= Decimal("1e-9")  # type: ignore[arg-type]
    assert abs(parts - Decimal(total)) <= Decimal("1e-9")
