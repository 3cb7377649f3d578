"""What an alert says: the JSON body of the webhook and the one-line text (Slack, log).

Money is sent as exact decimal strings (like ``report ... --format json``), so
no JSON parser turns a budget into a float; the text rounds for people.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from spanledger.budgets.alert_state import AlertKey
from spanledger.budgets.anomalies import Finding
from spanledger.budgets.evaluate import ScopeState, scope_label
from spanledger.reports.chargeback import label

_Q12 = Decimal("1e-12")


def usd(value: Decimal | None) -> str:
    """$1,234.56, or four decimals under a dollar ($0.0421)."""
    if value is None:
        return "n/a"
    if value.is_infinite():
        return "inf"
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4f}"


def pct(value: Decimal | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def _exact(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.quantize(_Q12):f}"


def threshold_alert(state: ScopeState, key: AlertKey, report_url: str | None,
                    now: dt.datetime) -> tuple[str, str]:
    """(JSON body, text) of a budget threshold alert."""
    b = state.budget
    forecasted = key.kind == "forecasted"
    value = state.forecast.total if forecasted else state.spent
    percent = state.forecast_percent if forecasted else state.used_percent
    period = f"{state.period.start}..{state.period.end}"
    what = (f"forecasted spend {usd(value)} by {state.period.end} ({pct(percent)} of "
            f"{usd(b.amount)}) reached the {key.threshold.normalize():f}% forecast threshold; "
            f"spent so far {usd(state.spent)} ({pct(state.used_percent)})"
            if forecasted else
            f"spent {usd(state.spent)} of {usd(b.amount)} ({pct(percent)}) in {b.period.label} "
            f"{period}: reached {key.threshold.normalize():f}%")
    if not forecasted and state.forecast.total is not None:
        what += f"; forecast {usd(state.forecast.total)} ({pct(state.forecast_percent)})"
    if state.hard_stop and not forecasted:
        what += " - HARD STOP"
    text = f"spanledger budget {b.name!r} ({scope_label(state.scope)}): {what}"
    if report_url:
        text += f" {report_url}"
    body: dict[str, Any] = {
        "id": key.alert_id, "type": "budget.threshold", "budget": b.name,
        "scope": {d: v for d, v in state.scope}, "scope_text": key.scope,
        "period": {"kind": b.period.kind, "days": b.period.days or None,
                   "start": state.period.start.isoformat(), "end": state.period.end.isoformat()},
        "kind": key.kind, "threshold_percent": f"{key.threshold.normalize():f}",
        "amount_usd": _exact(b.amount), "spent_usd": _exact(state.spent),
        "forecast_usd": _exact(state.forecast.total), "forecast_method": state.forecast.method,
        "percent": _exact(percent), "hard_stop": state.hard_stop,
        "hard_stop_percent": f"{b.hard_stop_percent.normalize():f}",
        "channel": key.channel, "link": report_url, "fired_at": now.isoformat(),
        "text": text,
    }
    return json.dumps(body, sort_keys=True), text


def anomaly_alert(finding: Finding, key: AlertKey, report_url: str | None,
                  now: dt.datetime) -> tuple[str, str]:
    """(JSON body, text) of an anomaly alert."""
    f = finding
    who = f"{f.dimension}={label(f.value)}"
    if f.kind == "spike":
        what = (f"spent {usd(f.actual)} on {f.day}, {f.ratio:.1f}x its usual "
                f"{usd(f.expected)} for that weekday (robust z {f.score:.1f})")
    elif f.kind == "creep":
        what = (f"daily spend crept from {usd(f.expected)} to {usd(f.actual)} "
                f"({f.ratio:.1f}x) over the last four weeks")
    else:
        what = (f"agent run {f.trace_id} on {f.day} cost {usd(f.actual)}, {f.ratio:.1f}x "
                f"the feature's p95 run ({usd(f.expected)})")
    text = f"spanledger anomaly ({f.kind}) {who}: {what}"
    if report_url:
        text += f" {report_url}"
    body = {
        "id": key.alert_id, "type": f"anomaly.{f.kind}", "dimension": f.dimension,
        "value": f.value, "day": f.day.isoformat(), "actual_usd": _exact(f.actual),
        "expected_usd": _exact(f.expected),
        "ratio": None if f.ratio.is_infinite() else f"{f.ratio:.6f}",
        "score": None if f.score is None or f.score.is_infinite() else f"{f.score:.6f}",
        "trace_id": f.trace_id or None, "channel": key.channel, "link": report_url,
        "fired_at": now.isoformat(), "text": text,
    }
    return json.dumps(body, sort_keys=True), text
