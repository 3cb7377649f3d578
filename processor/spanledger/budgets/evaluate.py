"""Spend per budget scope in its current period, its forecast, and the thresholds reached.

Reads ``llm_cost_daily`` only (priced cost per UTC day; unpriced calls are
counted beside, never as $0), one query per budget plus one for the first day
of each scope's history. A threshold is reached at ``>=``: spend of exactly
80.00 on a 100.00 budget has reached 80 %. The comparison is done on exact
Decimals as ``value x 100 >= amount x percent`` (no division, no rounding).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from spanledger.budgets.forecast import SEASONAL_MAX_WEEKS, Forecast, forecast_period
from spanledger.budgets.periods import period_on
from spanledger.reports.budgets import BudgetFile, BudgetSpec
from spanledger.reports.chargeback import label
from spanledger.reports.period import Period
from spanledger.reports.queries import DIMENSIONS, missing_rollups, sql_str
from spanledger.store.base import Store

ZERO = Decimal(0)
#: forecasted thresholds fire only once the forecast has this many complete days behind it
MIN_FORECAST_ALERT_DAYS = 3

Scope = tuple[tuple[str, str], ...]


def reached(value: Decimal | None, amount: Decimal, percents: Sequence[Decimal]
            ) -> tuple[Decimal, ...]:
    """The thresholds ``value`` has reached, in % of ``amount``; reached means ``>=``."""
    if value is None:
        return ()
    return tuple(p for p in percents if value * 100 >= amount * p)


def scope_text(scope: Scope) -> str:
    """``team=support,feature=chat``: the scope as stored and keyed (values as tagged)."""
    return ",".join(f"{d}={v}" for d, v in scope)


def scope_label(scope: Scope) -> str:
    """The scope for people: empty values shown as ``(unattributed)``."""
    return ", ".join(f"{d}={label(v)}" for d, v in scope) or "(all spend)"


@dataclass(frozen=True, slots=True)
class ScopeState:
    """One budget scope in its current period."""

    budget: BudgetSpec
    scope: Scope
    period: Period
    spent: Decimal
    forecast: Forecast
    unpriced_calls: int
    reached_actual: tuple[Decimal, ...]
    reached_forecast: tuple[Decimal, ...]

    @property
    def amount(self) -> Decimal:
        return self.budget.amount

    @property
    def used_percent(self) -> Decimal:
        return self.spent * 100 / self.amount

    @property
    def forecast_percent(self) -> Decimal | None:
        total = self.forecast.total
        return None if total is None else total * 100 / self.amount

    @property
    def hard_stop(self) -> bool:
        """Actual spend has reached the hard stop (the 120 % line by default)."""
        return self.spent * 100 >= self.amount * self.budget.hard_stop_percent

    @property
    def scope_key(self) -> str:
        return scope_text(self.scope)


def _where(spec: BudgetSpec) -> str:
    return "".join(f" AND toString({DIMENSIONS[d]}) = {sql_str(v)}" for d, v in spec.filters)


def _per_sql(spec: BudgetSpec) -> str:
    return "".join(f", toString({DIMENSIONS[d]})" for d in spec.per)


def _fetch(store: Store, spec: BudgetSpec, since: dt.date, today: dt.date
           ) -> tuple[dict[tuple[str, ...], dict[dt.date, Decimal]],
                      dict[tuple[str, ...], int], dict[tuple[str, ...], dt.date]]:
    """Daily priced cost and unpriced calls per ``per`` value, and each one's first day."""
    per = _per_sql(spec)
    group = f"Day{per}"
    rows = store.query(
        f"SELECT toString(Day){per}, toString(sum(Cost)), sumIf(Calls, Status = 'unpriced') "
        f"FROM llm_cost_daily WHERE Day >= toDate({sql_str(since.isoformat())}) "
        f"AND Day <= toDate({sql_str(today.isoformat())}){_where(spec)} GROUP BY {group}")
    n = len(spec.per)
    daily: dict[tuple[str, ...], dict[dt.date, Decimal]] = defaultdict(dict)
    unpriced: dict[tuple[str, ...], int] = defaultdict(int)
    for r in rows:
        key = tuple(str(v) for v in r[1:1 + n])
        day = dt.date.fromisoformat(str(r[0]))
        daily[key][day] = Decimal(str(r[1 + n]))
        unpriced[key] += int(r[2 + n] or 0)
    by = f" GROUP BY {per[2:]}" if per else " HAVING count() > 0"
    firsts = store.query(
        f"SELECT toString(min(Day)){per} FROM llm_cost_daily WHERE Status = 'priced' "
        f"AND Day <= toDate({sql_str(today.isoformat())}){_where(spec)}{by}")
    first = {tuple(str(v) for v in r[1:]): dt.date.fromisoformat(str(r[0])) for r in firsts}
    return daily, unpriced, first


def evaluate_budget(store: Store, spec: BudgetSpec, now: dt.datetime) -> list[ScopeState]:
    """Every scope of ``spec`` in the period that contains ``now`` (UTC)."""
    today = now.astimezone(dt.UTC).date()
    period = period_on(spec.period, today)
    since = min(period.start, today - dt.timedelta(days=7 * SEASONAL_MAX_WEEKS + 1))
    daily, unpriced, first = _fetch(store, spec, since, today)
    keys = sorted(set(daily) | set(first)) if spec.per else [()]
    out = []
    for key in keys:
        series = daily.get(key, {})
        forecast = forecast_period(series, period, now, first.get(key))
        spent = sum((v for d, v in series.items() if period.start <= d <= period.end), ZERO)
        in_period = any(period.start <= d <= period.end for d in series)
        if spec.per and not in_period and forecast.total in (None, ZERO):
            continue  # a per-value seen only long ago: not a live scope
        alerting = forecast.method != "none" and (
            forecast.method == "final" or forecast.history_days >= MIN_FORECAST_ALERT_DAYS)
        out.append(ScopeState(
            budget=spec, scope=spec.filters + tuple(zip(spec.per, key, strict=True)),
            period=period, spent=spent, forecast=forecast, unpriced_calls=unpriced.get(key, 0),
            reached_actual=reached(spent, spec.amount, spec.actual),
            reached_forecast=(reached(forecast.total, spec.amount, spec.forecasted)
                              if alerting else ())))
    return out


def evaluate(store: Store, budgets: BudgetFile, now: dt.datetime) -> list[ScopeState]:
    """Every budget scope of the file as of ``now`` (nothing on a store without rollups)."""
    if missing_rollups(store):
        return []
    return [s for spec in budgets.budgets for s in evaluate_budget(store, spec, now)]
