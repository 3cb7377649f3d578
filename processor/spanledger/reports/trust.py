"""What the reports say about trust: late arrivals, invalid rows, disagreements, claims.

The numbers a report sums are the collector's; these are the spans around them that a
finance lead should know about, each counted and never summed:

- late arrivals: calls dated in a closed period, booked in this one (by the month
  they were dated in);
- invalid rows (``llm_calls.Status = 'invalid'``): values past the schema's hard
  bounds, or dates it cannot file, from a writer that does not enforce the
  collector's; counted nowhere;
- disagreements: counted calls whose reported cost (a service's own figure, another
  tool's) differs from the collector's beyond its tolerance;
- rejected claims: statuses a client wrote that the collector did not take;
- quarantined spans: set aside by the collector (out of bounds, unstorable).

:func:`fetch_trust` reads them for a period (``llm_calls`` by its booked Day, the
quarantine by the time it was set aside); :func:`notes` words them for a report.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from spanledger.reports.period import Period
from spanledger.reports.queries import day_filter, money, sql_str
from spanledger.store.base import Store


@dataclass
class TrustSummary:
    #: month dated in -> (calls, priced cost) of the late arrivals booked in the period
    late: dict[str, tuple[int, Decimal]] = field(default_factory=dict)
    #: reason -> invalid rows booked in the period
    invalid: dict[str, int] = field(default_factory=dict)
    disagreements: int = 0
    #: claim -> spans whose claim was rejected
    rejected: dict[str, int] = field(default_factory=dict)
    #: reason -> spans quarantined in the period
    quarantined: dict[str, int] = field(default_factory=dict)


def fetch_trust(store: Store, period: Period, env: str | None = None) -> TrustSummary:
    """The trust figures of ``period`` (``env``: one deployment environment)."""
    summary = TrustSummary()
    where = f"WHERE {day_filter(period)}" + (f" AND Environment = {sql_str(env)}" if env else "")
    for month, calls, cost in store.query(
            "SELECT toString(toStartOfMonth(Timestamp)), count(), toString(sum(Cost)) "
            f"FROM llm_calls {where} AND Late = 1 "
            "AND Status NOT IN ('aggregate', 'duplicate') GROUP BY 1 ORDER BY 1"):
        summary.late[str(month)[:7]] = (int(calls), money(cost))
    for kind, value, n in store.query(
            "SELECT 'invalid', toString(InvalidReason), count() FROM llm_calls "
            f"{where} AND Status = 'invalid' GROUP BY InvalidReason "
            "UNION ALL SELECT 'claim', toString(ClaimRejected), count() FROM llm_calls "
            f"{where} AND ClaimRejected != '' GROUP BY ClaimRejected "
            "UNION ALL SELECT 'disagrees', '', count() FROM llm_calls "
            f"{where} AND CostDisagrees = 1 AND Status IN ('priced', 'unpriced')"):
        if kind == "invalid":
            summary.invalid[str(value)] = int(n)
        elif kind == "claim":
            summary.rejected[str(value)] = int(n)
        else:
            summary.disagreements = int(n)
    start = dt.datetime.combine(period.start, dt.time())
    end = dt.datetime.combine(period.end_exclusive, dt.time())
    if _has_quarantine(store):
        for reason, n in store.query(
                "SELECT toString(Reason), count() FROM spanledger_quarantine "
                f"WHERE Time >= toDateTime64({sql_str(start.isoformat(' '))}, 3, 'UTC') "
                f"AND Time < toDateTime64({sql_str(end.isoformat(' '))}, 3, 'UTC') "
                "GROUP BY Reason ORDER BY Reason"):
            summary.quarantined[str(reason)] = int(n)
    return summary


def _has_quarantine(store: Store) -> bool:
    return bool(store.query("SELECT count() FROM system.tables WHERE database = "
                            "currentDatabase() AND name = 'spanledger_quarantine'")[0][0])


def _counts(by: dict[str, int]) -> str:
    return ", ".join(f"{k or 'other'}: {v}" for k, v in sorted(by.items()))


def notes(summary: TrustSummary) -> list[str]:
    """One sentence per kind the period has (none when all is clean)."""
    out = []
    if summary.late:
        parts = ", ".join(f"{month}: {calls} calls, {cost:.2f} USD"
                          for month, (calls, cost) in summary.late.items())
        out.append(f"late arrivals by the month they were dated in ({parts}): closed "
                   "periods never change, these are booked here")
    if summary.disagreements:
        out.append(f"{summary.disagreements} calls came with a cost of their own (a service's or "
                   "another tool's) that differs from the collector's: kept as "
                   "spanledger.cost.reported, never summed (`spanledger report disagreements`)")
    if summary.rejected:
        out.append(f"{sum(summary.rejected.values())} spans claimed a status the collector did "
                   f"not take ({_counts(summary.rejected)}): counted as the calls they are")
    if summary.invalid:
        out.append(f"{sum(summary.invalid.values())} invalid spans are counted nowhere "
                   f"({_counts(summary.invalid)}): values past the schema's bounds or dates it "
                   "cannot file, written around the collector (llm_calls Status 'invalid')")
    if summary.quarantined:
        out.append(f"{sum(summary.quarantined.values())} spans were quarantined "
                   f"({_counts(summary.quarantined)}): `spanledger quarantine list`")
    return out
