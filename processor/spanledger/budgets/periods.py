"""Which UTC days a budget's period covers on a given day.

``llm_cost_daily`` is keyed by UTC day, so every period is a range of UTC
days: a calendar month, an ISO week (Monday to Sunday), one day, or the last
N days ending today (rolling). A calendar period is also the unit an alert
fires once in; a rolling window moves every day, so its alerts fire at most
once per N days (see :func:`spanledger.budgets.alert_state.already_fired`).
"""

from __future__ import annotations

import datetime as dt

from spanledger.reports.budgets import BudgetPeriod
from spanledger.reports.period import Period, month_bounds


def period_on(period: BudgetPeriod, today: dt.date) -> Period:
    """The period of kind ``period`` that contains ``today``."""
    if period.kind == "month":
        return Period(*month_bounds(today.year, today.month))
    if period.kind == "week":
        start = today - dt.timedelta(days=today.weekday())
        return Period(start, start + dt.timedelta(days=6))
    if period.kind == "day":
        return Period(today, today)
    if period.kind == "rolling":
        return Period(today - dt.timedelta(days=period.days - 1), today)
    raise ValueError(f"unknown period kind {period.kind!r}")


def days_of(period: Period) -> list[dt.date]:
    return [period.start + dt.timedelta(days=i) for i in range(period.days)]
