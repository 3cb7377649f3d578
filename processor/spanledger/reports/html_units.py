"""HTML sections "Cost per outcome" and "Unit economics per customer".

Each is a fetch (store -> rows) and a render (rows -> HTML) so the page can be
assembled from sections and tested without a store. The tables are the
Reports of ``report unit-economics``, so the page and the command line agree
to the cent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from spanledger.reports import svg
from spanledger.reports.html_charts import report_table
from spanledger.reports.period import Period
from spanledger.reports.queries import ALL, Scope
from spanledger.reports.revenue import Revenue
from spanledger.reports.tabular import Report
from spanledger.reports.unit_economics import (
    CustomerUnits,
    FeatureUnits,
    customer_report,
    feature_report,
    fetch_customer_units,
    fetch_feature_units,
)
from spanledger.store.base import Store

FLAG_COLOUR = "#b00020"


@dataclass(frozen=True, slots=True)
class UnitsData:
    features: FeatureUnits
    customers: CustomerUnits
    revenue: Revenue | None = None


def fetch_units(store: Store, period: Period, scope: Scope = ALL,
                revenue: Revenue | None = None) -> UnitsData:
    return UnitsData(fetch_feature_units(store, period, scope),
                     fetch_customer_units(store, period, scope), revenue)


def render_cost_per_outcome(data: UnitsData | None) -> str:
    """Bars of cost per outcome (waste share written beside), then the table."""
    if data is None:
        return '<p class="note">No outcome data was read for this page.</p>'
    report = feature_report(data.features)
    return f'<div class="chart">{_outcome_chart(report)}</div>{report_table(report)}'


def _outcome_chart(report: Report) -> str:
    rows = [r for r in report.rows if r["cost_per_outcome"] is not None]
    if not rows:
        return ('<p class="note">No outcomes in this period: record them in the services with '
                '<code>spanledger.outcome("ticket_resolved")</code> to see what a result '
                'costs.</p>')
    items, colours = [], []
    for r in rows:
        waste = f" · {r['waste_share']:.0f}% waste" if r["waste_share"] is not None else ""
        items.append((r["outcome"][:28], Decimal(r["cost_per_outcome"]),
                      f"{svg.usd_label(Decimal(r['cost_per_outcome']))} · {r['feature'][:24]}"
                      f"{waste}"))
        share = r["waste_share"] or Decimal(0)
        colours.append("#D55E00" if share >= 50 else svg.PALETTE[0])
    return svg.horizontal_bars("Cost per outcome by feature (orange: half the runs' cost or "
                               "more is waste)", items, "USD per outcome", colours=colours)


def render_customers(data: UnitsData | None) -> str:
    """AI cost per customer (red: flagged against revenue), then the table."""
    if data is None:
        return '<p class="note">No customer data was read for this page.</p>'
    report = customer_report(data.customers, data.revenue)
    hint = ("" if data.revenue is not None else
            '<p class="note">Give a revenue file (<code>spanledger report html --revenue '
            'FILE</code>) to see AI cost as a share of each customer\'s revenue and the margin '
            'after AI cost.</p>')
    return f'<div class="chart">{_customer_chart(report)}</div>{hint}{report_table(report)}'


def _customer_chart(report: Report, top: int = 15) -> str:
    rows = [r for r in report.rows if r["cost"] > 0][:top]
    if not rows:
        return '<p class="note">No AI cost in this period.</p>'
    items, colours = [], []
    for r in rows:
        parts = [svg.usd_label(Decimal(r["cost"]))]
        if r.get("cost_share") is not None:
            parts.append(f"{r['cost_share']:.1f}% of revenue")
        if r["users"]:
            parts.append(f"{svg.usd_label(Decimal(r['cost_per_user']))} per active user")
        items.append((r["customer"], Decimal(r["cost"]), " · ".join(parts)))
        colours.append(FLAG_COLOUR if r.get("flag") else svg.PALETTE[2])
    more = len([r for r in report.rows if r["cost"] > 0]) - len(rows)
    title = "AI cost per customer"
    if more > 0:
        title += f" (top {top}; {more} more in the table)"
    if report.meta.get("revenue_file"):
        title += f" · red: >= {report.meta['threshold_percent']}% of revenue"
    return svg.horizontal_bars(title, items, "AI cost in the period (USD)", colours=colours)


__all__ = ["UnitsData", "fetch_units", "render_cost_per_outcome", "render_customers"]
