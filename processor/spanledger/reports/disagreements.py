"""``report disagreements``: costs the spans arrived with, beside the collector's.

The collector prices every GenAI span itself; a figure a service (its own spanledger
processor) or another tool (openlit, litellm) put on the span is kept as
``spanledger.cost.reported`` and never summed. This report lists, per service x model
x who reported, how many counted calls came with such a figure, how many differ from
the collector's beyond its tolerance, and the two sums side by side, so a team can see
that its own bill and the chargeback disagree, and why (usually another prices file:
put the service's overrides on the collector too). Then the trust notes of the period
(late arrivals, invalid rows, rejected claims, quarantined spans).
"""

from __future__ import annotations

from typing import Any

from spanledger.reports import trust
from spanledger.reports.chargeback import label
from spanledger.reports.period import Period
from spanledger.reports.queries import (
    NO_TABLES,
    Col,
    day_filter,
    missing_rollups,
    money,
    read_rows,
    sql_str,
)
from spanledger.reports.tabular import Column, Report
from spanledger.store.base import Store

_COLS = (Col("service", "toString(ServiceName)", str), Col("model", "toString(Model)", str),
         Col("reported_by", "toString(CostReportedBy)", str),
         Col("reported", "count()"), Col("disagreeing", "countIf(CostDisagrees = 1)"),
         Col("cost", "toString(sum(Cost))", money),
         Col("reported_cost", "toString(sum(CostReported))", money))


def build_disagreements_report(store: Store, period: Period, env: str | None = None) -> Report:
    columns = [Column("service", "service"), Column("model", "model"),
               Column("reported_by", "reported by"),
               Column("reported", "calls with a reported cost", "int", total=True),
               Column("disagreeing", "disagreeing", "int", total=True),
               Column("cost", "collector's cost", "money", total=True),
               Column("reported_cost", "reported cost", "money", total=True),
               Column("difference", "reported - collector's", "money", total=True,
                      parts=((1, "reported_cost"), (-1, "cost")))]
    meta = {"period": period.to_dict(), "environment": env}
    title = f"Reported costs vs the collector's {period.label}"
    if missing_rollups(store):
        return Report("disagreements", title, columns, [], None, [NO_TABLES], meta)
    env_sql = f" AND Environment = {sql_str(env)}" if env else ""
    rest = (f"FROM llm_calls WHERE {day_filter(period)}{env_sql} AND CostReportedBy != '' "
            "AND Status IN ('priced', 'unpriced') "
            "GROUP BY ServiceName, Model, CostReportedBy")
    rows: list[dict[str, Any]] = []
    for r in read_rows(store, _COLS, rest):
        r["service"], r["model"] = label(r["service"]), label(r["model"])
        r["difference"] = r["reported_cost"] - r["cost"]
        rows.append(r)
    rows.sort(key=lambda r: (-r["disagreeing"], -abs(r["difference"]), r["service"], r["model"]))
    total: dict[str, Any] = {"service": "TOTAL"}
    for col in columns:
        if col.total:
            total[col.key] = sum(r[col.key] for r in rows)
    notes = ["the collector's cost is what every report sums; reported costs are shown, never "
             "summed (a service may price with another prices file: give the collector the "
             "same one)"]
    notes += trust.notes(trust.fetch_trust(store, period, env))
    return Report("disagreements", title, columns, rows, total, notes, meta)
