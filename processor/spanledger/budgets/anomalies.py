"""Anomalies: each series against its own robust, day-of-week aware baseline.

A series is the daily priced spend of one team, feature, customer or model.
Three detectors, thresholds in the budgets file's ``anomalies:`` block
(:class:`~spanledger.reports.budgets.AnomalySettings`):

- **spike** (one day): the baseline is the ``baseline_days`` (28) days before
  the day. Weekday factors (each weekday against its centred 7-day mean)
  take the weekly pattern out, so a busy Monday is measured against Mondays.
  On the weekday-adjusted values: median ``m`` and MAD; the day's robust
  z-score is ``(value / factor - m) / (1.4826 x MAD)`` (MAD floored at 10 % of
  ``m``, so a very steady series does not flag small wiggles). A spike needs
  z >= ``spike_z`` AND value >= ``spike_ratio`` x expected (``m x factor``) AND
  at least ``min_usd`` above it.
- **creep** (a trend): over the last ``baseline_days`` days, weekday-adjusted,
  the Theil-Sen line (median of pairwise slopes: one outlier cannot tilt it)
  grew by ``creep_ratio`` or more from its first to its last day, and by at
  least ``min_usd`` a day. A slow 3x rise over four weeks is a creep; the
  same series' single spike or its weekend dips are not.
- **run** (an agent run: a trace with two or more calls, or an agent name):
  its cost is ``run_ratio`` x the p95 run cost of its feature over the
  ``baseline_days`` before the window, with at least 20 runs in that baseline.
  (A single call's cost shows up in the daily series instead.)

Medians and MAD ignore the size of a few extreme days, so last week's spike
does not raise the bar for this week. Series need 14 days of history.
"""

from __future__ import annotations

import datetime as dt
import decimal
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from spanledger.reports.budgets import AnomalySettings
from spanledger.reports.period import Period
from spanledger.reports.queries import DIMENSIONS, missing_rollups, sql_str
from spanledger.store.base import Store

ZERO = Decimal(0)
MIN_HISTORY_DAYS = 14
MIN_RUNS = 20
#: 1.4826 x MAD estimates the standard deviation of normally distributed values
MAD_SCALE = Decimal("1.4826")
#: MAD below this share of the median is raised to it
MAD_FLOOR = Decimal("0.1")
INFINITE = Decimal("Infinity")


@dataclass(frozen=True, slots=True)
class Finding:
    #: ``spike`` | ``creep`` | ``run``
    kind: str
    dimension: str
    value: str
    day: dt.date
    #: the day's spend (spike), the trend's daily level now (creep), the run's cost (run)
    actual: Decimal
    #: what was expected: baseline for that day, level at the window's start, feature p95
    expected: Decimal
    ratio: Decimal
    #: robust z-score (spikes only)
    score: Decimal | None = None
    trace_id: str = ""


def _median(values: Sequence[Decimal]) -> Decimal:
    return Decimal(statistics.median(values))


def _weekday_factors(days: Sequence[dt.date], series: Mapping[dt.date, Decimal]
                     ) -> tuple[Decimal, ...]:
    """How each weekday compares to its own week: median of value / centred 7-day mean.

    Dividing by the centred weekly mean (classical decomposition) keeps a
    trend out of the factors, so a growing series is not mistaken for a
    weekly pattern; medians keep a spike out. Factors average 1; a weekday
    never seen (or a series that is all zeros) gets 1.
    """
    values = [series.get(d, ZERO) for d in days]
    ratios: dict[int, list[Decimal]] = defaultdict(list)
    for i in range(3, len(values) - 3):
        mean = sum(values[i - 3:i + 4], ZERO) / 7
        if mean > 0:
            ratios[days[i].weekday()].append(values[i] / mean)
    if len(ratios) < 7:
        return (Decimal(1),) * 7
    raw = [_median(ratios[w]) for w in range(7)]
    total = sum(raw, ZERO)
    if total <= 0:
        return (Decimal(1),) * 7
    return tuple(f * 7 / total for f in raw)


def _history(day: dt.date, first_day: dt.date, baseline_days: int, include_day: bool
             ) -> list[dt.date]:
    end = day if include_day else day - dt.timedelta(days=1)
    start = max(first_day, end - dt.timedelta(days=baseline_days - 1))
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def spike(series: Mapping[dt.date, Decimal], day: dt.date, first_day: dt.date,
          s: AnomalySettings) -> tuple[Decimal, Decimal, Decimal] | None:
    """(expected, ratio, z) when ``day`` is a spike against the days before it, else None."""
    base = _history(day, first_day, s.baseline_days, include_day=False)
    if len(base) < MIN_HISTORY_DAYS:
        return None
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        factors = _weekday_factors(base, series)
        adjusted = [series.get(d, ZERO) / factors[d.weekday()]
                    for d in base if factors[d.weekday()] > 0]
        if not adjusted:
            return None
        m = _median(adjusted)
        mad = _median([abs(x - m) for x in adjusted])
        scale = MAD_SCALE * max(mad, MAD_FLOOR * m)
        value, factor = series.get(day, ZERO), factors[day.weekday()]
        expected = m * factor
        if value - expected < s.min_usd:
            return None
        ratio = value / expected if expected > 0 else INFINITE
        z = (value / factor - m) / scale if factor > 0 and scale > 0 else INFINITE
        if z >= s.spike_z and ratio >= s.spike_ratio:
            return expected, ratio, z
    return None


def theil_sen(values: Sequence[Decimal]) -> tuple[Decimal, Decimal]:
    """(intercept, slope) of the median-of-pairwise-slopes line through ``values`` at x = 0.."""
    slopes = [(values[j] - values[i]) / (j - i)
              for i in range(len(values)) for j in range(i + 1, len(values))]
    slope = _median(slopes)
    intercept = _median([v - slope * i for i, v in enumerate(values)])
    return intercept, slope


def creep(series: Mapping[dt.date, Decimal], day: dt.date, first_day: dt.date,
          s: AnomalySettings) -> tuple[Decimal, Decimal, Decimal] | None:
    """(level at the window's start, level at ``day``, growth) when the series creeps up."""
    window = _history(day, first_day, s.baseline_days, include_day=True)
    if len(window) < s.baseline_days:
        return None
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        factors = _weekday_factors(window, series)
        adjusted = [series.get(d, ZERO) / (factors[d.weekday()] or Decimal(1)) for d in window]
        intercept, slope = theil_sen(adjusted)
        start, end = intercept, intercept + slope * (len(window) - 1)
        if end - start < s.min_usd:
            return None
        growth = end / start if start > 0 else INFINITE
        if growth >= s.creep_ratio:
            return start, end, growth
    return None


def scan(series: Mapping[dt.date, Decimal], days: Iterable[dt.date], first_day: dt.date,
         s: AnomalySettings, dimension: str = "", value: str = "") -> list[Finding]:
    """Spikes on each of ``days``, and the series' latest creep among them (one finding)."""
    out: list[Finding] = []
    last_creep: Finding | None = None
    for day in sorted(days):
        found = spike(series, day, first_day, s)
        if found is not None:
            expected, ratio, z = found
            out.append(Finding("spike", dimension, value, day, series.get(day, ZERO), expected,
                               ratio, z))
        trend = creep(series, day, first_day, s)
        if trend is not None:
            start, end, growth = trend
            last_creep = Finding("creep", dimension, value, day, end, start, growth)
    if last_creep is not None:
        out.append(last_creep)
    return out


# -- reading the store -------------------------------------------------------------------------

def _dim_series(store: Store, dim: str, since: dt.date, until: dt.date
                ) -> tuple[dict[str, dict[dt.date, Decimal]], dict[str, dt.date]]:
    col = DIMENSIONS[dim]
    rows = store.query(
        f"SELECT toString(Day), toString({col}), toString(sum(Cost)) FROM llm_cost_daily "
        f"WHERE Status = 'priced' AND Day >= toDate({sql_str(since.isoformat())}) "
        f"AND Day <= toDate({sql_str(until.isoformat())}) GROUP BY Day, {col}")
    series: dict[str, dict[dt.date, Decimal]] = defaultdict(dict)
    for day, value, cost in rows:
        series[str(value)][dt.date.fromisoformat(str(day))] = Decimal(str(cost))
    firsts = store.query(
        f"SELECT toString({col}), toString(min(Day)) FROM llm_cost_daily "
        f"WHERE Status = 'priced' AND Day <= toDate({sql_str(until.isoformat())}) GROUP BY {col}")
    return series, {str(v): dt.date.fromisoformat(str(d)) for v, d in firsts}


def _run_findings(store: Store, window: Period, s: AnomalySettings) -> list[Finding]:
    """Runs that started in ``window`` against their feature's p95 over the days before it."""
    base0 = window.start - dt.timedelta(days=s.baseline_days)
    base1 = window.start - dt.timedelta(days=1)

    def runs(start: dt.date, end: dt.date) -> str:
        return ("SELECT TraceId, max(Feature) AS Feature, max(Team) AS Team, "
                "min(Start) AS Started, sum(Cost) AS Cost FROM llm_cost_by_trace "
                f"GROUP BY TraceId HAVING toDate(Started) >= toDate({sql_str(start.isoformat())}) "
                f"AND toDate(Started) <= toDate({sql_str(end.isoformat())}) "
                "AND (sum(Calls) >= 2 OR max(AgentName) != '')")

    rows = store.query(
        "SELECT r.TraceId, r.Feature, toString(toDate(r.Started)), toString(r.Cost), "
        "toString(b.p95) FROM (" + runs(window.start, window.end) + ") AS r "
        "INNER JOIN (SELECT Feature, quantileExact(0.95)(Cost) AS p95, count() AS runs FROM ("
        + runs(base0, base1) + ") GROUP BY Feature) AS b ON r.Feature = b.Feature "
        f"WHERE b.runs >= {MIN_RUNS} AND toFloat64(r.Cost) >= toFloat64(b.p95) * "
        f"{float(s.run_ratio) * 0.999} ORDER BY r.Cost DESC")
    out = []
    for trace_id, feature, day, cost, p95 in rows:
        c, p = Decimal(str(cost)), Decimal(str(p95))
        if c - p < s.min_usd or p <= 0 or c < p * s.run_ratio:
            continue
        out.append(Finding("run", "feature", str(feature), dt.date.fromisoformat(str(day)), c, p,
                           c / p, trace_id=str(trace_id)))
    return out


def detect(store: Store, window: Period, s: AnomalySettings) -> list[Finding]:
    """Every anomaly on the days of ``window`` (their baselines reach back before it)."""
    if missing_rollups(store):
        return []
    since = window.start - dt.timedelta(days=s.baseline_days)
    days = [window.start + dt.timedelta(days=i) for i in range(window.days)]
    out: list[Finding] = []
    for dim in s.dimensions:
        series, firsts = _dim_series(store, dim, since, window.end)
        for value in sorted(series):
            out += scan(series[value], days, firsts.get(value, since), s, dim, value)
    out += _run_findings(store, window, s)
    return out
