"""The demo's backdating stage, and the plan it follows (no network, no store).

The StagingSpanProcessor sits before the CostSpanProcessor, so pricing must
see the backdated time: checked with a real SDK pipeline and a model whose
price changed (an override with two effective dates).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanledger import semconv as sc
from spanledger.demo.scenario import (
    DAY_NS,
    FEATURES,
    MIN_CALLS,
    RUNAWAY_ROUNDS,
    Chat,
    build_plan,
)
from spanledger.demo.staging import Stage, StagingSpanProcessor, staged
from spanledger.processor.cost_processor import CostSpanProcessor

PRICES = """\
models:
  - model: house-model
    effective_from: 2026-01-01
    input: 1.00
    output: 2.00
  - model: house-model
    effective_from: 2026-06-01
    input: 0.50
    output: 1.00
"""


def _pipeline(tmp_path: Path) -> tuple[TracerProvider, StagingSpanProcessor,
                                        InMemorySpanExporter]:
    prices = tmp_path / "prices.yaml"
    prices.write_text(PRICES)
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "worker"}))
    staging = StagingSpanProcessor(
        CostSpanProcessor(SimpleSpanProcessor(exporter), prices=str(prices)))
    provider.add_span_processor(staging)
    return provider, staging, exporter


def _ns(day: dt.datetime) -> int:
    return int(day.timestamp()) * 1_000_000_000


def test_staged_trace_is_shifted_resourced_and_priced_at_its_backdated_time(
        tmp_path: Path) -> None:
    provider, _, exporter = _pipeline(tmp_path)
    tracer = provider.get_tracer("t")
    target = _ns(dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC))  # old price in force
    resource = Resource.create({"service.name": "billing-api"})
    with staged(Stage(target, resource)), tracer.start_as_current_span("POST /bill") as root:
        with tracer.start_as_current_span("chat house-model", attributes={
            sc.OPERATION: "chat", "gen_ai.provider.name": "openai",
            sc.REQUEST_MODEL: "house-model",
            "gen_ai.usage.input_tokens": 1_000_000, "gen_ai.usage.output_tokens": 1_000_000,
        }) as child:
            child.add_event("retry")
        real_root_start = root.start_time
    spans = {s.name: s for s in exporter.get_finished_spans()}
    root_s, child_s = spans["POST /bill"], spans["chat house-model"]
    assert root_s.start_time == target
    # relative timing inside the trace is kept
    assert child_s.start_time - root_s.start_time == child.start_time - real_root_start
    assert child_s.end_time - child_s.start_time == child.end_time - child.start_time
    assert child_s.events[0].timestamp - child_s.start_time == (
        child.events[0].timestamp - child.start_time)
    assert root_s.resource.attributes["service.name"] == "billing-api"
    # priced at the March price (1.00 + 2.00 per million), not today's (0.50 + 1.00)
    assert Decimal(str(child_s.attributes[sc.COST])) == Decimal("3.00")
    provider.shutdown()


def test_unstaged_spans_pass_through_and_state_is_released(tmp_path: Path) -> None:
    provider, staging, exporter = _pipeline(tmp_path)
    tracer = provider.get_tracer("t")
    with staged(Stage(DAY_NS, Resource.create({"service.name": "x"}))), \
            tracer.start_as_current_span("old"):
        pass
    assert staging._traces == {}  # dropped when the trace's root ended
    with tracer.start_as_current_span("now") as live:
        pass
    now_span = next(s for s in exporter.get_finished_spans() if s.name == "now")
    assert now_span.start_time == live.start_time
    assert now_span.resource.attributes["service.name"] == "worker"
    provider.shutdown()


def test_plan_is_deterministic_and_complete() -> None:
    anchor = _ns(dt.datetime(2026, 11, 24, 7, 0, tzinfo=dt.UTC))
    plan = build_plan(MIN_CALLS, 31, 7, anchor)
    assert plan == build_plan(MIN_CALLS, 31, 7, anchor)
    assert sum(p.provider_calls for p in plan) >= MIN_CALLS
    assert {p.feature for p in plan} == {f.name for f in FEATURES}
    runaway = [p for p in plan if p.runaway]
    assert len(runaway) == 1
    tools = [s for s in runaway[0].steps if isinstance(s, Chat) and s.tool]
    assert len(tools) == RUNAWAY_ROUNDS
    days = {p.start_ns // DAY_NS for p in plan}
    assert len(days) == 31 and max(days) == anchor // DAY_NS
    assert all(p.start_ns < anchor for p in plan)
