"""Closed periods: a month whose invoice was sent is frozen.

``spanledger period close 2026-11`` appends a row to ``spanledger_periods``
(``clickhouse/0010_trust.sql``). From then on the ``llm_calls`` view books every
span dated before the open period (the day after the LATEST closed month, so the
months before it are frozen too) on the day it is stored, or the first open day if
that is later, flagged ``Late``: reports for the closed month give the same numbers
before and after late spans arrive, and the open period shows them as an
adjustment (``llm_cost_daily.LateCalls`` / ``LateCost``). The view reads the table
on every insert, so this holds whoever writes ``otel_traces``.

Reopening (``period reopen MONTH --confirm``) appends an ``open`` row: spans for
the month that arrive afterwards land in it again. Late spans already booked stay
where they were booked (counted once); the month's report changes from then on,
which is why reopening asks for confirmation.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pyarrow as pa

from spanledger.errors import UsageError
from spanledger.reports.period import Period, month_bounds, parse_month, utc_today
from spanledger.reports.queries import day_filter, money
from spanledger.store.base import Store

TABLE = "spanledger_periods"
CLOSED = "closed"
OPEN = "open"
_EPOCH = dt.date(1970, 1, 1)
_SCHEMA = pa.schema([
    ("Month", pa.date32()),
    ("State", pa.string()),
    ("At", pa.timestamp("ms", tz="UTC")),
    ("By", pa.string()),
    ("Note", pa.string()),
])  # fmt: skip
_STATES = (f"SELECT Month, argMax(State, At), max(At), argMax(By, At), argMax(Note, At) "
           f"FROM {TABLE} GROUP BY Month ORDER BY Month")


@dataclass(frozen=True, slots=True)
class MonthState:
    """A month's latest row in the log."""

    month: dt.date
    state: str
    at: dt.datetime
    by: str
    note: str

    @property
    def label(self) -> str:
        return f"{self.month:%Y-%m}"


@dataclass(frozen=True, slots=True)
class MonthTotals:
    """What a month's invoice holds (llm_cost_daily, by the day calls are booked on)."""

    calls: int
    cost: Decimal
    late_calls: int
    late_cost: Decimal


def month_states(store: Store) -> list[MonthState]:
    """Every month that was ever closed, with its current state, oldest first."""
    out = []
    for month, state, at, by, note in store.query(_STATES):
        day = month if isinstance(month, dt.date) else dt.date.fromisoformat(str(month))
        when = at if isinstance(at, dt.datetime) else dt.datetime.fromisoformat(str(at))
        out.append(MonthState(day, str(state), when.replace(tzinfo=dt.UTC) if when.tzinfo is None
                              else when, str(by), str(note)))
    return out


def open_from(states: list[MonthState]) -> dt.date:
    """The first day of the open period: after the latest closed month (1970-01-01: none)."""
    closed = [s.month for s in states if s.state == CLOSED]
    if not closed:
        return _EPOCH
    latest = max(closed)
    return month_bounds(latest.year, latest.month)[1] + dt.timedelta(days=1)


def month_totals(store: Store, period: Period) -> MonthTotals:
    """Calls and cost booked in ``period`` (what its invoice shows), and their late part."""
    (row,) = store.query(
        "SELECT sumIf(Calls, Status NOT IN ('aggregate', 'duplicate')), "
        "toString(sumIf(Cost, Status = 'priced')), sum(LateCalls), toString(sum(LateCost)) "
        f"FROM llm_cost_daily WHERE {day_filter(period)}")
    return MonthTotals(int(row[0] or 0), money(row[1]), int(row[2] or 0), money(row[3]))


def close_month(store: Store, month: str, *, by: str, note: str = "",
                today: dt.date | None = None) -> tuple[MonthState, bool]:
    """Close ``month`` (YYYY-MM); (its state, whether this call changed it).

    A month that has not ended yet is refused: its last days would all be late.
    """
    period = parse_month(month, "MONTH")
    today = today or utc_today()
    if period.end >= today:
        raise UsageError(f"{period.label} has not ended yet (close it from "
                         f"{period.end + dt.timedelta(days=1)} on)")
    current = {s.month: s for s in month_states(store)}.get(period.start)
    if current is not None and current.state == CLOSED:
        return current, False
    return _append(store, period.start, CLOSED, by, note), True


def reopen_month(store: Store, month: str, *, by: str, note: str = "") -> tuple[MonthState, bool]:
    """Reopen a closed month (the caller has the user's confirmation)."""
    period = parse_month(month, "MONTH")
    current = {s.month: s for s in month_states(store)}.get(period.start)
    if current is None or current.state != CLOSED:
        raise UsageError(f"{period.label} is not closed")
    return _append(store, period.start, OPEN, by, note), True


def _append(store: Store, month: dt.date, state: str, by: str, note: str) -> MonthState:
    at = dt.datetime.now(dt.UTC)
    row = MonthState(month, state, at, by[:200], note[:2000])
    store.insert_arrow(TABLE, pa.Table.from_pylist(
        [{"Month": row.month, "State": row.state, "At": row.at, "By": row.by,
          "Note": row.note}], schema=_SCHEMA))
    return row
