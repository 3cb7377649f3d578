"""price_span on real SDK spans and on collector-style dicts: statuses, attributes, counters."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanledger import semconv
from spanledger.pricing.catalog import PriceCatalog
from spanledger.pricing.span_pricing import price_span
from spanledger.pricing.types import TokenUsage
from support.pricing import TOLERANCE, assert_matches, day, ns, reference, write

AT = day(2026, 11, 1)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> PriceCatalog:
    path = write(
        tmp_path_factory.mktemp("prices"),
        """
        calls:
          - db_system: qdrant
            per_call: 0.00002
          - tool: web_search
            per_call: 0.01
        """,
    )
    return PriceCatalog(path)


def sdk_span(attrs: dict[str, Any]) -> ReadableSpan:
    """A finished span from the real SDK: attributes are a proxy over BoundedAttributes."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span(
        "call", attributes=attrs, start_time=ns(AT)
    ):
        pass
    provider.shutdown()
    (span,) = exporter.get_finished_spans()
    return span


CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 12_000,
    "gen_ai.usage.output_tokens": 800,
    "gen_ai.usage.cache_read.input_tokens": 4_000,
}


def test_plain_spans_are_none(catalog: PriceCatalog) -> None:
    assert price_span(catalog, {}, ns(AT)) is None
    assert price_span(catalog, {"http.method": "GET", "url.full": "http://x"}, ns(AT)) is None
    # a database without a per-call price is not priceable
    assert (
        price_span(catalog, {"db.system.name": "postgresql", "db.query.text": "SELECT 1"}, ns(AT))
        is None
    )
    span = sdk_span({"http.request.method": "GET"})
    assert price_span(catalog, span.attributes, span.start_time) is None  # type: ignore[arg-type]
    assert price_span(PriceCatalog(), {"db.system.name": "qdrant"}, ns(AT)) is None


def test_priced_chat_span_on_sdk_span(catalog: PriceCatalog) -> None:
    span = sdk_span(CHAT)
    result = price_span(catalog, span.attributes, span.start_time)  # type: ignore[arg-type]
    assert result is not None and result.status == "priced"
    assert result.provider == "openai" and result.model == "gpt-4o-2024-08-06"
    assert result.usage == TokenUsage(12_000, 800, 4_000)
    assert_matches(result.cost, reference("gpt-4o-2024-08-06", "openai", result.usage, AT))
    attrs = result.attributes()
    assert attrs[semconv.COST_STATUS] == "priced"
    assert attrs[semconv.PRICE_SOURCE] == "genai-prices@0.2.3"
    parts = [
        attrs[k]
        for k in (
            semconv.COST_INPUT,
            semconv.COST_OUTPUT,
            semconv.COST_CACHE_READ,
            semconv.COST_CACHE_WRITE,
        )
    ]
    assert all(isinstance(p, float) for p in parts)
    # each float is exactly the float of the 1e-12-quantized Decimal part; parts sum to the total
    assert sum(Decimal(repr(p)) for p in parts) == Decimal(repr(attrs[semconv.COST]))
    assert (
        abs(Decimal(repr(attrs[semconv.COST])) - Decimal("0.033")) <= TOLERANCE
    )  # 8k*2.5 + 4k*1.25 + 800*10 per 1M


def test_collector_style_string_values(catalog: PriceCatalog) -> None:
    attrs = {k: str(v) for k, v in CHAT.items()}
    result = price_span(catalog, attrs, ns(AT))
    assert result is not None and result.status == "priced"
    assert result.cost == price_span(catalog, CHAT, ns(AT)).cost  # type: ignore[union-attr]


def test_no_usage(catalog: PriceCatalog) -> None:
    streaming = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
    }
    result = price_span(catalog, streaming, ns(AT))
    assert result is not None and result.status == "no_usage" and result.cost is None
    assert result.attributes() == {semconv.COST_STATUS: "no_usage"}
    junk = {**streaming, "gen_ai.usage.input_tokens": "n/a"}
    assert price_span(catalog, junk, ns(AT)).status == "no_usage"  # type: ignore[union-attr]


def test_unknown_model_unpriced_warns_once_and_counts(
    catalog: PriceCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    attrs = {
        "gen_ai.system": "openai",
        "gen_ai.request.model": "acme-secret-model",
        "gen_ai.usage.prompt_tokens": 10,
        "gen_ai.usage.completion_tokens": 5,
    }
    before = catalog.unpriced_counts().get(("openai", "acme-secret-model"), 0)
    with caplog.at_level(logging.WARNING, logger="spanledger.pricing.catalog"):
        results = [price_span(catalog, attrs, ns(AT)) for _ in range(3)]
    assert all(r is not None and r.status == "unpriced" and r.cost is None for r in results)
    assert results[0].attributes() == {semconv.COST_STATUS: "unpriced"}  # type: ignore[union-attr]
    assert semconv.COST not in results[0].attributes()  # type: ignore[union-attr]
    assert catalog.unpriced_counts()[("openai", "acme-secret-model")] == before + 3
    assert len([r for r in caplog.records if "acme-secret-model" in r.getMessage()]) == (
        0 if before else 1
    )
    # usage but no model at all: unpriced too
    no_model = price_span(catalog, {"gen_ai.usage.input_tokens": 5}, ns(AT))
    assert no_model is not None and no_model.status == "unpriced"


def test_per_call_spans(catalog: PriceCatalog) -> None:
    qdrant = price_span(
        catalog, {"db.system.name": "qdrant", "db.operation.name": "search"}, ns(AT)
    )
    assert qdrant is not None and qdrant.status == "priced"
    assert qdrant.cost is not None and qdrant.cost.total == Decimal("0.00002")
    attrs = qdrant.attributes()
    assert attrs[semconv.COST] == attrs[semconv.COST_INPUT] == 0.00002
    assert attrs[semconv.PRICE_SOURCE] == "override:prices.yaml"
    legacy = price_span(catalog, {"db.system": "Qdrant"}, ns(AT))
    assert legacy is not None and legacy.status == "priced"
    tool = sdk_span({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "web_search"})
    priced_tool = price_span(catalog, tool.attributes, tool.start_time)  # type: ignore[arg-type]
    assert priced_tool is not None and priced_tool.cost is not None
    assert priced_tool.cost.total == Decimal("0.01")
    other_tool = price_span(
        catalog, {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "calculator"}, ns(AT)
    )
    assert other_tool is not None and other_tool.status == "no_usage"


def test_unpriced_metric_reaches_a_meter_provider(tmp_path: Path) -> None:
    """With a MeterProvider installed, the OTel counter spanledger.spans.unpriced counts."""
    script = textwrap.dedent("""
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        from spanledger.pricing.catalog import PriceCatalog
        from spanledger.pricing.span_pricing import price_span
        catalog = PriceCatalog()
        for _ in range(2):
            span = {"gen_ai.request.model": "nope-9", "gen_ai.usage.input_tokens": 3}
            price_span(catalog, span, 0)
        data = reader.get_metrics_data()
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == "spanledger.spans.unpriced":
                        print(sum(p.value for p in m.data.data_points))
    """)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "2"
