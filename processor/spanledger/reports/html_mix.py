"""HTML sections "Model mix" and "Calls by kind".

Model mix: spend and tokens per model over time, so a move to a cheaper model
(or a drift to an expensive one) is visible as a change of colours. Calls by
kind: LLM calls (chat, completions, embeddings: a model with token usage)
apart from tool calls and vector-database queries priced per call, which are
not "LLM calls" even though they are metered beside them
(:func:`~spanledger.reports.queries.call_kind_sql` decides).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from spanledger.reports import svg
from spanledger.reports.html_charts import bucket_of, buckets, report_table
from spanledger.reports.period import Period
from spanledger.reports.queries import (
    ALL,
    CALL_KINDS,
    KIND_LABELS,
    CallKindRow,
    DailyGroupRow,
    Scope,
    fetch_call_kinds,
    fetch_daily_groups,
)
from spanledger.reports.tabular import Column, Report
from spanledger.store.base import Store

ZERO = Decimal(0)
#: colours of the call kinds, wherever they appear (cards, waterfall, table)
KIND_COLOURS = {"llm": svg.PALETTE[0], "tool": svg.PALETTE[1], "vector_db": svg.PALETTE[2]}
UNPRICED_COLOUR = "#bbbbbb"
TOP_MODELS = 8


@dataclass(frozen=True, slots=True)
class MixData:
    #: per day x model: calls, tokens, priced cost
    daily: list[DailyGroupRow]
    kinds: list[CallKindRow]


def fetch_mix(store: Store, period: Period, scope: Scope = ALL) -> MixData:
    return MixData(fetch_daily_groups(store, period, ("model",), scope),
                   fetch_call_kinds(store, period, scope))


def render_model_mix(data: MixData | None, period: Period) -> str:
    if data is None:
        return '<p class="note">No model data was read for this page.</p>'
    if not data.daily:
        return '<p class="note">No calls in this period.</p>'
    unit, days = buckets(period)
    index = {b: i for i, b in enumerate(days)}
    spend: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO] * len(days))
    tokens: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO] * len(days))
    for r in data.daily:
        b = bucket_of(r.day, unit)
        if b in index:
            name = r.group[0] or "(no model)"
            spend[name][index[b]] += r.cost
            tokens[name][index[b]] += Decimal(r.tokens)
    cats = [f"{b:%m-%d}" if unit == "day" else f"wk {b:%m-%d}" for b in days]
    charts = []
    for title, series, money, y in (("Spend by model", spend, True, "spend (USD)"),
                                    ("Tokens by model (input + output)", tokens, False,
                                     "tokens")):
        top = _top(series)
        colours = {n: (svg.GREY if n == "(other models)" else svg.PALETTE[i % len(svg.PALETTE)])
                   for i, n in enumerate(top)}
        charts.append(svg.stacked_bars(f"{title} per {unit}, {period.label}", cats, top, colours,
                                       x_title=f"{unit} (UTC)", y_title=y, money=money))
    return ('<div class="chart">' + '</div><div class="chart">'.join(charts) + "</div>"
            + report_table(model_report(data.daily, period)))


def _top(series: dict[str, list[Decimal]]) -> dict[str, list[Decimal]]:
    """The TOP_MODELS largest series, the rest summed as "(other models)"."""
    ranked = sorted(series, key=lambda n: (-sum(series[n], ZERO), n))
    out = {n: series[n] for n in ranked[:TOP_MODELS]}
    if len(ranked) > TOP_MODELS:
        rest = [sum(vals, ZERO) for vals in zip(*(series[n] for n in ranked[TOP_MODELS:]),
                                               strict=True)]
        out["(other models)"] = rest
    return out


def model_report(daily: list[DailyGroupRow], period: Period) -> Report:
    """Per model over the period: calls, tokens, spend and its share."""
    calls: dict[str, int] = defaultdict(int)
    toks: dict[str, int] = defaultdict(int)
    cost: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for r in daily:
        name = r.group[0] or "(no model)"
        calls[name] += r.calls
        toks[name] += r.tokens
        cost[name] += r.cost
    total = sum(cost.values(), ZERO)
    rows = [{"model": m, "calls": calls[m], "tokens": toks[m], "cost": cost[m],
             "share": cost[m] / total * 100 if total > 0 else None}
            for m in sorted(cost, key=lambda m: (-cost[m], m))]
    columns = [Column("model", "model (or tool / vector database)", "text"),
               Column("calls", "calls", "int", total=True),
               Column("tokens", "tokens", "int", total=True),
               Column("cost", "spend", "money", total=True),
               Column("share", "share of spend", "percent")]
    totals = {"model": "TOTAL", "calls": sum(calls.values()), "tokens": sum(toks.values()),
              "cost": total}
    return Report("models", f"Spend by model, {period.label}", columns, rows, totals)


def render_call_kinds(data: MixData | None) -> str:
    if data is None:
        return '<p class="note">No call data was read for this page.</p>'
    per: dict[str, list[Decimal | int]] = {k: [0, 0, 0, ZERO] for k in CALL_KINDS}
    for r in data.kinds:
        acc = per.setdefault(r.kind, [0, 0, 0, ZERO])
        acc[0] = int(acc[0]) + r.calls
        acc[1] = int(acc[1]) + (r.calls if r.status != "priced" else 0)
        acc[2] = int(acc[2]) + r.tokens
        acc[3] = Decimal(acc[3]) + r.cost
    total = sum((Decimal(v[3]) for v in per.values()), ZERO)
    rows = [{"kind": KIND_LABELS.get(k, k), "calls": v[0], "unpriced": v[1], "tokens": v[2],
             "cost": v[3], "share": Decimal(v[3]) / total * 100 if total > 0 else None}
            for k, v in per.items()]
    columns = [Column("kind", "kind", "text"), Column("calls", "calls", "int", total=True),
               Column("unpriced", "unpriced", "int", total=True),
               Column("tokens", "tokens", "int", total=True),
               Column("cost", "spend", "money", total=True),
               Column("share", "share of spend", "percent")]
    totals = {"kind": "TOTAL", "calls": sum(int(v[0]) for v in per.values()),
              "unpriced": sum(int(v[1]) for v in per.values()),
              "tokens": sum(int(v[2]) for v in per.values()), "cost": total}
    report = Report("kinds", "Calls by kind", columns, rows, totals,
                    ["LLM calls: a model with token usage (chat, completions, embeddings); "
                     "tool calls and vector-database queries are priced per call "
                     "(collector-config/prices.example.yaml, `calls:`) and are not LLM calls"])
    return report_table(report)
