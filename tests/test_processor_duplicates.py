"""One provider call, one counted cost: the matching rule on hand-made spans.

The real clients are in test_processor_conventions.py; here each clause of the rule
(pricing/duplicates.py) is pinned on its own, in the processor and in the collector's
enricher: what matches (response id in any trace, siblings, parent/child, a span between),
what never does (one instrumentation's two calls, calls one after the other, other usage,
other response ids), which span keeps the cost, and the bounds of the processor's memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

from spanledger import semconv as sc
from spanledger.collector.convert import Columns
from spanledger.collector.pricing_enricher import PricingEnricher
from support.matrix import Pipelines, otlp_request, status
from support.processor import expected_cost

BASE = 1_790_000_000_000_000_000


def chat(*, rid: str | None = "chatcmpl-1", inp: int = 1200, out: int = 80,
         model: str = "gpt-4o-mini") -> dict[str, Any]:
    attrs: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                             "gen_ai.request.model": model, "gen_ai.usage.input_tokens": inp,
                             "gen_ai.usage.output_tokens": out}
    if rid:
        attrs["gen_ai.response.id"] = rid
    return attrs


class Spans:
    """Spans with chosen scopes, times and parents, on both pipelines."""

    def __init__(self) -> None:
        self.p = Pipelines()
        self.open: dict[str, Any] = {}

    def start(self, name: str, scope: str, attrs: dict[str, Any], at: int,
              parent: str | None = None, root: bool = False) -> None:
        tracer = self.p.provider.get_tracer(scope)
        ctx = (trace.set_span_in_context(self.open[parent]) if parent
               else (trace.set_span_in_context(trace.INVALID_SPAN) if root else None))
        self.open[name] = tracer.start_span(name, context=ctx, attributes=attrs,
                                            start_time=BASE + at)

    def end(self, name: str, at: int) -> None:
        self.open[name].end(end_time=BASE + at)

    def statuses(self) -> dict[str, str | None]:
        return {s.name: status(s) for s in self.p.priced_spans()}

    def priced(self, name: str) -> ReadableSpan:
        return next(s for s in self.p.priced_spans() if s.name == name)


def test_side_by_side_in_two_traces_matched_by_response_id() -> None:
    s = Spans()
    s.start("instrumentation", "opentelemetry.instrumentation.anthropic", chat(), 0, root=True)
    s.start("sdk", "com.anthropic.sdk.python", chat(), 10, root=True)
    s.end("sdk", 90)
    s.end("instrumentation", 100)
    assert s.statuses() == {"sdk": sc.STATUS_PRICED, "instrumentation": sc.STATUS_DUPLICATE}
    sdk = s.priced("sdk")
    assert (s.priced("instrumentation").attributes or {})[sc.DUPLICATE_OF] == \
        f"{sdk.context.span_id:016x}"
    assert s.p.processor.stats.duplicates == 1


def test_siblings_without_a_response_id_and_a_span_between() -> None:
    s = Spans()
    s.start("app", "app", {}, 0)
    s.start("outer", "opentelemetry.instrumentation.mistralai", chat(), 1, parent="app")
    s.start("framework", "some.framework", {"gen_ai.operation.name": "chat"}, 2, parent="outer")
    s.start("inner", "mistralai_sdk_tracer", chat(rid=None), 3, parent="framework")
    for name, at in (("inner", 50), ("framework", 60), ("outer", 70), ("app", 80)):
        s.end(name, at)
    got = s.statuses()
    assert got["inner"] == sc.STATUS_PRICED and got["outer"] == sc.STATUS_DUPLICATE
    assert got["framework"] == sc.STATUS_AGGREGATE  # no usage of its own: a rollup span


@pytest.mark.parametrize(("change", "why"), [
    ({"scope": "same"}, "one instrumentation does not trace a call twice"),
    ({"at": (200, 300)}, "one call after the other"),
    ({"attrs": chat(out=81)}, "other usage"),
    ({"attrs": chat(rid="chatcmpl-2")}, "another response id"),
    ({"attrs": chat(model="gpt-4o")}, "another model"),
])
def test_what_never_matches(change: dict[str, Any], why: str) -> None:
    s = Spans()
    s.start("app", "app", {}, 0)
    s.start("a", "scope.a", chat(), 10, parent="app")
    s.end("a", 100)
    scope = "scope.a" if change.get("scope") == "same" else "scope.b"
    start, end = change.get("at", (20, 90))
    s.start("b", scope, change.get("attrs", chat()), start, parent="app")
    s.end("b", end)
    s.end("app", 400)
    got = s.statuses()
    assert got["a"] == got["b"] == sc.STATUS_PRICED, why


def test_three_instrumentations_of_one_call_count_once() -> None:
    s = Spans()
    s.start("app", "app", {}, 0)
    s.start("v2", "opentelemetry.instrumentation.openai_v2", chat(), 1, parent="app")
    s.start("oll", "opentelemetry.instrumentation.openai.v1", chat(), 2, parent="v2")
    s.start("oi", "openinference.instrumentation.openai", {
        "llm.model_name": "gpt-4o-mini", "llm.token_count.prompt": 1200,
        "llm.token_count.completion": 80, "llm.system": "openai"}, 3, parent="oll")
    for name, at in (("oi", 50), ("oll", 60), ("v2", 70), ("app", 80)):
        s.end(name, at)
    got = s.statuses()
    assert [got["oi"], got["oll"], got["v2"]] == [sc.STATUS_PRICED] + [sc.STATUS_DUPLICATE] * 2
    kept = f"{s.priced('oi').context.span_id:016x}"
    assert {(s.priced(n).attributes or {})[sc.DUPLICATE_OF] for n in ("oll", "v2")} == {kept}
    total = sum(Decimal(repr((x.attributes or {}).get(sc.COST, 0.0)))
                for x in s.p.priced_spans())
    assert abs(total - expected_cost("gpt-4o-mini", "openai", input_tokens=1200,
                                     output_tokens=80)) <= Decimal("1e-9")


def test_a_second_instrumentation_finds_calls_made_before_it_appeared() -> None:
    """With one instrumentation the processor only keeps a ring of its last calls (no index:
    nothing can be a duplicate); the first span of a second one still finds its partner."""
    s = Spans()
    for i in range(100):  # one instrumentation, many calls
        s.start(f"c{i}", "scope.a", chat(rid=f"r{i}", inp=100 + i), 10 * i, root=True)
        s.end(f"c{i}", 10 * i + 5)
    calls = s.p.processor._calls
    assert not calls.multi and len(calls) == 0 and len(calls.ring) == calls.ring_size
    s.start("sdk", "scope.a", chat(rid="rX"), 2000, root=True)
    s.start("wrapper", "scope.b", chat(rid="rX"), 1999, root=True)
    s.end("sdk", 2010)
    s.end("wrapper", 2011)
    assert s.statuses()["wrapper"] == sc.STATUS_DUPLICATE and calls.multi


def test_the_index_is_bounded() -> None:
    from spanledger.processor.state import CallIndex

    p = Pipelines()
    p.processor._calls = index = CallIndex(max_keys=50, per_key=4)
    p.processor._check_call = index.check_and_add
    index.multi = True
    tracer = p.provider.get_tracer("x")
    for i in range(2000):
        with tracer.start_as_current_span(f"t{i}", attributes=chat(rid=f"r{i % 7}")):
            pass
    assert len(index.by_rid) <= 50 and len(index.by_trace) <= 50
    assert all(len(b) <= 4 for b in (*index.by_rid.values(), *index.by_trace.values()))


# -- the collector: all spans of a chunk together, the most complete one keeps the cost -------

def enrich(spans: list[ReadableSpan]) -> dict[str, dict[str, str]]:
    cols = Columns()
    enricher = PricingEnricher()
    cols.add(otlp_request(spans), enricher)
    table = cols.table()
    return {n: dict(a) for n, a in zip(table.column("SpanName").to_pylist(),
                                      table.column("SpanAttributes").to_pylist(), strict=True)}


def test_collector_keeps_the_most_complete_span_whatever_the_order() -> None:
    s = Spans()
    anthropic = {"gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-sonnet-4-5",
                 "gen_ai.response.id": "msg_1", "gen_ai.usage.input_tokens": 4500,
                 "gen_ai.usage.output_tokens": 400, "gen_ai.usage.cache_read.input_tokens": 1000}
    s.start("instrumentation", "opentelemetry.instrumentation.anthropic",
            {**anthropic, "gen_ai.usage.cache_creation.input_tokens": 500}, 0, root=True)
    s.start("sdk", "com.anthropic.sdk.python", {
        **anthropic, "gen_ai.usage.cache_write.input_tokens": 500,
        "anthropic.usage.cache_creation.ephemeral_1h_input_tokens": 300}, 10, root=True)
    s.end("sdk", 90)
    s.end("instrumentation", 100)
    raw = s.p.raw_spans()
    for order in (raw, list(reversed(raw))):
        rows = enrich(order)
        assert rows["sdk"][sc.COST_STATUS] == sc.STATUS_PRICED
        assert rows["instrumentation"][sc.COST_STATUS] == sc.STATUS_DUPLICATE
        assert sc.COST not in rows["instrumentation"]
        assert rows["sdk"][sc.USAGE_CACHE_WRITE_1H] == "300"
    # one alone is priced normally
    only = enrich([x for x in raw if x.name == "instrumentation"])
    assert only["instrumentation"][sc.COST_STATUS] == sc.STATUS_PRICED


@contextmanager
def env(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def test_semconv_cost_names_behind_a_setting() -> None:
    from spanledger.processor.cost_processor import CostSpanProcessor

    for on in (False, True):
        with env(sc.SEMCONV_COST_ENV, "1" if on else ""):
            p = Pipelines()
            assert CostSpanProcessor(p.processor.next_processor).semconv_cost is on
            p.processor.semconv_cost = on
            with p.tracer().start_as_current_span("c", attributes=chat()):
                pass
            attrs = p.priced_spans()[0].attributes or {}
            assert (sc.COST_AMOUNT in attrs) is on
            if on:
                assert attrs[sc.COST_AMOUNT] == attrs[sc.COST]
                assert attrs[sc.COST_CURRENCY] == "USD"
            row = enrich(p.raw_spans())["c"]
            assert (sc.COST_AMOUNT in row) is on


def test_another_tools_cost_is_kept_beside_ours_and_disagreements_counted() -> None:
    p = Pipelines()
    with p.tracer("openlit.instrumentation.openai").start_as_current_span(
            "c", attributes={**chat(), "gen_ai.usage.cost": 0.0}):  # openlit offline: $0
        pass
    attrs = p.priced_spans()[0].attributes or {}
    assert attrs[sc.COST_REPORTED] == 0.0 and attrs[sc.COST] > 0
    assert p.processor.stats.reported == 1 and p.processor.stats.reported_disagreements == 1
