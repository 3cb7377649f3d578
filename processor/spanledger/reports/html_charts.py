"""The sections of the HTML report, each rendered from plain rows (no store).

Charts are inline SVG from :mod:`svg`; tables show the same display values
as ``report spend`` in a terminal (:func:`~spanledger.reports.formats.display_rows`),
so a number is rounded once and reads the same everywhere.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from decimal import Decimal
from html import escape

from spanledger.reports import svg
from spanledger.reports.chargeback import UNATTRIBUTED, label
from spanledger.reports.formats import display_rows
from spanledger.reports.period import Period
from spanledger.reports.queries import DailyRow, SpendRow
from spanledger.reports.tabular import UNPRICED, Column, Report

ZERO = Decimal(0)


#: text columns holding ids, names and dates: never wrapped (a trace id, a customer or a
#: date cut in two cannot be read or copied); every other text column may wrap
ID_KEYS = frozenset({"trace_id", "span_id", "start", "end", "day", "date", "month", "time"})
NAME_KEYS = frozenset({"team", "feature", "customer", "model", "outcome", "cost_center"})
#: a date (2026-11, 2026-11-30, 2026-11-30 18:20) inside free text: kept on one line
_DATE = re.compile(r"\d{4}-\d{2}(?:-\d{2})?(?:[ T]\d{2}:\d{2}(?::\d{2})?)?")


def cell_class(col: Column) -> str:
    """``n``: a number (right-aligned, one line); ``id``: an id or a date (one line,
    monospace); ``t nw``: a name (one line); ``t``: text that may wrap."""
    if col.kind != "text":
        return "n"
    if col.key in ID_KEYS or col.key.endswith("_id"):
        return "id"
    return "t nw" if col.key in NAME_KEYS else "t"


def cell_html(text: str, cls: str) -> str:
    """A cell's text, escaped; in text that may wrap, dates stay whole (``week of
    2026-11-30`` may break at its spaces, never inside the date)."""
    html = escape(text)
    if cls == "t":
        html = _DATE.sub(lambda m: f'<span class="nw">{m.group(0)}</span>', html)
    return html


def report_table(report: Report) -> str:
    """A report as an HTML table, with the same rounded numbers as the text table."""
    rows, total = display_rows(report)
    classes = [cell_class(c) for c in report.columns]
    head = "".join(f'<th class="{"n" if cls == "n" else ""}">{escape(c.header)}</th>'
                   for c, cls in zip(report.columns, classes, strict=True))
    body = []
    for r in rows:
        body.append("<tr>" + "".join(
            f'<td class="{cls}">{cell_html(r[c.key], cls)}</td>'
            for c, cls in zip(report.columns, classes, strict=True)) + "</tr>")
    if total is not None:
        body.append('<tr class="total">' + "".join(
            f'<td class="{cls}">'
            f'{escape(total[c.key] if total[c.key] != "-" else "")}</td>'
            for c, cls in zip(report.columns, classes, strict=True)) + "</tr>")
    if not rows:
        body.append(f'<tr><td colspan="{len(report.columns)}">no data in this period</td></tr>')
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in report.notes)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{notes}"


def bucket_of(day: dt.date, unit: str) -> dt.date:
    """The bar a day falls in: itself, or its ISO week's Monday."""
    return day if unit == "day" else day - dt.timedelta(days=day.weekday())


def buckets(period: Period) -> tuple[str, list[dt.date]]:
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
    unit, bars = buckets(period)
    index = {b: i for i, b in enumerate(bars)}
    per_team: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO] * len(bars))
    for r in daily:
        b = bucket_of(r.day, unit)
        if b in index:
            per_team[label(r.group)][index[b]] += r.cost
    ranked = sorted(per_team, key=lambda t: -sum(per_team[t], ZERO))
    series: dict[str, list[Decimal]] = {t: per_team[t] for t in ranked[:top_n]}
    if len(ranked) > top_n:
        other = [ZERO] * len(bars)
        for t in ranked[top_n:]:
            other = [a + b for a, b in zip(other, per_team[t], strict=True)]
        series["(other teams)"] = other
    colours = svg.colour_for(list(series), UNATTRIBUTED)
    cats = [f"{b:%m-%d}" if unit == "day" else f"wk {b:%m-%d}" for b in bars]
    x_title = f"{unit} (UTC)" + (", weeks start Monday" if unit == "week" else "")
    return svg.stacked_bars(f"Spend by team per {unit}, {period.label}", cats, series, colours,
                            x_title=x_title, y_title="spend (USD)")


def feature_chart(rows: list[SpendRow]) -> str:
    """Spend per feature; a feature whose calls all lack a price reads "unpriced", not $0."""
    per: dict[str, Decimal] = defaultdict(lambda: ZERO)
    priced: dict[str, int] = defaultdict(int)
    for r in rows:
        per[label(r.group[1])] += r.cost
        priced[label(r.group[1])] += r.calls if r.status == "priced" else 0
    items = sorted(per.items(), key=lambda kv: -kv[1])
    colours = [svg.GREY if k == UNATTRIBUTED else svg.PALETTE[0] for k, _ in items]
    return svg.horizontal_bars("Spend by feature (use case)",
                               [(k, v, svg.usd_label(v) if priced[k] or v else UNPRICED)
                                for k, v in items],
                               "spend (USD)", colours=colours)


def unpriced_chart(rows: list[SpendRow]) -> str:
    calls: dict[str, int] = defaultdict(int)
    tokens: dict[str, int] = defaultdict(int)
    for r in rows:
        if r.status == "unpriced":  # models without a price (not tools, not duplicates)
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
        tools = f", {r['tool_calls']} tool" if r.get("tool_calls") else ""
        cost = UNPRICED if r.get("unpriced_run") else svg.usd_label(Decimal(r["cost"]))
        items.append((f"{r['trace_id'][:12]} {r['feature']}", Decimal(r["cost"]),
                      f"{cost} · {r['calls']} LLM calls{unpriced}{tools} · "
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
    return (f"<table><thead><tr><th>feature</th><th class=\"n nw\">{prev_start:%m-%d} – "
            f"{this_start - dt.timedelta(days=1):%m-%d}</th><th class=\"n nw\">"
            f"{this_start:%m-%d} – {end:%m-%d}</th><th class=\"n\">change</th></tr></thead>"
            f"<tbody>{''.join(body)}"
            f"</tbody></table><p class=\"note\">Red: {ANOMALY_RATIO:f}x the week before or more, "
            "or spend where there was none: usually a bug or an agent loop.</p>")


def budget_status_section(report: Report) -> str:
    """``report budgets`` as a section's body: every budget's spend, forecast, thresholds,
    alerts (the page adds the heading)."""
    return report_table(report)


def anomalies_section(report: Report) -> str:
    """``report anomalies`` as a section's body: spikes, creeps and runaway runs, or none."""
    if not report.rows:
        notes = "".join(f'<p class="note">{escape(n)}</p>' for n in report.notes)
        return f"<p>No anomalies in {escape(report.title[10:])}.</p>{notes}"
    return report_table(report)
