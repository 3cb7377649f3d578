"""One self-contained HTML file: spend charts, top agent runs, unpriced calls, budget burn,
budget states and anomalies.

Everything is inline (CSS in a <style> block, charts as SVG generated here),
so the file can be mailed, attached to a ticket or opened offline. It reads
the same rollups and builds the same Report objects as the command line, so
the numbers in the charts are the numbers ``report spend`` prints.

Two halves: :func:`fetch_html_data` reads the store into a plain
:class:`HtmlData`, and :func:`render_html` turns that into the page without
touching a store or the clock, so the page is tested on hand-made rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from decimal import Decimal
from html import escape
from pathlib import Path

from spanledger.reports import svg
from spanledger.reports.budgets import Budgets
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
from spanledger.reports.period import Period, current_month, parse_month, utc_today
from spanledger.reports.queries import (
    DailyRow,
    SpendRow,
    TraceRow,
    UnverifiedSpend,
    fetch_daily,
    fetch_spend,
    fetch_traces,
    fetch_unverified,
    missing_rollups,
)
from spanledger.reports.spend import SpendOptions, spend_report, unverified_note
from spanledger.reports.tabular import UNPRICED, Report
from spanledger.reports.traces import traces_report
from spanledger.store.base import Store

ZERO = Decimal(0)

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1080px;color:#222;background:#fff}
h1{font-size:24px;margin:0 0 4px} h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #ddd;
padding-bottom:4px} .sub{color:#666;font-size:13px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 14px;min-width:150px}
.card .v{font-size:22px;font-weight:600} .card .k{font-size:12px;color:#666}
.warn{color:#b00020} tr.warn td{color:#b00020;font-weight:600}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
th,td{padding:4px 8px;border-bottom:1px solid #eee;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:600;border-top:2px solid #333}
.note{font-size:12px;color:#555;margin:2px 0}
.chart{margin:8px 0 4px}
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
    #: spend stored as (unverified): its collector token may not claim its attribution
    unverified: UnverifiedSpend | None = None


def fetch_html_data(store: Store, period: Period, *, budgets: Budgets | None = None,
                    env: str | None = None, top: int = 10,
                    today: dt.date | None = None, budget_status: Report | None = None,
                    anomalies: Report | None = None) -> HtmlData:
    """Read the rollups the page needs (nothing, on a store without spanledger tables)."""
    today = today or utc_today()
    wow_end = min(period.end, today)
    empty = bool(missing_rollups(store))
    spend = [] if empty else fetch_spend(store, period, ("team", "feature"), env)
    budget_spend = None
    if budgets is not None:
        budget_spend = (spend if empty or budgets.by == ("team", "feature")
                        else fetch_spend(store, period, budgets.by, env))
    return HtmlData(
        period=period, spend=spend,
        daily=[] if empty else fetch_daily(store, period, "team", env),
        traces=[] if empty else fetch_traces(store, period, None, env),
        wow=[] if empty else fetch_daily(
            store, Period(wow_end - dt.timedelta(days=13), wow_end), "feature", env),
        wow_end=wow_end, generated=dt.datetime.now(dt.UTC), today=today, env=env, top=top,
        budgets=budgets, budget_spend=budget_spend, budget_status=budget_status,
        anomalies=anomalies, unverified=None if empty else fetch_unverified(store, period, env))


def render_html(data: HtmlData) -> str:
    """The page for ``data``: pure, the same data gives the same bytes."""
    period, rows, env = data.period, data.spend, data.env
    by_team = spend_report(_regroup(rows, 0), SpendOptions(period, ("team",), env=env))
    by_feature = spend_report(rows, SpendOptions(period, ("team", "feature"), env=env))
    if data.unverified is not None and data.unverified.calls:
        by_team.notes.append(unverified_note(data.unverified))
    top_traces = traces_report(data.traces, period, data.top)
    budget_html = ('<p class="note">No budgets file given (spanledger report html '
                   '--budgets FILE).</p>')
    if data.budget_status is not None:
        budget_html = ('<p class="note">The budgets file keys no monthly budgets by report '
                       'group (<code>by:</code>); every budget is in the table below.</p>')
    if data.budgets is not None:
        b_report = spend_report(data.budget_spend or [], SpendOptions(
            period, data.budgets.by, model="budget", budgets=data.budgets, env=env,
            today=data.today))
        budget_html = (f'<div class="chart">{budget_chart(b_report)}</div>'
                       f'{report_table(b_report)}')
    scope = f", environment {escape(env)}" if env else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>spanledger: LLM spend {escape(period.label)}</title>
<style>{CSS}</style></head><body>
<h1>LLM spend {escape(period.label)}</h1>
<p class="sub">{period.start} to {period.end} (UTC){scope} · generated
{data.generated:%Y-%m-%d %H:%M} UTC by spanledger · actual prices at call time</p>
<div class="cards">{_cards(rows, len(data.traces), data.unverified)}</div>
<h2>Spend over time</h2>
<div class="chart">{spend_over_time_chart(data.daily, period)}</div>
<h2>Week over week by feature</h2>
{week_over_week(data.wow, data.wow_end)}
<h2>Showback by team</h2>
{report_table(by_team)}
<h2>Spend by feature</h2>
<div class="chart">{feature_chart(rows)}</div>
{report_table(by_feature)}
<h2>Top agent runs</h2>
<div class="chart">{traces_chart(top_traces)}</div>
{report_table(top_traces)}
<h2>Unpriced calls</h2>
<div class="chart">{unpriced_chart(rows)}</div>
<h2>Budget burn</h2>
{budget_html}
{budget_status_section(data.budget_status)}
{anomalies_section(data.anomalies)}
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
                      anomalies: Report | None = None) -> Path:
    """Write the report for ``period`` to ``path``; returns the file's absolute path.

    ``period``: a :class:`Period`, a month ``"YYYY-MM"``, or None for the current
    UTC month. ``budgets`` (from :func:`~spanledger.reports.budgets.load_budgets`)
    adds the budget-burn chart; ``today`` anchors its projection.
    ``budget_status`` / ``anomalies`` (``report budgets`` / ``report anomalies``,
    from :mod:`spanledger.budgets.report`) add their sections.
    """
    if isinstance(period, str):
        period = parse_month(period, "period")
    data = fetch_html_data(store, period or current_month(), budgets=budgets, env=env, top=top,
                           today=today, budget_status=budget_status, anomalies=anomalies)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(data), encoding="utf-8")
    return out.resolve()


def _regroup(rows: list[SpendRow], keep: int) -> list[SpendRow]:
    """The same rows grouped by one of their group values (team out of team x feature)."""
    return [replace(r, group=(r.group[keep],)) for r in rows]
