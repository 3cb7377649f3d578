"""Period-end spend: what is spent so far plus what the rest of the period should cost.

The rest is a daily rate per future day, learned from the series' own
complete days (today is partial, so it is never learned from):

- **seasonal run-rate** with two or more weeks of history: the level of the
  last 7 complete days, shaped by weekday factors from the last k full weeks
  (k = 1..4): ``rate(d) = mean of d's weekday over the k weeks x level / mean
  of the k weeks``. A flat weekly pattern (weekdays busy, weekends quiet) is
  forecast exactly; growth shows up through the level of the latest week.
- **linear run-rate** with 1 to 13 days: the mean of those days, every day
  alike (spend so far grows linearly).
- none before one complete day exists: the forecast is unknown (never 0).

Today's own remainder counts too: ``rate(today) x (1 - elapsed fraction of
today)``; a date without a time (``--as-of``) means the end of that day.

Measured error (``backtest``) on the demo data is in README.md ("Budgets and
alerts"): cutoffs over the demo month, 7 days ahead, per team x feature.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from spanledger.pricing.types import usd
from spanledger.reports.period import Period

ZERO = Decimal(0)
#: complete days needed for the weekday-seasonal method
SEASONAL_MIN_DAYS = 14
#: at most this many full weeks shape the weekday factors
SEASONAL_MAX_WEEKS = 4


@dataclass(frozen=True, slots=True)
class Forecast:
    #: spend at the end of the period: spent so far + expected rest (None: no history)
    total: Decimal | None
    #: ``seasonal`` | ``linear`` | ``final`` (period over) | ``none`` (no complete day yet)
    method: str
    #: complete days the rate was learned from
    history_days: int


@dataclass(frozen=True, slots=True)
class Rates:
    """The learned daily rate, by weekday (all alike for the linear method)."""

    method: str
    history_days: int
    by_weekday: tuple[Decimal, ...] = ()

    def on(self, day: dt.date) -> Decimal:
        return self.by_weekday[day.weekday()] if self.by_weekday else ZERO


def _value(daily: Mapping[dt.date, Decimal], day: dt.date) -> Decimal:
    return daily.get(day, ZERO)


def learn_rates(daily: Mapping[dt.date, Decimal], today: dt.date,
                first_day: dt.date | None = None) -> Rates:
    """Daily rates from the complete days ``first_day`` .. ``today - 1``.

    ``first_day`` is where the series' history starts (default: its first day
    with a value); days without a value inside the history count as 0.
    """
    if first_day is None:
        past = [d for d in daily if d < today]
        first_day = min(past) if past else today
    history = max((today - first_day).days, 0)
    if history == 0:
        return Rates("none", 0)
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        if history < SEASONAL_MIN_DAYS:
            days = [today - dt.timedelta(days=i) for i in range(1, history + 1)]
            rate = sum((_value(daily, d) for d in days), ZERO) / history
            return Rates("linear", history, (rate,) * 7)
        weeks = min(SEASONAL_MAX_WEEKS, history // 7)
        window = [today - dt.timedelta(days=i) for i in range(1, 7 * weeks + 1)]
        total = sum((_value(daily, d) for d in window), ZERO)
        last_week = sum((_value(daily, d) for d in window[:7]), ZERO)
        if total == 0:
            return Rates("seasonal", history, (ZERO,) * 7)
        # mean of the weekday over k weeks x (level / mean of the k weeks): the k's and
        # 7's cancel, which keeps a pure weekly pattern exact in Decimal
        by_weekday = tuple(
            sum((_value(daily, d) for d in window if d.weekday() == weekday), ZERO)
            * last_week / total for weekday in range(7))
        return Rates("seasonal", history, by_weekday)


def expected(rates: Rates, days: Iterable[dt.date]) -> Decimal:
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        return sum((rates.on(d) for d in days), ZERO)


def day_fraction(now: dt.datetime) -> Decimal:
    """Elapsed share of ``now``'s UTC day (0 at midnight)."""
    now = now.astimezone(dt.UTC)
    seconds = now.hour * 3600 + now.minute * 60 + now.second + Decimal(now.microsecond) / 10**6
    return Decimal(seconds) / 86400


def forecast_period(daily: Mapping[dt.date, Decimal], period: Period, now: dt.datetime,
                    first_day: dt.date | None = None) -> Forecast:
    """Spend at the end of ``period`` as seen at ``now`` (UTC)."""
    today = now.astimezone(dt.UTC).date()
    spent = sum((v for d, v in daily.items() if period.start <= d <= min(today, period.end)),
                ZERO)
    if today > period.end:
        return Forecast(spent, "final", 0)
    rates = learn_rates(daily, today, first_day)
    if rates.method == "none":
        return Forecast(None, "none", 0)
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        rest = ZERO
        if today >= period.start:
            rest += rates.on(today) * (1 - day_fraction(now))
        start = max(today + dt.timedelta(days=1), period.start)
        rest += expected(rates, (start + dt.timedelta(days=i)
                                 for i in range((period.end - start).days + 1)))
        return Forecast(usd(spent + rest), rates.method, rates.history_days)


# -- measuring the error ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Backtest:
    """Forecasts of ``horizon`` days made at every cutoff, against what happened."""

    horizon: int
    #: (method, forecast, actual) per cutoff and series
    points: tuple[tuple[str, Decimal, Decimal], ...]

    def wape(self, method: str | None = None) -> Decimal | None:
        """Weighted absolute percentage error: sum |forecast - actual| / sum actual, in %."""
        pts = [p for p in self.points if method is None or p[0] == method]
        actual = sum((a for _, _, a in pts), ZERO)
        if not pts or actual == 0:
            return None
        return sum((abs(f - a) for _, f, a in pts), ZERO) * 100 / actual

    def count(self, method: str | None = None) -> int:
        return sum(1 for p in self.points if method is None or p[0] == method)


def backtest(series: Iterable[Mapping[dt.date, Decimal]], first_day: dt.date,
             last_day: dt.date, horizon: int = 7, min_history: int = 7) -> Backtest:
    """Forecast ``horizon`` days ahead from every cutoff with ``min_history`` days behind it.

    The series' history starts at ``first_day`` (all of them: the demo's data
    starts on one day); the last cutoff leaves ``horizon`` known days after it.
    """
    points: list[tuple[str, Decimal, Decimal]] = []
    for daily in series:
        cutoff = first_day + dt.timedelta(days=min_history)
        while cutoff + dt.timedelta(days=horizon - 1) <= last_day:
            days = [cutoff + dt.timedelta(days=i) for i in range(horizon)]
            rates = learn_rates(daily, cutoff, first_day)
            actual = sum((_value(daily, d) for d in days), ZERO)
            points.append((rates.method, expected(rates, days), actual))
            cutoff += dt.timedelta(days=1)
    return Backtest(horizon, tuple(points))
