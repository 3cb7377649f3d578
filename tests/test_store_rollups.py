"""Rollups on the real engine: spans in otel_traces -> llm_calls -> per trace / per day.

Every expected number is computed in Python from the rows inserted, with
Decimal, and compared exactly with what ClickHouse reports.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from spanledger.store import Store
from support.store import T0, attr, batch, migrated_store, plain_span, span

PICO = Decimal("0.000000000001")


def _trace_rows(store: Store) -> dict[str, tuple]:
    rows = store.query(
        "SELECT TraceId, sum(Calls), sum(UnpricedCalls), sum(ErrorCalls), sum(InputTokens), "
        "sum(OutputTokens), sum(Cost), min(Start), max(End), max(Team), "
        "arraySort(groupUniqArrayArray(Models)) "
        "FROM llm_cost_by_trace GROUP BY TraceId"
    )
    return {r[0]: r[1:] for r in rows}


def _daily(store: Store) -> dict[tuple, tuple]:
    rows = store.query(
        "SELECT Day, Team, Feature, Model, Status, sum(Calls), sum(Errors), sum(InputTokens), "
        "sum(Cost) FROM llm_cost_daily GROUP BY Day, Team, Feature, Model, Status"
    )
    return {r[:5]: r[5:] for r in rows}


def test_rollups_match_python_sums(tmp_path: Path) -> None:
    rows = []
    # trace A: an agent (aggregate parent) with three priced calls, one an error
    rows.append(span("a" * 32, status="aggregate", cost=None, rollup=Decimal("0.006"),
                     input_tokens=900, output_tokens=90, team="search", feature="agent"))
    for i, c in enumerate((Decimal("0.001"), Decimal("0.002"), Decimal("0.003"))):
        rows.append(span("a" * 32, cost=c, parts={"input": c}, team="search",
                         feature="agent", start=T0 + dt.timedelta(seconds=i),
                         input_tokens=300, output_tokens=30,
                         status_code="Error" if i == 2 else "Ok"))
    # trace B: one priced call for another team on another model, plus an unpriced one
    rows.append(span("b" * 32, cost=Decimal("0.5"), model="claude-sonnet-4", team="support",
                     feature="chat", provider="anthropic", input_tokens=1000, output_tokens=200))
    rows.append(span("b" * 32, status="unpriced", cost=None, model="my-finetune",
                     team="support", feature="chat", input_tokens=50, output_tokens=5))
    # a plain HTTP span: never a call
    rows.append(plain_span("b" * 32))

    with migrated_store(tmp_path / "s") as store:
        store.insert_arrow("otel_traces", batch(rows), "t1")

        calls = store.query("SELECT TraceId, Status, Cost FROM llm_calls ORDER BY TraceId, Cost")
        assert len(calls) == 6  # the plain span is not a call
        assert sorted(s for _, s, _ in calls) == sorted(
            ["aggregate", "priced", "priced", "priced", "priced", "unpriced"]
        )

        # expected per trace, in Python: aggregate spans add nothing
        expected: dict[str, dict] = defaultdict(lambda: defaultdict(Decimal))
        for r in rows:
            status = attr(r, "spanledger.cost.status")
            if status in (None, "aggregate"):
                continue
            e = expected[r["TraceId"]]
            e["calls"] += 1
            e["unpriced"] += status == "unpriced"
            e["errors"] += r["StatusCode"] == "Error"
            e["input"] += int(attr(r, "gen_ai.usage.input_tokens") or 0)
            e["cost"] += Decimal(attr(r, "gen_ai.usage.cost") or 0) if status == "priced" else 0

        got = _trace_rows(store)
        assert set(got) == {"a" * 32, "b" * 32}
        for trace_id, e in expected.items():
            calls_, unpriced, errors, inp, _out, cost, *_ = got[trace_id]
            assert (calls_, unpriced, errors, inp) == (
                e["calls"], e["unpriced"], e["errors"], e["input"]
            )
            assert cost == e["cost"]
        assert got["a" * 32][5] == Decimal("0.006")  # not 0.012: the agent span is not added
        # start/end span the calls (end = last start + duration)
        assert got["a" * 32][6] == T0
        assert got["a" * 32][7] == T0 + dt.timedelta(seconds=2, milliseconds=1)
        assert got["b" * 32][9] == ["claude-sonnet-4", "my-finetune"]

        daily = _daily(store)
        day = T0.date()
        assert daily[(day, "search", "agent", "gpt-4o", "priced")] == (
            3, 1, 900, Decimal("0.006")
        )
        assert daily[(day, "support", "chat", "claude-sonnet-4", "priced")] == (
            1, 0, 1000, Decimal("0.5")
        )
        # unpriced is its own visible row: counted, tokens kept, cost zero
        assert daily[(day, "support", "chat", "my-finetune", "unpriced")] == (1, 0, 50, 0)
        assert not any(k[4] == "aggregate" for k in daily)
        total = store.query("SELECT sum(Cost) FROM llm_cost_daily")[0][0]
        assert total == Decimal("0.506")


def test_one_trace_over_several_batches_is_one_row(tmp_path: Path) -> None:
    trace = "c" * 32
    costs = [Decimal("0.000000000001") * (i + 1) for i in range(6)]
    with migrated_store(tmp_path / "s") as store:
        for i, cost in enumerate(costs):  # six batches, minutes apart, two services
            row = span(trace, cost=cost, start=T0 + dt.timedelta(minutes=i),
                       service="api" if i % 2 else "worker", team="t")
            store.insert_arrow("otel_traces", batch([row]), f"batch-{i}")
        rows = store.query(
            "SELECT TraceId, sum(Calls), sum(Cost), arraySort(groupUniqArrayArray(Services)) "
            "FROM llm_cost_by_trace GROUP BY TraceId"
        )
        assert rows == [(trace, 6, sum(costs), ["api", "worker"])]
        assert rows[0][2] == Decimal("0.000000000021")


def test_same_token_counts_once_everywhere(tmp_path: Path) -> None:
    """The collector must reuse a batch's token when it retries that batch."""
    rows = [span("d" * 32, cost=Decimal("0.25"), team="x"), span("d" * 32, cost=Decimal("0.5"))]
    token = str(uuid.uuid4())
    with migrated_store(tmp_path / "s") as store:
        store.insert_arrow("otel_traces", batch(rows), token)
        store.insert_arrow("otel_traces", batch(rows), token)  # a retry after a timeout
        counts = _counts(store)
        assert counts == {"otel_traces": 2, "llm_calls": 2, "trace_calls": 2, "daily_calls": 2}
        assert _costs(store) == (Decimal("0.75"), Decimal("0.75"), Decimal("0.75"))

        # A different token is a different batch: it counts again.
        store.insert_arrow("otel_traces", batch(rows), token + "-other")
        assert _counts(store) == {
            "otel_traces": 4, "llm_calls": 4, "trace_calls": 4, "daily_calls": 4,
        }
        assert _costs(store) == (Decimal("1.5"), Decimal("1.5"), Decimal("1.5"))


def _counts(store: Store) -> dict[str, int]:
    return {
        "otel_traces": store.query("SELECT count() FROM otel_traces")[0][0],
        "llm_calls": store.query("SELECT count() FROM llm_calls")[0][0],
        "trace_calls": store.query("SELECT sum(Calls) FROM llm_cost_by_trace")[0][0],
        "daily_calls": store.query("SELECT sum(Calls) FROM llm_cost_daily")[0][0],
    }


def _costs(store: Store) -> tuple[Decimal, Decimal, Decimal]:
    return (
        store.query("SELECT sum(Cost) FROM llm_calls")[0][0],
        store.query("SELECT sum(Cost) FROM llm_cost_by_trace")[0][0],
        store.query("SELECT sum(Cost) FROM llm_cost_daily")[0][0],
    )


def test_decimals_are_exact(tmp_path: Path) -> None:
    # 1,000 calls with pico-dollar parts that must sum exactly; a float sum would drift.
    n = 1000
    parts = {"input": Decimal("0.000000000001"), "output": Decimal("0.000000000002"),
             "cache_read": Decimal("0.100000000003")}
    cost = sum(parts.values())
    rows = [span("e" * 32, cost=cost, parts=parts) for _ in range(n)]
    rows += [span("f" * 32, cost=PICO) for _ in range(n)]
    with migrated_store(tmp_path / "s") as store:
        store.insert_arrow("otel_traces", batch(rows), "dec")
        got = store.query(
            "SELECT sum(CostInput), sum(CostOutput), sum(CostCacheRead), sum(Cost) "
            "FROM llm_calls WHERE TraceId = {t:String}", {"t": "e" * 32}
        )[0]
        assert got == (n * parts["input"], n * parts["output"], n * parts["cache_read"], n * cost)
        assert got[3] == Decimal("100.000000006000")
        by_trace = dict(store.query(
            "SELECT TraceId, sum(Cost) FROM llm_cost_by_trace GROUP BY TraceId"
        ))
        assert by_trace["f" * 32] == Decimal("0.000000001000")
        assert isinstance(by_trace["f" * 32], Decimal)


def test_unpriced_usage_without_status_is_visible(tmp_path: Path) -> None:
    """A span from a collector that does not price (contrib exporter) lands as unpriced."""
    row = span("9" * 32, status=None, cost=None, model="brand-new-model", input_tokens=7)
    with migrated_store(tmp_path / "s") as store:
        store.insert_arrow("otel_traces", batch([row]), "u")
        assert store.query("SELECT Model, Status, InputTokens, Cost FROM llm_calls") == [
            ("brand-new-model", "unpriced", 7, Decimal(0))
        ]
        assert store.query(
            "SELECT sum(Calls), sum(UnpricedCalls) FROM llm_cost_by_trace"
        ) == [(1, 1)]
