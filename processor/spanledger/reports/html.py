"""One self-contained HTML file: spend charts, top agent runs, unpriced calls, budget burn.

Everything is inline (CSS in a <style> block, charts as SVG generated here),
so the file can be mailed, attached to a ticket or opened offline. It reads
the same rollups and builds the same Report objects as the command line, so
the numbers in the charts are the numbers ``report spend`` prints.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from html import escape
from pathlib import Path

from spanledger.reports import svg
from spanledger.reports.budgets import Budgets
from spanledger.reports.chargeback import UNATTRIBUTED, label
from spanledger.reports.formats import display_rows
from spanledger.reports.period import Period, current_month, parse_month, utc_today
from spanledger.reports.queries import (
    DailyRow,
    SpendRow,
    fetch_daily,
    fetch_spend,
    missing_rollups,
)
from spanledger.reports.spend import SpendOptions, spend_report
from spanledger.reports.tabular import Report
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


def _table(report: Report) -> str:
    rows, total = display_rows(report)
    head = "".join(f'<th class="{"n" if c.kind != "text" else ""}">{escape(c.header)}</th>'
                   for c in report.columns)
    body = []
    for r in rows:
        body.append("<tr>" + "".join(
            f'<td class="{"n" if c.kind != "text" else ""}">{escape(r[c.key])}</td>'
            for c in report.columns) + "</tr>")
    if total is not None:
        body.append('<tr class="total">' + "".join(
            f'<td class="{"n" if c.kind != "text" else ""}">'
            f'{escape(total[c.key] if total[c.key] != "-" else "")}</td>'
            for c in report.columns) + "</tr>")
    if not rows:
        body.append(f'<tr><td colspan="{len(report.columns)}">no data in this period</td></tr>')
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in report.notes)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{notes}"


def _buckets(period: Period) -> tuple[str, list[dt.date]]:
    """Days for up to ~6 weeks, else ISO weeks (Mondays), so bars stay readable."""
    if period.days <= 45:
        return "day", [period.start + dt.timedelta(days=i) for i in range(period.days)]
    first = period.start - dt.timedelta(days=period.start.weekday())
    weeks, d = [], first
    while d <= period.end:
        weeks.append(d)
        d += dt.timedelta(days=7)
    return "week", weeks


def spend_over_time_chart(daily: list[DailyRow], period: Period, top_n: int = 8) -> str:
    unit, buckets = _buckets(period)
    index = {b: i for i, b in enumerate(buckets)}
    per_team: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO] * len(buckets))
    for r in daily:
        b = r.day if unit == "day" else r.day - dt.timedelta(days=r.day.weekday())
        if b in index:
            per_team[label(r.group)][index[b]] += r.cost
    ranked = sorted(per_team, key=lambda t: -sum(per_team[t], ZERO))
    series: dict[str, list[Decimal]] = {t: per_team[t] for t in ranked[:top_n]}
    if len(ranked) > top_n:
        other = [ZERO] * len(buckets)
        for t in ranked[top_n:]:
            other = [a + b for a, b in zip(other, per_team[t], strict=True)]
        series["(other teams)"] = other
    colours = svg.colour_for(list(series), UNATTRIBUTED)
    cats = [f"{b:%m-%d}" if unit == "day" else f"wk {b:%m-%d}" for b in buckets]
    x_title = f"{unit} (UTC)" + (", weeks start Monday" if unit == "week" else "")
    return svg.stacked_bars(f"Spend by team per {unit}, {period.label}", cats, series, colours,
                            x_title=x_title, y_title="spend (USD)")


def feature_chart(rows: list[SpendRow]) -> str:
    per: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for r in rows:
        per[label(r.group[1])] += r.cost
    items = sorted(per.items(), key=lambda kv: -kv[1])
    colours = [svg.GREY if k == UNATTRIBUTED else svg.PALETTE[0] for k, _ in items]
    return svg.horizontal_bars("Spend by feature (use case)",
                               [(k, v, svg.usd_label(v)) for k, v in items],
                               "spend (USD)", colours=colours)


def unpriced_chart(rows: list[SpendRow]) -> str:
    calls: dict[str, int] = defaultdict(int)
    tokens: dict[str, int] = defaultdict(int)
    for r in rows:
        if r.status != "priced":
            key = f"{r.provider or '?'}/{r.model or '(no model)'}"
            calls[key] += r.calls
            tokens[key] += r.input_tokens + r.output_tokens
    if not calls:
        return '<p class="note">No unpriced calls in this period: every call has a price.</p>'
    items = sorted(calls.items(), key=lambda kv: -kv[1])
    return svg.horizontal_bars(
        "Unpriced calls by provider/model (no price: not in any $ total)",
        [(k, Decimal(v), f"{v:,} calls, {tokens[k]:,} tokens") for k, v in items],
        "calls", colours=["#D55E00"] * len(items), money=False)


def traces_chart(report: Report) -> str:
    if not report.rows:
        return '<p class="note">No agent runs in this period.</p>'
    items = []
    for r in report.rows:
        unpriced = f" ({r['unpriced_calls']} unpriced)" if r["unpriced_calls"] else ""
        items.append((f"{r['trace_id'][:12]} {r['feature']}", Decimal(r["cost"]),
                      f"{svg.usd_label(Decimal(r['cost']))} · {r['calls']} calls{unpriced} · "
                      f"{r['amplification']}"))
    colours = [svg.PALETTE[5] if (r["cost_x"] is not None and r["cost_x"] >= 3) else svg.PALETTE[0]
               for r in report.rows]
    return svg.horizontal_bars("Top agent runs by cost (amplification vs the median run of "
                               "their feature; orange: 3x or more)", items, "cost per run (USD)",
                               colours=colours)


def budget_chart(report: Report) -> str:
    rows = [r for r in report.rows if r.get("budget") is not None]
    if not rows:
        return '<p class="note">No budgets matched any group.</p>'
    items, colours, projected = [], [], []
    for r in rows:
        name = " / ".join(str(r[d]) for d in report.meta["by"])
        used = Decimal(r["used"])
        items.append((name, used, f"{used:.1f}% of {svg.usd_label(Decimal(r['budget']))} · "
                                  f"proj. {Decimal(r['projected_used']):.0f}% · {r['state']}"))
        projected.append(float(r["projected_used"]))
        colours.append("#b00020" if used >= 100 else "#E69F00" if used >= 80 else
                       "#F0C419" if used >= 50 else "#009E73")
    stops = sorted({Decimal(r["hard_stop"]) for r in rows})
    markers = [(50.0, "50%"), (80.0, "80%"), (100.0, "100%")]
    markers += [(float(s), f"{s:f}% stop") for s in stops]
    return svg.horizontal_bars("Budget burn: % of budget used (◇ projected)", items,
                               "% of the period's budget used (alerts at >= 50/80/100%, "
                               "hard stop; ◇ projected month end)", colours=colours,
                               money=False, markers=markers, projections=projected)


#: a feature whose last-7-day spend is this many times the 7 days before is flagged
ANOMALY_RATIO = Decimal(3)


def week_over_week(daily: list[DailyRow], end: dt.date) -> str:
    """Spend per feature in the 7 days to ``end`` against the 7 days before (anomalies).

    "feature X costs 10x last week" is usually a bug or an agent loop; a ratio
    of ANOMALY_RATIO or more, or spend from nothing, is highlighted.
    """
    this_start, prev_start = end - dt.timedelta(days=6), end - dt.timedelta(days=13)
    cur: dict[str, Decimal] = defaultdict(lambda: ZERO)
    prev: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for r in daily:
        if this_start <= r.day <= end:
            cur[label(r.group)] += r.cost
        elif prev_start <= r.day < this_start:
            prev[label(r.group)] += r.cost
    names = sorted(set(cur) | set(prev), key=lambda k: -(cur[k] + prev[k]))
    if not names:
        return '<p class="note">No spend in the last two weeks of the period.</p>'
    body = []
    for k in names:
        c, p = cur[k], prev[k]
        if p > 0:
            ratio = c / p
            change, hot = f"x{ratio:.2f}", ratio >= ANOMALY_RATIO
        else:
            change, hot = ("new" if c > 0 else "-"), c > 0
        cls = ' class="warn"' if hot else ""
        body.append(f"<tr{cls}><td>{escape(k)}</td><td class=\"n\">{svg.usd_label(p)}</td>"
                    f"<td class=\"n\">{svg.usd_label(c)}</td><td class=\"n\">{change}</td></tr>")
    return (f"<table><thead><tr><th>feature</th><th class=\"n\">{prev_start:%m-%d} – "
            f"{this_start - dt.timedelta(days=1):%m-%d}</th><th class=\"n\">{this_start:%m-%d} – "
            f"{end:%m-%d}</th><th class=\"n\">change</th></tr></thead><tbody>{''.join(body)}"
            f"</tbody></table><p class=\"note\">Red: {ANOMALY_RATIO:f}x the week before or more, "
            "or spend where there was none: usually a bug or an agent loop.</p>")


def write_html_report(store: Store, path: str | Path, period: Period | str | None = None, *,
                      budgets: Budgets | None = None, env: str | None = None, top: int = 10,
                      today: dt.date | None = None) -> Path:
    """Write the report for ``period`` to ``path``; returns the file's absolute path.

    ``period``: a :class:`Period`, a month ``"YYYY-MM"``, or None for the current
    UTC month. ``budgets`` (from :func:`~spanledger.reports.budgets.load_budgets`)
    adds the budget-burn chart; ``today`` anchors its projection.
    """
    from spanledger.reports.queries import fetch_traces

    if isinstance(period, str):
        period = parse_month(period, "period")
    period = period or current_month()
    today = today or utc_today()
    empty = bool(missing_rollups(store))
    rows = [] if empty else fetch_spend(store, period, ("team", "feature"), env)
    daily = [] if empty else fetch_daily(store, period, "team", env)
    traces = [] if empty else fetch_traces(store, period, None, env)
    wow_end = min(period.end, today)
    wow = [] if empty else fetch_daily(
        store, Period(wow_end - dt.timedelta(days=13), wow_end), "feature", env)
    by_team = spend_report(_regroup(rows, 0), SpendOptions(period, ("team",), env=env))
    by_feature = spend_report(rows, SpendOptions(period, ("team", "feature"), env=env))
    top_traces = traces_report(traces, period, top)
    budget_html = ('<p class="note">No budgets file given (spanledger report html '
                   '--budgets FILE).</p>')
    if budgets is not None:
        brows = rows if empty or budgets.by == ("team", "feature") else fetch_spend(store, period,
                                                                           budgets.by, env)
        b_report = spend_report(brows, SpendOptions(period, budgets.by, model="budget",
                                                    budgets=budgets, env=env, today=today))
        budget_html = f'<div class="chart">{budget_chart(b_report)}</div>{_table(b_report)}'

    total = sum((r.cost for r in rows), ZERO)
    calls = sum(r.calls for r in rows)
    unpriced = sum(r.calls for r in rows if r.status != "priced")
    untagged = sum((r.cost for r in rows if r.group[0] == ""), ZERO)
    cards = [
        ("spend", svg.usd_label(total), ""),
        ("LLM calls", f"{calls:,}", ""),
        ("agent runs (traces)", f"{len(traces):,}", ""),
        ("unpriced calls", f"{unpriced:,}", "warn" if unpriced else ""),
        ("untagged spend (no team)", svg.usd_label(untagged), "warn" if untagged else ""),
    ]
    card_html = "".join(f'<div class="card"><div class="v {cls}">{escape(v)}</div>'
                        f'<div class="k">{escape(k)}</div></div>' for k, v, cls in cards)
    scope = f", environment {escape(env)}" if env else ""
    html = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>spanledger: LLM spend {escape(period.label)}</title>
<style>{CSS}</style></head><body>
<h1>LLM spend {escape(period.label)}</h1>
<p class="sub">{period.start} to {period.end} (UTC){scope} · generated
{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by spanledger · actual prices at call time</p>
<div class="cards">{card_html}</div>
<h2>Spend over time</h2>
<div class="chart">{spend_over_time_chart(daily, period)}</div>
<h2>Week over week by feature</h2>
{week_over_week(wow, wow_end)}
<h2>Showback by team</h2>
{_table(by_team)}
<h2>Spend by feature</h2>
<div class="chart">{feature_chart(rows)}</div>
{_table(by_feature)}
<h2>Top agent runs</h2>
<div class="chart">{traces_chart(top_traces)}</div>
{_table(top_traces)}
<h2>Unpriced calls</h2>
<div class="chart">{unpriced_chart(rows)}</div>
<h2>Budget burn</h2>
{budget_html}
</body></html>
"""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out.resolve()


def _regroup(rows: list[SpendRow], keep: int) -> list[SpendRow]:
    """The same rows grouped by one of their group values (team out of team x feature)."""
    from dataclasses import replace

    return [replace(r, group=(r.group[keep],)) for r in rows]
