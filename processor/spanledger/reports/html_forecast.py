"""HTML section "Month-end forecast per team": where each team's month will land.

Forecast = spend so far this month (today included) + the remaining days x the
team's recent daily run-rate. The run-rate is its average day over the last 7
full days before today (fewer when the team's first spend is more recent), so a
team whose use grew last week is projected at its new level, not at the
month's average. A month that is over (the page shows a past period) has no
forecast: its actual spend is final.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
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


@dataclass(frozen=True, slots=True)
class ForecastData:
    """Daily spend per team over the month and the run-rate window before ``today``."""

    month: Period
    today: dt.date
    daily: list[DailyRow]


@dataclass(frozen=True, slots=True)
class TeamForecast:
    team: str
    to_date: Decimal
    #: average daily spend over the run-rate window
    run_rate: Decimal
    #: days of the window the rate is taken over (0: nothing spent in it)
    rate_days: int
    forecast: Decimal


def forecast_month(period: Period, today: dt.date) -> Period:
    """The month the forecast is for: the one holding the period's last day up to today."""
    last = min(period.end, today)
    return Period(*month_bounds(last.year, last.month))


def fetch_forecast(store: Store, period: Period, today: dt.date, env: str | None = None,
                   team: str | None = None, feature: str | None = None) -> ForecastData:
    month = forecast_month(period, today)
    start = min(month.start, today - dt.timedelta(days=RUN_RATE_DAYS))
    end = min(month.end, today)
    return ForecastData(month, today, fetch_daily(store, Period(start, end), "team", env,
                                                  team=team, feature=feature))


def team_forecasts(data: ForecastData) -> list[TeamForecast]:
    """One forecast per team with spend this month or in the run-rate window."""
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


def forecast_report(rows: list[TeamForecast], month: Period) -> Report:
    """The forecast as a Report: its table adds up to the TOTAL shown, like every report."""
    columns = [Column("team", "team", "text"), Column("to_date", "so far", "money", total=True),
               Column("run_rate", "daily run-rate", "money", total=True),
               Column("rate_days", "rate over days", "int"),
               Column("forecast", "forecast month end", "money", total=True)]
    data = [{"team": label(f.team), "to_date": f.to_date, "run_rate": f.run_rate,
             "rate_days": f.rate_days, "forecast": f.forecast} for f in rows]
    total = {"team": "TOTAL", "to_date": sum((f.to_date for f in rows), ZERO),
             "run_rate": sum((f.run_rate for f in rows), ZERO),
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
    if today > month.end:
        head = (f'<p class="note">{month.label} is over: the actual spend below is final '
                "(no forecast).</p>")
    else:
        left = (month.end - today).days
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
