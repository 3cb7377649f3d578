"""One self-contained HTML file: spend, forecast, unit economics, model mix, runs, budgets,
budget states and anomalies.

Everything is inline (CSS in a <style> block, charts as SVG generated here, no
script), so the file can be mailed, attached to a ticket, opened offline or
printed to PDF (a print stylesheet lays it out on A4 landscape). It reads the
same rollups and builds the same Report objects as the command line, so the
numbers in the charts are the numbers ``report spend`` and ``report
unit-economics`` print.

Two halves: :func:`fetch_html_data` reads the store into a plain
:class:`HtmlData`, and :func:`render_html` turns that into the page without
touching a store or the clock, so the page is tested on hand-made rows. Each
section is its own fetch and render function (``html_units``,
``html_forecast``, ``html_mix``, ``html_callouts``, ``html_drilldown``) and one
entry of :func:`sections`; a section whose data was not read says so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from decimal import Decimal
from html import escape
from pathlib import Path

from spanledger.reports import svg
from spanledger.reports.budgets import Budgets
from spanledger.reports.html_callouts import fetch_callout_days, render_callouts
from spanledger.reports.html_charts import (
    anomalies_section,
    budget_chart,
    budget_status_section,
    feature_chart,
    report_table,
    spend_over_time_chart,
    traces_chart,
    unpriced_chart,
    week_over_week,
)
from spanledger.reports.html_drilldown import DrillData, fetch_drilldown, render_drilldown
from spanledger.reports.html_forecast import (
    ForecastData,
    Forecaster,
    fetch_forecast,
    forecast_month,
    render_forecast,
)
from spanledger.reports.html_mix import (
    MixData,
    fetch_mix,
    render_call_kinds,
    render_model_mix,
)
from spanledger.reports.html_pickers import Pickers, render_pickers
from spanledger.reports.html_units import (
    UnitsData,
    fetch_units,
    render_cost_per_outcome,
    render_customers,
)
from spanledger.reports.period import Period, current_month, parse_month, utc_today
from spanledger.reports.queries import (
    DailyGroupRow,
    DailyRow,
    Scope,
    SpendRow,
    TraceRow,
    UnverifiedSpend,
    fetch_daily,
    fetch_spend,
    fetch_traces,
    fetch_unverified,
    missing_rollups,
)
from spanledger.reports.revenue import Revenue
from spanledger.reports.spend import SpendOptions, spend_report, unverified_note
from spanledger.reports.tabular import UNPRICED, Report
from spanledger.reports.traces import traces_report
from spanledger.store.base import Store

ZERO = Decimal(0)

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1080px;padding:0 16px;color:#222;background:#fff}
h1{font-size:24px;margin:0 0 4px} h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #ddd;
padding-bottom:4px} h3{font-size:14px;margin:20px 0 2px} .sub{color:#666;font-size:13px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 14px;min-width:130px}
.card .v{font-size:22px;font-weight:600} .card .k{font-size:12px;color:#666}
.warn{color:#b00020} tr.warn td{color:#b00020;font-weight:600}
table{border-collapse:collapse;font-size:12px;margin:8px 0;max-width:100%}
th,td{padding:4px 6px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums} td.n,.nw{white-space:nowrap}
td.id,.id{white-space:nowrap;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
td.t{overflow-wrap:break-word}
tr.total td{font-weight:600;border-top:2px solid #333}
tr.gap td{color:#666;font-style:italic}
.note{font-size:12px;color:#555;margin:2px 0}
.chart{margin:8px 0 4px} svg{max-width:100%;height:auto}
ul.callouts{margin:8px 0;padding-left:20px} ul.callouts li{margin:6px 0;line-height:1.4}
form.pickers{display:flex;gap:12px;flex-wrap:wrap;align-items:flex-end;margin:12px 0;
padding:10px 12px;border:1px solid #ddd;border-radius:8px;font-size:13px}
form.pickers label{display:flex;flex-direction:column;gap:2px;color:#555}
form.pickers button{padding:4px 14px}
@media print{
@page{size:A4 landscape;margin:12mm}
body{max-width:none;margin:0;padding:0;font-size:11px}
form.pickers{display:none}
h2{break-after:avoid;margin-top:18px} h3{break-after:avoid}
.chart,.card,ul.callouts li,thead,tr{break-inside:avoid}
table{font-size:9px} .card .v{font-size:16px}
.run{break-before:page}
}
"""


@dataclass(frozen=True, slots=True)
class HtmlData:
    """Everything the page shows, as fetched rows: the input of :func:`render_html`."""

    period: Period
    #: spend per team x feature x provider x model x status
    spend: list[SpendRow]
    #: priced cost per day and team (the stacked bars)
    daily: list[DailyRow]
    #: every trace that started in the period
    traces: list[TraceRow]
    #: cost per day and feature over the 14 days to ``wow_end`` (week over week)
    wow: list[DailyRow]
    wow_end: dt.date
    #: when the data was read (the page says so); "today" of the budget projection
    generated: dt.datetime
    today: dt.date
    env: str | None = None
    top: int = 10
    budgets: Budgets | None = None
    #: spend grouped by ``budgets.by`` (the budget-burn chart)
    budget_spend: list[SpendRow] | None = None
    #: ``report budgets`` and ``report anomalies``, built by the caller (spanledger.budgets)
    budget_status: Report | None = None
    anomalies: Report | None = None
    #: the pickers' team and feature (None: all; "": the untagged rows)
    team: str | None = None
    feature: str | None = None
    #: the sections below: None when not read (the section says so)
    units: UnitsData | None = None
    forecast: ForecastData | None = None
    mix: MixData | None = None
    #: priced cost per day x team x feature, from BASELINE_DAYS before the period
    callout_days: list[DailyGroupRow] | None = None
    drill: DrillData | None = None
    #: the live page's form (None: a saved file)
    pickers: Pickers | None = None
    #: spend stored as (unverified): its collector token may not claim its attribution
    unverified: UnverifiedSpend | None = None


def fetch_html_data(store: Store, period: Period, *, budgets: Budgets | None = None,
                    env: str | None = None, top: int = 10,
                    today: dt.date | None = None, revenue: Revenue | None = None,
                    team: str | None = None, feature: str | None = None,
                    pickers: Pickers | None = None, budget_status: Report | None = None,
                    anomalies: Report | None = None, forecaster: Forecaster | None = None,
                    now: dt.datetime | None = None) -> HtmlData:
    """Read the rollups the page needs (nothing, on a store without spanledger tables).

    ``forecaster`` (and ``now``, its moment; default: now) replaces the month-end
    forecast's own rule, so the page can forecast as the budgets do.

    ``team`` / ``feature`` narrow every section (None: all; "": the untagged rows).
    """
    today = today or (now.date() if now is not None else utc_today())
    if forecaster is not None and now is None:
        now = dt.datetime.now(dt.UTC)
    wow_end = min(period.end, today)
    empty = bool(missing_rollups(store))
    scope = Scope(env, team, feature)
    who = {"team": team, "feature": feature}
    spend = [] if empty else fetch_spend(store, period, ("team", "feature"), env, **who)
    budget_spend = None
    if budgets is not None:
        budget_spend = (spend if empty or budgets.by == ("team", "feature")
                        else fetch_spend(store, period, budgets.by, env, **who))
    traces = [] if empty else fetch_traces(store, period, feature, env, team=team)
    return HtmlData(
        period=period, spend=spend,
        daily=[] if empty else fetch_daily(store, period, "team", env, **who),
        traces=traces,
        wow=[] if empty else fetch_daily(
            store, Period(wow_end - dt.timedelta(days=13), wow_end), "feature", env, **who),
        wow_end=wow_end, generated=dt.datetime.now(dt.UTC), today=today, env=env, top=top,
        budgets=budgets, budget_spend=budget_spend, budget_status=budget_status,
        anomalies=anomalies, team=team, feature=feature,
        units=fetch_units(store, period, scope, revenue),
        forecast=(ForecastData(forecast_month(period, today), today, []) if empty
                  else fetch_forecast(store, period, today, env, team, feature, forecaster,
                                      now)),
        mix=MixData([], []) if empty else fetch_mix(store, period, scope),
        callout_days=[] if empty else fetch_callout_days(store, period, scope),
        drill=DrillData([], []) if empty else fetch_drilldown(store, traces),
        pickers=pickers,
        unverified=None if empty else fetch_unverified(store, period, env, team=team,
                                                       feature=feature))


def sections(data: HtmlData) -> list[tuple[str, str, str]]:
    """(id, title, body) of every section, in page order: one entry per section."""
    period, rows, env = data.period, data.spend, data.env
    by_team = spend_report(_regroup(rows, 0), SpendOptions(period, ("team",), env=env))
    by_feature = spend_report(rows, SpendOptions(period, ("team", "feature"), env=env))
    if data.unverified is not None and data.unverified.calls:
        by_team.notes.append(unverified_note(data.unverified))
    top_traces = traces_report(data.traces, period, data.top)
    for r in top_traces.rows:  # a list a line can break after (CSV keeps "a,b")
        r["models"] = r["models"].replace(",", ", ")
    return [
        ("callouts", "What stands out",
         render_callouts(data.callout_days, period, data.traces, data.anomalies)),
        ("over-time", "Spend over time",
         f'<div class="chart">{spend_over_time_chart(data.daily, period)}</div>'),
        ("forecast", "Month-end forecast per team", render_forecast(data.forecast)),
        ("week-over-week", "Week over week by feature", week_over_week(data.wow, data.wow_end)),
        ("by-team", "Showback by team", report_table(by_team)),
        ("by-feature", "Spend by feature",
         f'<div class="chart">{feature_chart(rows)}</div>{report_table(by_feature)}'),
        ("cost-per-outcome", "Cost per outcome", render_cost_per_outcome(data.units)),
        ("customers", "Unit economics per customer", render_customers(data.units)),
        ("model-mix", "Model mix", render_model_mix(data.mix, period)),
        ("call-kinds", "LLM calls, tool calls and vector-database queries",
         render_call_kinds(data.mix)),
        ("top-runs", "Top agent runs",
         f'<div class="chart">{traces_chart(top_traces)}</div>{report_table(top_traces)}'),
        ("drill-down", "Inside the top runs", render_drilldown(data.drill)),
        ("unpriced", "Unpriced calls", f'<div class="chart">{unpriced_chart(rows)}</div>'),
        ("budgets", "Budget burn", _budget_html(data)),
        *([("budget-status", "Budgets", budget_status_section(data.budget_status))]
          if data.budget_status is not None else []),
        *([("anomalies", "Anomalies", anomalies_section(data.anomalies))]
          if data.anomalies is not None else []),
    ]


def _budget_html(data: HtmlData) -> str:
    if data.budgets is None and data.budget_status is not None:
        return ('<p class="note">The budgets file keys no monthly budgets by report group '
                '(<code>by:</code>); every budget is in the table below.</p>')
    if data.budgets is None:
        return '<p class="note">No budgets file given (spanledger report html --budgets FILE).</p>'
    b_report = spend_report(data.budget_spend or [], SpendOptions(
        data.period, data.budgets.by, model="budget", budgets=data.budgets, env=data.env,
        today=data.today))
    return f'<div class="chart">{budget_chart(b_report)}</div>{report_table(b_report)}'


def render_html(data: HtmlData) -> str:
    """The page for ``data``: pure, the same data gives the same bytes."""
    period, env = data.period, data.env
    scope = f", environment {escape(env)}" if env else ""
    for name, value in (("team", data.team), ("feature", data.feature)):
        if value is not None:
            scope += f", {name} {escape(value or '(unattributed)')}"
    live = " · live" if data.pickers is not None else ""
    body = "\n".join(f'<section id="{sid}"><h2>{escape(title)}</h2>\n{html}</section>'
                     for sid, title, html in sections(data))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>spanledger: LLM spend {escape(period.label)}</title>
<style>{CSS}</style></head><body>
<h1>LLM spend {escape(period.label)}</h1>
<p class="sub">{period.start} to {period.end} (UTC){scope} · generated
{data.generated:%Y-%m-%d %H:%M} UTC by spanledger{live} · actual prices at call time</p>
{render_pickers(data.pickers)}
<div class="cards">{_cards(data.spend, len(data.traces), data.unverified)}</div>
{body}
</body></html>
"""


def _cards(rows: list[SpendRow], traces: int, unverified: UnverifiedSpend | None = None) -> str:
    """The headline numbers; unpriced calls and untagged spend in red when there are any.

    LLM calls, tool calls and vector-database calls are counted apart; spend is "unpriced"
    (not $0.00) when there were calls and none had a price.
    """
    total = sum((r.cost for r in rows), ZERO)
    calls = sum(r.model_calls for r in rows)
    tools = sum(r.tool_calls for r in rows)
    vectors = sum(r.vector_calls for r in rows)
    duplicates = sum(r.duplicate_spans for r in rows)
    priced = sum(r.calls for r in rows if r.status == "priced")
    unpriced = sum(r.calls for r in rows if r.status == "unpriced")
    untagged = sum((r.cost for r in rows if r.group[0] == ""), ZERO)
    spend = svg.usd_label(total) if priced or not any(r.calls for r in rows) else UNPRICED
    cards = [
        ("spend", spend, "warn" if spend == UNPRICED else ""),
        ("LLM calls", f"{calls:,}", ""),
        ("tool calls", f"{tools:,}", ""),
        ("vector-DB calls", f"{vectors:,}", ""),
        ("agent runs (traces)", f"{traces:,}", ""),
        ("unpriced calls", f"{unpriced:,}", "warn" if unpriced else ""),
        ("untagged spend (no team)", svg.usd_label(untagged), "warn" if untagged else ""),
    ]
    if duplicates:
        cards.append(("duplicate spans (counted once)", f"{duplicates:,}", ""))
    if unverified is not None and unverified.calls:
        cards.append((f"unverified spend ({unverified.calls:,} calls its token may not "
                      "attribute)", svg.usd_label(unverified.cost), "warn"))
    return "".join(f'<div class="card"><div class="v {cls}">{escape(v)}</div>'
                   f'<div class="k">{escape(k)}</div></div>' for k, v, cls in cards)


def write_html_report(store: Store, path: str | Path, period: Period | str | None = None, *,
                      budgets: Budgets | None = None, env: str | None = None, top: int = 10,
                      today: dt.date | None = None, budget_status: Report | None = None,
                      anomalies: Report | None = None, revenue: Revenue | None = None,
                      forecaster: Forecaster | None = None,
                      now: dt.datetime | None = None) -> Path:
    """Write the report for ``period`` to ``path``; returns the file's absolute path.

    ``period``: a :class:`Period`, a month ``"YYYY-MM"``, or None for the current
    UTC month. ``budgets`` (from :func:`~spanledger.reports.budgets.load_budgets`)
    adds the budget-burn chart; ``today`` anchors its projection and the forecast;
    ``budget_status`` / ``anomalies`` (``report budgets`` / ``report anomalies``,
    from :mod:`spanledger.budgets.report`) add their sections (and the anomalies are
    the call-outs); ``revenue`` (:func:`~spanledger.reports.revenue.load_revenue`)
    adds margins; ``forecaster`` / ``now``: the month-end forecast's (see
    :func:`fetch_html_data`).
    """
    if isinstance(period, str):
        period = parse_month(period, "period")
    data = fetch_html_data(store, period or current_month(), budgets=budgets, env=env, top=top,
                           today=today, budget_status=budget_status, anomalies=anomalies,
                           revenue=revenue, forecaster=forecaster, now=now)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(data), encoding="utf-8")
    return out.resolve()


def _regroup(rows: list[SpendRow], keep: int) -> list[SpendRow]:
    """The same rows grouped by one of their group values (team out of team x feature)."""
    return [replace(r, group=(r.group[keep],)) for r in rows]
