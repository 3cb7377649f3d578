"""The document ``GET /budgets/state`` serves to services (JSON, version 1).

Services poll it in the background (``spanledger.watch_budgets``) and check
each LLM call against it locally, so the collector is never on the call path:

- ``stops``: budget scopes whose actual spend reached the hard stop (the
  120 % line by default) and whose budget says ``enforce_hard_stop: true``;
  a call whose attribution matches every ``scope`` value is refused
  (``on_exceed: raise``) or logged (``log``);
- ``run_limits``: ``max_run_usd`` of the budgets that set it, by the budget's
  filters: the limit of one agent run (trace) whose attribution matches;
- ``budgets``: every scope's state, for people and dashboards.

Money is exact decimal strings. ``stale_after_s`` tells the service when to
stop trusting a copy it could not refresh (it then allows and counts).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from spanledger.budgets.evaluate import ScopeState
from spanledger.reports.budgets import BudgetFile

VERSION = 1


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.quantize(Decimal('1e-12')):f}"


def _pcts(values: tuple[Decimal, ...]) -> list[str]:
    return [f"{v.normalize():f}" for v in values]


def build(states: list[ScopeState], budgets: BudgetFile, now: dt.datetime,
          every_s: float) -> dict[str, Any]:
    stops = [{
        "budget": s.budget.name, "scope": dict(s.scope), "spent_usd": _money(s.spent),
        "amount_usd": _money(s.amount),
        "hard_stop_percent": _pcts((s.budget.hard_stop_percent,))[0],
        "on_exceed": s.budget.on_exceed, "period_end": s.period.end.isoformat(),
    } for s in states if s.budget.enforce_hard_stop and s.hard_stop]
    limits = [{
        "budget": b.name, "scope": dict(b.filters), "max_run_usd": _money(b.max_run_usd),
        "on_exceed": b.on_exceed,
    } for b in budgets.budgets if b.max_run_usd is not None]
    rows = [{
        "budget": s.budget.name, "scope": dict(s.scope),
        "period": {"start": s.period.start.isoformat(), "end": s.period.end.isoformat(),
                   "kind": s.budget.period.label},
        "amount_usd": _money(s.amount), "spent_usd": _money(s.spent),
        "forecast_usd": _money(s.forecast.total), "forecast_method": s.forecast.method,
        "reached": {"actual": _pcts(s.reached_actual), "forecasted": _pcts(s.reached_forecast)},
        "hard_stop": s.hard_stop,
    } for s in states]
    return {"version": VERSION, "generated_at": now.isoformat(), "every_s": every_s,
            "stale_after_s": max(3 * every_s, 180), "stops": stops, "run_limits": limits,
            "budgets": rows}


def to_json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True).encode("utf-8")
