"""HTML section "Month-end forecast per team": where each team's month will land.

The page uses the forecaster it is handed: ``report html``, the demo and the live
page hand in the budgets layer's (:func:`spanledger.budgets.forecast.forecast_period`:
a weekday-seasonal run-rate with two weeks of history, else linear), so this
section and the budget states forecast alike. Without one (a page built by the
reports layer alone) the section's own rule: spend so far this month (today
included) + the remaining days x the team's average day over the last 7 full
days before today (fewer when the team's first spend is more recent). A month
that is over (the page shows a past period) has no forecast: its actual spend
is final.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from spanledger.reports import svg
from spanledger.reports.chargeback import label
from spanledger.reports.html_charts import report_table
from spanledger.reports.period import Period, month_bounds
from spanledger.reports.queries import DailyRow, fetch_daily
from spanledger.reports.tabular import Column, Report
from spanledger.store.base import Store

ZERO = Decimal(0)
RUN_RATE_DAYS = 7
#: days of history read before the month, for a forecaster that learns weekday patterns
HISTORY_DAYS = 35
#: (daily spend of one series, the period, now) -> (period-end total or None, method)
Forecaster = Callable[[Mapping[dt.date, Decimal], Period, dt.datetime],
                      tuple[Decimal | None, str]]


@dataclass(frozen=True, slots=True)
class ForecastData:
    """Daily spend per team over the month and the history before ``today``."""

    month: Period
    today: dt.date
    daily: list[DailyRow]
    #: the forecaster handed in, and the moment it forecasts from (None: the own rule)
    forecaster: Forecaster | None = None
    now: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class TeamForecast:
    team: str
    to_date: Decimal
    #: average daily spend over the run-rate window
    run_rate: Decimal
    #: days of the window the rate is taken over (0: nothing spent in it)
    rate_days: int
    forecast: Decimal
    #: how: ``last 7 days`` (the own rule), or the forecaster's (``seasonal``, ``linear``)
    method: str = "last 7 days"


def forecast_month(period: Period, today: dt.date) -> Period:
    """The month the forecast is for: the one holding the period's last day up to today."""
    last = min(period.end, today)
    return Period(*month_bounds(last.year, last.month))


def fetch_forecast(store: Store, period: Period, today: dt.date, env: str | None = None,
                   team: str | None = None, feature: str | None = None,
                   forecaster: Forecaster | None = None,
                   now: dt.datetime | None = None) -> ForecastData:
    month = forecast_month(period, today)
    start = min(month.start, today - dt.timedelta(days=HISTORY_DAYS))
    end = min(month.end, today)
    return ForecastData(month, today, fetch_daily(store, Period(start, end), "team", env,
                                                  team=team, feature=feature),
                        forecaster, now)


def team_forecasts(data: ForecastData) -> list[TeamForecast]:
    """One forecast per team with spend this month or in the run-rate window."""
    if data.forecaster is not None and data.now is not None:
        return _handed_in(data, data.forecaster, data.now)
    month, today = data.month, data.today
    closed = today > month.end
    window = Period(today - dt.timedelta(days=RUN_RATE_DAYS), today - dt.timedelta(days=1))
    to_date: dict[str, Decimal] = defaultdict(lambda: ZERO)
    recent: dict[str, Decimal] = defaultdict(lambda: ZERO)
    first: dict[str, dt.date] = {}
    for r in data.daily:
        if month.start <= r.day <= min(month.end, today):
            to_date[r.group] += r.cost
        if window.start <= r.day <= window.end and r.cost > 0:
            recent[r.group] += r.cost
            first[r.group] = min(first.get(r.group, r.day), r.day)
    remaining = 0 if closed else (month.end - today).days
    out = []
    for team in sorted(set(to_date) | set(recent)):
        days = (window.end - first[team]).days + 1 if team in first else 0
        rate = recent[team] / days if days else ZERO
        out.append(TeamForecast(team, to_date[team], rate, days,
                                to_date[team] + rate * remaining))
    out.sort(key=lambda f: (-f.forecast, f.team))
    return out


def _handed_in(data: ForecastData, forecaster: Forecaster,
               now: dt.datetime) -> list[TeamForecast]:
    """Each team's series through the forecaster handed in (the budgets layer's)."""
    month, today = data.month, data.today
    series: dict[str, dict[dt.date, Decimal]] = defaultdict(dict)
    for r in data.daily:
        series[r.group][r.day] = series[r.group].get(r.day, ZERO) + r.cost
    remaining = max((month.end - today).days, 0)
    out = []
    for team, daily in sorted(series.items()):
        to_date = sum((v for d, v in daily.items() if month.start <= d <= min(month.end, today)),
                      ZERO)
        if to_date == 0 and not any(v for d, v in daily.items() if d >= today - dt.timedelta(
                days=RUN_RATE_DAYS)):
            continue  # nothing this month and nothing lately
        total, method = forecaster(daily, month, now)
        forecast = to_date if total is None else total
        rate = (forecast - to_date) / remaining if remaining and total is not None else ZERO
        out.append(TeamForecast(team, to_date, rate, 0, forecast,
                                method if total is not None else "no history"))
    out.sort(key=lambda f: (-f.forecast, f.team))
    return out


def forecast_report(rows: list[TeamForecast], month: Period) -> Report:
    """The forecast as a Report: its table adds up to the TOTAL shown, like every report."""
    columns = [Column("team", "team", "text"), Column("to_date", "so far", "money", total=True),
               Column("to_come", "still to come", "money", total=True),
               Column("forecast", "forecast month end", "money", total=True,
                      parts=((1, "to_date"), (1, "to_come"))),
               Column("method", "method", "text")]
    data = [{"team": label(f.team), "to_date": f.to_date, "to_come": f.forecast - f.to_date,
             "forecast": f.forecast, "method": f.method} for f in rows]
    total = {"team": "TOTAL", "to_date": sum((f.to_date for f in rows), ZERO),
             "to_come": sum((f.forecast - f.to_date for f in rows), ZERO),
             "forecast": sum((f.forecast for f in rows), ZERO)}
    return Report("forecast", f"Month-end forecast, {month.label}", columns, data, total,
                  [], {"month": month.to_dict()})


def render_forecast(data: ForecastData | None) -> str:
    if data is None:
        return '<p class="note">No forecast was read for this page.</p>'
    month, today = data.month, data.today
    rows = team_forecasts(data)
    if not rows:
        return f'<p class="note">No spend in {month.label} yet.</p>'
    left = (month.end - today).days
    if today > month.end:
        head = (f'<p class="note">{month.label} is over: the actual spend below is final '
                "(no forecast).</p>")
    elif data.forecaster is not None:
        head = (f'<p class="note">{month.label}: spend up to {today} plus the rest of the '
                "month at each team's learned daily rate (seasonal: the latest week's level "
                "shaped by each weekday, with two weeks of history; else linear), as the "
                "budgets forecast.</p>")
    else:
        head = (f'<p class="note">{month.label}: spend up to {today} (today included) plus '
                f"{left} remaining day{'s' if left != 1 else ''} at each team's average day of "
                f"the last {RUN_RATE_DAYS} full days (fewer if it started later).</p>")
    items = [(label(f.team), f.to_date,
              f"{svg.usd_label(f.to_date)} so far · forecast {svg.usd_label(f.forecast)}")
             for f in rows]
    chart = svg.horizontal_bars(
        f"Month-end forecast per team, {month.label} (bar: so far; ◇ forecast)", items,
        "spend (USD)", projections=[float(f.forecast) for f in rows],
        colours=[svg.PALETTE[i % len(svg.PALETTE)] for i in range(len(rows))])
    table = report_table(forecast_report(rows, month))
    return f'{head}<div class="chart">{chart}</div>{table}'
