"""``report budgets`` and ``report anomalies`` as :class:`~spanledger.reports.tabular.Report`.

Built once here and only rendered by the formats (table / csv / json) and the
HTML report, so the numbers read the same everywhere.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

from spanledger.budgets import alert_state as st
from spanledger.budgets.anomalies import Finding, detect
from spanledger.budgets.evaluate import ScopeState, evaluate, scope_label
from spanledger.reports.budgets import AnomalySettings, BudgetFile
from spanledger.reports.chargeback import label
from spanledger.reports.period import Period
from spanledger.reports.queries import NO_TABLES, missing_rollups
from spanledger.reports.tabular import Column, Report
from spanledger.store.base import Store


def _pcts(values: tuple[Decimal, ...]) -> str:
    return ",".join(f"{v.normalize():f}" for v in values)


def period_text(s: ScopeState) -> str:
    """The current period, short: ``2026-11``, ``week of 2026-11-16``, ``7d to 2026-11-18``."""
    kind, p = s.budget.period, s.period
    if kind.kind == "month":
        return f"{p.start:%Y-%m}"
    if kind.kind == "week":
        return f"week of {p.start}"
    if kind.kind == "day":
        return p.start.isoformat()
    return f"{kind.days}d to {p.end}"


def budget_state_text(s: ScopeState) -> str:
    """``HARD STOP``, ``>= 80%``, ``forecast >= 100%`` or ``ok``: the highest news first."""
    if s.hard_stop:
        return f"HARD STOP ({s.budget.hard_stop_percent.normalize():f}%)"
    if s.reached_actual:
        return f">= {s.reached_actual[-1].normalize():f}%"
    if s.reached_forecast:
        return f"forecast >= {s.reached_forecast[-1].normalize():f}%"
    return "ok"


def _alerts_text(alerts: list[st.Alert]) -> str:
    counts = Counter("superseded" if a.state == st.SUPERSEDED else
                     "sent" if a.state == st.DELIVERED else
                     "failed" if a.state == st.FAILED else "pending" for a in alerts)
    parts = [f"{counts[k]} {k}" for k in ("sent", "pending", "failed") if counts[k]]
    return ", ".join(parts) or "none"


def budgets_report(states: list[ScopeState], alerts: dict[str, st.Alert], budgets: BudgetFile,
                   now: dt.datetime) -> Report:
    by_scope: dict[tuple[str, str, dt.date], list[st.Alert]] = defaultdict(list)
    for a in alerts.values():
        by_scope[(a.key.budget, a.key.scope, a.key.period_start)].append(a)
    columns = [
        Column("budget", "budget"), Column("scope", "scope"), Column("period", "period"),
        Column("amount", "budget", "money"), Column("spent", "spent", "money"),
        Column("used", "used", "percent"), Column("forecast", "forecast", "money"),
        Column("forecast_used", "forecast used", "percent"),
        Column("method", "forecast method"), Column("reached", "thresholds reached"),
        Column("state", "state"), Column("max_run_usd", "max per run", "money"),
        Column("alerts", "alerts"), Column("unpriced_calls", "unpriced calls", "int"),
    ]
    rows: list[dict[str, Any]] = []
    for s in states:
        rolling = s.budget.period.kind == "rolling"
        mine = [a for (b, scope, start), alist in by_scope.items()
                if b == s.budget.name and scope == s.scope_key
                and (start >= s.period.start - dt.timedelta(days=s.budget.period.days - 1)
                     if rolling else start == s.period.start) for a in alist]
        reached = [f"actual {_pcts(s.reached_actual)}" if s.reached_actual else "",
                   f"forecast {_pcts(s.reached_forecast)}" if s.reached_forecast else ""]
        rows.append({
            "budget": s.budget.name, "scope": scope_label(s.scope),
            "period": period_text(s),
            "amount": s.amount, "spent": s.spent, "used": s.used_percent,
            "forecast": s.forecast.total, "forecast_used": s.forecast_percent,
            "method": s.forecast.method, "reached": "; ".join(r for r in reached if r) or "-",
            "state": budget_state_text(s), "max_run_usd": s.budget.max_run_usd,
            "alerts": _alerts_text(mine), "unpriced_calls": s.unpriced_calls,
        })
    notes = [f"as of {now:%Y-%m-%d %H:%M} UTC; thresholds are reached at >= (exactly 80.0% "
             "is >= 80%); forecast = spend so far + weekday-seasonal run-rate with 14+ days "
             "of history, else linear run-rate"]
    unpriced = sum(1 for s in states if s.unpriced_calls)
    if unpriced:
        notes.append(f"{unpriced} budget scope(s) include unpriced calls, which are in no "
                     "spend: see `spanledger prices unpriced`")
    meta = {"as_of": now.isoformat(), "budgets_file": budgets.file}
    return Report("budgets", f"Budgets as of {now:%Y-%m-%d %H:%M} UTC", columns, rows, None,
                  notes, meta)


def build_budgets_report(store: Store, budgets: BudgetFile, now: dt.datetime) -> Report:
    if missing_rollups(store):
        report = budgets_report([], {}, budgets, now)
        report.notes.insert(0, NO_TABLES)
        return report
    states = evaluate(store, budgets, now)
    since = min((s.period.start for s in states), default=now.date()) - dt.timedelta(days=366)
    alerts = st.load(store, since, [b.name for b in budgets.budgets]) if st.has_table(
        store) else {}
    return budgets_report(states, alerts, budgets, now)


def budgets_summary(report: Report, top: int = 8) -> Report:
    """The budgets that reached something, most used first: the demo's short summary."""
    keep = ("budget", "scope", "amount", "spent", "used", "forecast", "state")
    hot = [r for r in report.rows if r["state"] != "ok"]
    rows = sorted(hot, key=lambda r: -r["used"])[:top]
    notes = [f"{len(hot)} of {len(report.rows)} budget scopes reached a threshold"
             + (f" (top {top} shown)" if len(hot) > top else "")
             + "; all of them: spanledger report budgets --budgets FILE"]
    return Report("budgets", report.title, [report.column(k) for k in keep],
                  [{k: r[k] for k in keep} for r in rows], None, notes, report.meta)


def anomalies_report(findings: list[Finding], window: Period,
                     settings: AnomalySettings) -> Report:
    columns = [
        Column("kind", "kind"), Column("dimension", "dimension"), Column("value", "value"),
        Column("day", "day"), Column("actual", "actual", "money"),
        Column("expected", "expected", "money"), Column("ratio", "ratio", "ratio"),
        Column("score", "robust z", "ratio"), Column("trace_id", "agent run"),
    ]
    order = {"spike": 0, "run": 1, "creep": 2}
    rows = [{
        "kind": f.kind, "dimension": f.dimension, "value": label(f.value),
        "day": f.day.isoformat(), "actual": f.actual, "expected": f.expected,
        "ratio": None if f.ratio.is_infinite() else f.ratio,
        "score": None if f.score is None or f.score.is_infinite() else f.score,
        "trace_id": f.trace_id or "-",
    } for f in sorted(findings, key=lambda f: (order[f.kind], f.day, -f.actual, f.value))]
    s = settings
    notes = [
        f"spike: a day >= {s.spike_ratio:f}x its weekday-adjusted baseline (median of the "
        f"{s.baseline_days} days before) with robust z >= {s.spike_z:f}; creep: the robust "
        f"{s.baseline_days}-day trend grew >= {s.creep_ratio:f}x; run: an agent run >= "
        f"{s.run_ratio:f}x its feature's p95 run cost; deviations under ${s.min_usd:f} ignored",
    ]
    meta = {"period": window.to_dict(), "settings": {
        "baseline_days": s.baseline_days, "spike_z": f"{s.spike_z:f}",
        "spike_ratio": f"{s.spike_ratio:f}", "creep_ratio": f"{s.creep_ratio:f}",
        "run_ratio": f"{s.run_ratio:f}", "min_usd": f"{s.min_usd:f}",
        "dimensions": list(s.dimensions)}}
    return Report("anomalies", f"Anomalies {window.label}", columns, rows, None, notes, meta)


def build_anomalies_report(store: Store, window: Period, settings: AnomalySettings) -> Report:
    if missing_rollups(store):
        report = anomalies_report([], window, settings)
        report.notes.insert(0, NO_TABLES)
        return report
    return anomalies_report(detect(store, window, settings), window, settings)
