"""Cost enrichment: priced/unpriced/no_usage/aggregate, step, cost_to_date, safety, bounds.

Spans here carry the attribute names opentelemetry-instrumentation-openai and
-anthropic 0.62 emit; the real clients are exercised in
test_processor_clients.py.
"""

from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry import baggage, trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan

import spanledger
from spanledger import semconv as sc
from spanledger.pricing.catalog import PriceCatalog
from support.processor import assert_cost, capture, cost_of, expected_cost, shared_catalog

MODEL = "gpt-4o-mini-2024-07-18"


def chat_attrs(model: str = MODEL, provider: str = "openai", inp: int = 1000, out: int = 200,
               cache_read: int = 0, cache_write: int = 0, op: str = "chat") -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": op,
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model.rsplit("-2024", 1)[0],
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": inp,
        "gen_ai.usage.output_tokens": out,
        "gen_ai.usage.total_tokens": inp + out,
    }
    if cache_read:
        attrs["gen_ai.usage.cache_read.input_tokens"] = cache_read
    if cache_write:
        attrs["gen_ai.usage.cache_creation.input_tokens"] = cache_write
    return attrs


def llm_call(tracer: trace.Tracer, name: str, **kw: Any) -> None:
    with tracer.start_as_current_span(name, kind=trace.SpanKind.CLIENT,
                                      attributes=chat_attrs(**kw)):
        pass


def test_priced_chat_span_carries_exact_cost_parts_step_and_total() -> None:
    cap = capture()
    llm_call(cap.tracer(), "chat gpt-4o-mini", inp=1000, out=200, cache_read=400)
    span = cap.one("chat gpt-4o-mini")
    want = expected_cost(MODEL, "openai", input_tokens=1000, output_tokens=200, cache_read=400)
    assert_cost(span, want)
    attrs = span.attributes or {}
    assert attrs[sc.STEP] == 1
    assert Decimal(repr(attrs[sc.TRACE_COST_TO_DATE])) == cost_of(span)
    assert attrs[sc.PRICE_SOURCE] == shared_catalog().version
    assert attrs[sc.COST_CACHE_READ] > 0
    # the cache discount is applied: cheaper than the same tokens uncached
    assert want < expected_cost(MODEL, "openai", input_tokens=1000, output_tokens=200)


def test_anthropic_cache_read_and_write_priced() -> None:
    cap = capture()
    llm_call(cap.tracer(), "chat claude", model="claude-sonnet-4-5", provider="anthropic",
             inp=3000, out=100, cache_read=1200, cache_write=800)
    want = expected_cost("claude-sonnet-4-5", "anthropic", input_tokens=3000, output_tokens=100,
                         cache_read=1200, cache_write=800)
    assert_cost(cap.one("chat claude"), want)
    attrs = cap.one("chat claude").attributes or {}
    assert attrs[sc.COST_CACHE_WRITE] > 0 and attrs[sc.COST_CACHE_READ] > 0


def test_unknown_model_is_unpriced_without_cost_and_warned_once(
        caplog: pytest.LogCaptureFixture) -> None:
    catalog = PriceCatalog()
    cap = capture(catalog=catalog)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            llm_call(cap.tracer(), "chat mystery", model="mystery-model-9000", provider="openai")
    spans = cap.named("chat mystery")
    assert len(spans) == 3
    for span in spans:
        attrs = span.attributes or {}
        assert attrs[sc.COST_STATUS] == sc.STATUS_UNPRICED
        assert sc.COST not in attrs and sc.STEP not in attrs
    warnings = [r for r in caplog.records if "mystery-model-9000" in r.getMessage()]
    assert len(warnings) == 1
    assert sum(catalog.unpriced_counts().values()) == 3


def test_genai_span_without_usage_is_no_usage() -> None:
    cap = capture()
    with cap.tracer().start_as_current_span("execute_tool search", attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}):
        pass
    attrs = cap.one("execute_tool search").attributes or {}
    assert attrs[sc.COST_STATUS] == sc.STATUS_NO_USAGE
    assert sc.COST not in attrs


def test_agent_is_aggregate_and_trace_is_not_double_counted() -> None:
    cap = capture()
    tracer = cap.tracer()
    # The agent span reports the summed usage of its steps, as frameworks do.
    with spanledger.attribute(team="agents"), tracer.start_as_current_span(
            "invoke_agent helper", attributes=chat_attrs(op="invoke_agent", inp=3000, out=600)):
        llm_call(tracer, "chat 1", inp=1000, out=200)
        with tracer.start_as_current_span("execute_tool lookup", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"}), \
                tracer.start_as_current_span("GET /lookup"):  # a plain span in between
            llm_call(tracer, "chat in tool", inp=500, out=100)
        llm_call(tracer, "chat 2", inp=1500, out=300, cache_read=1000)
    c1 = expected_cost(MODEL, "openai", input_tokens=1000, output_tokens=200)
    c_tool = expected_cost(MODEL, "openai", input_tokens=500, output_tokens=100)
    c2 = expected_cost(MODEL, "openai", input_tokens=1500, output_tokens=300, cache_read=1000)
    assert_cost(cap.one("chat 1"), c1)
    assert_cost(cap.one("chat in tool"), c_tool)
    assert_cost(cap.one("chat 2"), c2)
    agent = cap.one("invoke_agent helper").attributes or {}
    assert agent[sc.COST_STATUS] == sc.STATUS_AGGREGATE
    assert sc.COST not in agent
    assert abs(Decimal(repr(agent[sc.COST_ROLLUP])) - (c1 + c_tool + c2)) <= Decimal("1e-9")
    tool = cap.one("execute_tool lookup").attributes or {}
    assert tool[sc.COST_STATUS] == sc.STATUS_AGGREGATE
    assert abs(Decimal(repr(tool[sc.COST_ROLLUP])) - c_tool) <= Decimal("1e-9")
    plain = cap.one("GET /lookup").attributes or {}
    assert sc.COST_STATUS not in plain and plain["spanledger.team"] == "agents"
    # sum of gen_ai.usage.cost over the trace == the leaf calls, once each
    total = sum((cost_of(s) or Decimal(0)) for s in cap.spans())
    assert abs(total - (c1 + c_tool + c2)) <= Decimal("1e-9")
    # steps in end order, running totals
    steps = sorted(((s.attributes or {})[sc.STEP], s.name,
                    (s.attributes or {})[sc.TRACE_COST_TO_DATE])
                   for s in cap.spans() if sc.STEP in (s.attributes or {}))
    assert [(st, name) for st, name, _ in steps] == [
        (1, "chat 1"), (2, "chat in tool"), (3, "chat 2")]
    assert abs(Decimal(repr(steps[-1][2])) - (c1 + c_tool + c2)) <= Decimal("1e-9")
    assert abs(Decimal(repr(steps[0][2])) - c1) <= Decimal("1e-9")


def test_framework_span_summing_its_child_is_aggregate() -> None:
    cap = capture()
    tracer = cap.tracer()
    with tracer.start_as_current_span("ChatOpenAI.chat", attributes=chat_attrs(inp=800, out=80)):
        llm_call(tracer, "openai.chat", inp=800, out=80)
    inner = expected_cost(MODEL, "openai", input_tokens=800, output_tokens=80)
    assert_cost(cap.one("openai.chat"), inner)
    outer = cap.one("ChatOpenAI.chat").attributes or {}
    assert outer[sc.COST_STATUS] == sc.STATUS_AGGREGATE and sc.COST not in outer


def test_remote_agent_with_usage_is_aggregate_by_operation() -> None:
    """invoke_agent whose steps ran elsewhere: its usage is theirs, never counted here."""
    cap = capture()
    with cap.tracer().start_as_current_span("invoke_agent remote", attributes=chat_attrs(
            op="invoke_agent", inp=5000, out=500)):
        pass
    attrs = cap.one("invoke_agent remote").attributes or {}
    assert attrs[sc.COST_STATUS] == sc.STATUS_AGGREGATE
    assert attrs[sc.COST_ROLLUP] == 0.0 and sc.COST not in attrs


def test_steps_are_per_trace_and_thread_safe() -> None:
    cap = capture()
    tracer = cap.tracer()
    with tracer.start_as_current_span("root") as root:
        ctx = trace.set_span_in_context(root)

        def calls() -> None:
            for _ in range(20):
                with tracer.start_as_current_span("call", context=ctx, attributes=chat_attrs()):
                    pass

        threads = [threading.Thread(target=calls) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    llm_call(tracer, "other trace")
    calls_ = cap.named("call")
    assert sorted((s.attributes or {})[sc.STEP] for s in calls_) == list(range(1, 81))
    one = expected_cost(MODEL, "openai", input_tokens=1000, output_tokens=200)
    final = max(Decimal(repr((s.attributes or {})[sc.TRACE_COST_TO_DATE])) for s in calls_)
    assert abs(final - 80 * one) <= Decimal("1e-9")
    assert (cap.one("other trace").attributes or {})[sc.STEP] == 1
    # the plain root is not an LLM call: no status, no cost
    assert sc.COST_STATUS not in (cap.one("root").attributes or {})


def test_enriched_copy_is_a_new_readable_span_and_encodes_to_otlp() -> None:
    seen: list[ReadableSpan] = []

    class Recorder:
        def on_start(self, span: Any, parent_context: Any = None) -> None: ...
        def _on_ending(self, span: Any) -> None: ...
        def on_end(self, span: ReadableSpan) -> None:
            seen.append(span)
        def shutdown(self) -> None: ...
        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    cap = capture()
    cap.provider.add_span_processor(Recorder())  # type: ignore[arg-type]
    llm_call(cap.tracer(), "chat")
    (original,) = seen
    (enriched,) = cap.spans()
    assert enriched is not original and type(enriched) is ReadableSpan
    assert sc.COST not in (original.attributes or {})  # the frozen original is untouched
    assert enriched.context == original.context and enriched.end_time == original.end_time
    request = encode_spans([enriched])
    kv = {a.key: a.value for a in request.resource_spans[0].scope_spans[0].spans[0].attributes}
    assert kv[sc.COST].double_value == (enriched.attributes or {})[sc.COST]


class ExplodingCatalog:
    """A catalog that fails inside enrichment."""

    call_keys: frozenset[str] = frozenset()
    version = "boom"

    def price_tokens(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("catalog exploded")

    def note_unpriced(self, *args: Any) -> None: ...


def test_exception_in_enrichment_exports_the_original_span(
        caplog: pytest.LogCaptureFixture) -> None:
    cap = capture(catalog=ExplodingCatalog())
    with caplog.at_level(logging.ERROR, logger="spanledger.processor"), \
            spanledger.attribute(team="a"):
        llm_call(cap.tracer(), "chat 1")
        llm_call(cap.tracer(), "chat 2")
    spans = cap.spans()
    assert [s.name for s in spans] == ["chat 1", "chat 2"]
    for span in spans:
        attrs = span.attributes or {}
        assert sc.COST not in attrs and attrs["spanledger.team"] == "a"
        assert attrs["gen_ai.usage.input_tokens"] == 1000
    assert cap.processor.stats.errors == 2
    assert len([r for r in caplog.records if "CostSpanProcessor.on_end" in r.getMessage()]) == 1


def test_trace_state_is_bounded_by_count_and_age() -> None:
    cap = capture(max_traces=3, max_age_s=60)
    tracer = cap.tracer()
    leaked = []
    with spanledger.attribute(team="leaky"):
        for i in range(10):  # traces whose root never ends (a leaked span), one priced call each
            root = tracer.start_span(f"never-ends-{i}")
            leaked.append(root)
            with tracer.start_as_current_span("chat", context=trace.set_span_in_context(root),
                                              attributes=chat_attrs()):
                pass
    proc = cap.processor
    assert len(proc.traces) == 3 and proc.traces.evicted == 7
    assert len(proc.roots) <= 3
    assert len(proc._pending) <= 1000  # rollups waiting for the never-ending roots: capped
    # age: a trace idle longer than max_age_s goes when a new one arrives
    cap2 = capture(max_traces=100, max_age_s=60)
    t2 = cap2.tracer()
    long_ago = time.time_ns() - 120 * 10**9
    t2.start_span("old", start_time=long_ago, attributes=chat_attrs()).end(end_time=long_ago + 1000)
    assert len(cap2.processor.traces) == 1
    llm_call(t2, "fresh")
    assert len(cap2.processor.traces) == 1 and cap2.processor.traces.evicted == 1
    for span in leaked:
        span.end()  # ending a span of an evicted trace still exports it
    assert len(cap.named("chat")) == 10 and len(cap.spans()) == 20 and len(cap2.spans()) == 2
    # an evicted trace restarts its step count instead of failing
    assert all((s.attributes or {})[sc.STEP] == 1 for s in cap.named("chat"))


def test_require_policy_logs_and_counts_but_never_drops(caplog: pytest.LogCaptureFixture) -> None:
    cap = capture(require=["team"])
    tracer = cap.tracer()
    with caplog.at_level(logging.WARNING, logger="spanledger.processor"):
        llm_call(tracer, "untagged 1")
        llm_call(tracer, "untagged 2", inp=10, out=1)
        with spanledger.attribute(team="search"):
            llm_call(tracer, "tagged")
    assert len(cap.spans()) == 3
    stats = cap.processor.stats
    assert stats.unattributed_calls == 2
    want = (expected_cost(MODEL, "openai", input_tokens=1000, output_tokens=200)
            + expected_cost(MODEL, "openai", input_tokens=10, output_tokens=1))
    assert abs(stats.unattributed_cost - want) <= Decimal("1e-9")
    assert len([r for r in caplog.records if "required" in r.getMessage()]) == 1


def test_exception_in_on_start_still_starts_and_exports_the_span(
        caplog: pytest.LogCaptureFixture) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise ValueError("no text")

    cap = capture()
    ctx = baggage.set_baggage("team", Unprintable())
    with caplog.at_level(logging.ERROR, logger="spanledger.processor"):
        cap.tracer().start_span("odd baggage", context=ctx).end()
        llm_call(cap.tracer(), "chat")
    assert [s.name for s in cap.spans()] == ["odd baggage", "chat"]
    assert_cost(cap.one("chat"), expected_cost(MODEL, "openai", input_tokens=1000,
                                               output_tokens=200))
    assert cap.processor.stats.errors == 1
    assert len([r for r in caplog.records if "CostSpanProcessor.on_start" in r.getMessage()]) == 1
