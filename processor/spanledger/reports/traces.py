"""``report traces``: the most expensive agent runs and how far they amplify.

LLM calls, tool calls and vector-database calls are counted apart; a run none of whose
calls has a price shows its cost as ``unpriced``, never $0.00.

An agent that loops costs many times what a normal run of the same feature
costs. Amplification compares each run (trace) with the MEDIAN run of its
own feature in the period (median, not mean: the runaway runs must not
raise the bar they are measured against). "x4.2 cost, x5.0 calls" means
4.2 times the median run's cost and 5 times its calls.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from spanledger.reports.chargeback import label
from spanledger.reports.period import Period
from spanledger.reports.queries import NO_TABLES, TraceRow, fetch_traces, missing_rollups
from spanledger.reports.tabular import Column, Report
from spanledger.store.base import Store


@dataclass(frozen=True, slots=True)
class RankedTrace:
    trace: TraceRow
    cost_x: Decimal | None
    calls_x: Decimal | None

    @property
    def amplification(self) -> str:
        cost = f"x{self.cost_x:.1f} cost" if self.cost_x is not None else "cost n/a"
        calls = f"x{self.calls_x:.1f} calls" if self.calls_x is not None else "calls n/a"
        return f"{cost}, {calls}"


def _median(values: list[Decimal]) -> Decimal:
    return Decimal(statistics.median(values))


def rank_traces(traces: list[TraceRow], top: int) -> list[RankedTrace]:
    """Top ``top`` traces by cost (then calls), each against its feature's median run."""
    by_feature: dict[str, list[TraceRow]] = defaultdict(list)
    for t in traces:
        by_feature[t.feature].append(t)
    medians = {
        f: (_median([t.cost for t in ts]), _median([Decimal(t.model_calls) for t in ts]))
        for f, ts in by_feature.items()
    }
    ordered = sorted(traces, key=lambda t: (-t.cost, -t.model_calls, t.trace_id))[:max(top, 0)]
    out = []
    for t in ordered:
        med_cost, med_calls = medians[t.feature]
        out.append(RankedTrace(
            t,
            cost_x=(t.cost / med_cost) if med_cost > 0 else None,
            calls_x=(Decimal(t.model_calls) / med_calls) if med_calls > 0 else None,
        ))
    return out


def traces_report(traces: list[TraceRow], period: Period, top: int,
                  feature: str | None = None) -> Report:
    ranked = rank_traces(traces, top)
    columns = [
        Column("trace_id", "trace", "text"),
        Column("team", "team", "text"),
        Column("feature", "feature", "text"),
        Column("start", "start (UTC)", "text"),
        Column("calls", "LLM calls", "int"),
        Column("tool_calls", "tool calls", "int"),
        Column("vector_calls", "vector-DB calls", "int"),
        Column("unpriced_calls", "unpriced", "int"),
        Column("cost", "cost", "money", na_when="unpriced_run"),
        Column("duration_s", "duration", "seconds"),
        Column("models", "models", "text"),
        Column("cost_x", "cost vs median", "ratio"),
        Column("calls_x", "calls vs median", "ratio"),
        Column("amplification", "amplification", "text"),
    ]
    rows: list[dict[str, Any]] = []
    for r in ranked:
        t = r.trace
        rows.append({
            "trace_id": t.trace_id, "team": label(t.team), "feature": label(t.feature),
            "start": t.start.strftime("%Y-%m-%d %H:%M:%S"), "calls": t.model_calls,
            "tool_calls": t.tool_calls, "vector_calls": t.vector_calls,
            "unpriced_calls": t.unpriced_calls, "cost": t.cost, "duration_s": t.duration_s,
            "unpriced_run": t.wholly_unpriced,
            "models": ",".join(t.models), "cost_x": r.cost_x, "calls_x": r.calls_x,
            "amplification": r.amplification,
        })
    scope = f" feature {feature}" if feature is not None else ""
    notes = [f"{len(traces)} traces in the period{scope}; amplification = this run against "
             "the median run of its feature (cost, and LLM calls)"]
    duplicates = sum(t.duplicate_spans for t in traces)
    if duplicates:
        notes.append(f"{duplicates} duplicate spans (a second instrumentation of a call already "
                     "counted) are in no count or cost")
    meta = {"period": period.to_dict(), "top": top, "feature": feature,
            "traces_in_period": len(traces)}
    title = f"Top {top} agent runs by cost, {period.label}{scope}"
    return Report("traces", title, columns, rows, None, notes, meta)


def build_traces_report(store: Store, period: Period, top: int = 10,
                        feature: str | None = None, env: str | None = None) -> Report:
    if missing_rollups(store):
        report = traces_report([], period, top, feature)
        report.notes.insert(0, NO_TABLES)
        return report
    return traces_report(fetch_traces(store, period, feature, env), period, top, feature)
