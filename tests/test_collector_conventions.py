"""The coverage matrix through the collector, into llm_calls, llm_cost_by_trace and
llm_cost_daily on the embedded ClickHouse.

Every case of the matrix (real clients and instrumentations against the stub, and the
captured openlit / litellm / pydantic-ai spans) is sent to ``spanledger collector`` twice:

- as the in-service processor exported it (priced, duplicates marked): the collector
  re-prices it (the service's figure kept as reported) and the views must count it
  exactly once;
- as a service WITHOUT the processor sends it (no status): the collector prices it with
  the same readers, marks the duplicate, and the views must show the same cost.

Both must equal ``genai_prices.calc_price`` of the call to 1e-9 USD, in every view.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spanledger.demo.stub_provider import StubProvider
from support.collector import read_store_many, start_collector
from support.fixture_cases import FIXTURE_CASES
from support.matrix import (
    TOLERANCE,
    Expected,
    Pipelines,
    flip_trace,
    hex_trace,
    otlp_request,
    replay,
)
from support.matrix_cases import CASES, run_case


@dataclass
class Sent:
    name: str
    expected: Expected | None
    spans_with_usage: int
    #: trace ids of the call's spans, as exported by the processor and as sent raw
    priced_traces: set[str]
    raw_traces: set[str]
    at: Any = None


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Sent], Path, Any]]:
    sent: list[Sent] = []
    with StubProvider() as stub:
        for c in CASES:
            # a provider per case: instrumentors are process-wide, and one that an earlier
            # case undid imperfectly must not add spans to this case's call
            p = Pipelines()
            expected = run_case(c, p, stub)
            sent.append(_sent(c.name, expected, c.spans_with_usage, p))
            _collect(p)
    for fc in FIXTURE_CASES:
        p = Pipelines()
        replay(p.provider, fc.records())
        s = _sent(fc.id, fc.expected, fc.spans_with_usage, p)
        from datetime import UTC, datetime

        s.at = datetime.fromtimestamp(min(r["start_ns"] for r in fc.records()) / 1e9, UTC)
        sent.append(s)
        _collect(p)
    store = tmp_path_factory.mktemp("matrix") / "store"
    collector = start_collector(store)
    try:
        stub_ = collector.stub()
        stub_.Export(otlp_request(_ALL["priced"]), timeout=30)
        stub_.Export(otlp_request(_ALL["raw"]), timeout=30)
        collector.wait_metric("spans_written_total", len(_ALL["priced"]) + len(_ALL["raw"]))
        metrics = {name: collector.metric(name) for name in (
            "spans_same_call_total", "cost_reported_total", "cost_reported_disagreements_total")}
    finally:
        assert collector.stop() == 0, "".join(collector.output)[-3000:]
    yield sent, store, metrics


_ALL: dict[str, list[Any]] = {"priced": [], "raw": []}


def _collect(p: Pipelines) -> None:
    _ALL["priced"] += p.priced_spans()
    _ALL["raw"] += [flip_trace(s) for s in p.raw_spans()]


def _sent(name: str, expected: Expected | None, n: int, p: Pipelines) -> Sent:
    priced = {hex_trace(s) for s in p.priced_spans()}
    raw = {hex_trace(flip_trace(s)) for s in p.raw_spans()}
    return Sent(name, expected, n, priced, raw)


def _in(traces: set[str]) -> str:
    return "(" + ", ".join(f"'{t}'" for t in sorted(traces)) + ")"


@pytest.mark.parametrize("path", ["priced", "raw"])
def test_every_call_costs_its_price_once_in_every_view(
        matrix: tuple[list[Sent], Path, Any], path: str) -> None:
    sent, store, _ = matrix
    queries = []
    for s in sent:
        traces = _in(s.priced_traces if path == "priced" else s.raw_traces)
        queries += [
            f"SELECT Status, toString(Cost), CallKind FROM llm_calls WHERE TraceId IN {traces}",
            f"SELECT sum(LlmCalls), sum(DuplicateSpans), toString(sum(Cost)) "
            f"FROM llm_cost_by_trace WHERE TraceId IN {traces}",
        ]
    results = read_store_many(store, queries)
    for i, s in enumerate(sent):
        rows, (by_trace,) = results[2 * i], results[2 * i + 1]
        statuses = sorted(r[0] for r in rows)
        where = f"{s.name} ({path}): {rows}"
        if s.expected is None:  # no usage: no cost, no LLM call counted
            assert "priced" not in statuses and by_trace[0] in (0, None), where
            continue
        assert statuses.count("priced") == 1, where
        assert statuses.count("duplicate") == s.spans_with_usage - 1, where
        price = s.expected.price(s.at)
        (cost,) = [Decimal(r[1]) for r in rows if r[0] == "priced"]
        assert abs(cost - price) <= TOLERANCE, (where, price)
        assert all(r[2] == "llm" for r in rows), where
        assert by_trace[0] == 1 and by_trace[1] == s.spans_with_usage - 1, where
        assert abs(Decimal(by_trace[2]) - price) <= TOLERANCE, (where, price)


def test_daily_rollup_sums_each_call_once(matrix: tuple[list[Sent], Path, Any]) -> None:
    sent, store, metrics = matrix
    ((llm, dups, cost, unpriced),) = read_store_many(store, [
        "SELECT sum(LlmCalls), sum(DuplicateSpans), toString(sum(Cost)), "
        "sumIf(Calls, Status = 'unpriced') FROM llm_cost_daily"])[0]
    priced = [s for s in sent if s.expected is not None]
    assert llm == 2 * len(priced)  # both paths, each call once
    assert dups == 2 * sum(s.spans_with_usage - 1 for s in priced)
    want = 2 * sum((s.expected.price(s.at) for s in priced), Decimal(0))  # type: ignore[union-attr]
    assert abs(Decimal(cost) - want) <= TOLERANCE * len(priced) * 2
    assert unpriced == 0
    # the collector marked the duplicates of both paths (a service's duplicate claim is
    # decided by the same rule when both spans arrive together), and compared reported costs
    assert metrics["spans_same_call_total"] == 2 * sum(s.spans_with_usage - 1 for s in priced)
    assert metrics["cost_reported_total"] >= 1
    assert metrics["cost_reported_disagreements_total"] >= 1  # openlit's $0, litellm's cache
