"""``report unit-economics``: cost per outcome, per customer and per active user, and margin.

Two views of the same runs (a run = one trace with LLM calls; outcomes are
joined to it by trace id, so a webhook's outcome counts for the run it names):

- ``--by feature``: per team x feature x outcome name, the cost of all the
  feature's runs that started in the period divided by the outcomes counted
  for them: "$2.50 per resolved ticket". Runs without any outcome are waste:
  their cost is in the cost per outcome (it is what producing the outcomes
  cost) and shown on its own. A feature that records no outcome at all has no
  waste figure (nothing says what success is).
- ``--by customer``: per customer, AI cost (``llm_cost_daily``, as ``report
  spend --by customer``), runs, active users (distinct ``user`` with a call)
  and cost per active user; with a revenue file, AI cost as % of revenue,
  gross margin after AI cost, and a flag at or above the threshold.

Built once as a :class:`~spanledger.reports.tabular.Report` (exact values) and
rendered by the formats and the HTML report alike.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from spanledger.errors import UsageError
from spanledger.reports.chargeback import UNATTRIBUTED, label
from spanledger.reports.period import Period
from spanledger.reports.queries import (
    ALL,
    NO_OUTCOME_TABLES,
    NO_TABLES,
    OUTCOME_TABLES,
    ROLLUPS,
    OutcomeRow,
    RunGroupRow,
    Scope,
    SpendRow,
    fetch_active_users,
    fetch_outcomes,
    fetch_run_groups,
    fetch_spend,
    missing_tables,
)
from spanledger.reports.revenue import DEFAULT_THRESHOLD_PERCENT, Revenue
from spanledger.reports.tabular import Column, Report
from spanledger.store.base import Store

ZERO = Decimal(0)
HUNDRED = Decimal(100)
VIEWS = ("feature", "customer")
NONE_RECORDED = "(none recorded)"


@dataclass(frozen=True, slots=True)
class FeatureUnits:
    """What the feature view is built from."""

    period: Period
    runs: list[RunGroupRow]
    outcomes: list[OutcomeRow]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CustomerUnits:
    """What the customer view is built from."""

    period: Period
    spend: list[SpendRow]
    #: runs per customer x feature (a feature that records no outcome is not judged)
    runs: list[RunGroupRow]
    outcomes: list[OutcomeRow]
    users: dict[tuple[str, ...], int]
    total_users: int
    notes: list[str] = field(default_factory=list)


def _readable(store: Store) -> tuple[bool, bool, list[str]]:
    """(rollups there, outcome tables there, notes) for a store of any age."""
    missing = missing_tables(store, (*ROLLUPS, *OUTCOME_TABLES))
    if any(t in missing for t in ROLLUPS):
        return False, False, [NO_TABLES]
    if missing:
        return True, False, [NO_OUTCOME_TABLES]
    return True, True, []


def fetch_feature_units(store: Store, period: Period, scope: Scope = ALL) -> FeatureUnits:
    _, outcomes, notes = _readable(store)
    dims = ("team", "feature")
    return FeatureUnits(
        period,
        fetch_run_groups(store, period, dims, scope) if outcomes else [],
        fetch_outcomes(store, period, dims, scope) if outcomes else [],
        notes)


def fetch_customer_units(store: Store, period: Period,
                         scope: Scope = ALL) -> CustomerUnits:
    rollups, outcomes, notes = _readable(store)
    dims = ("customer",)
    if not rollups:
        return CustomerUnits(period, [], [], [], {}, 0, notes)
    users, total = fetch_active_users(store, period, dims, scope)
    return CustomerUnits(
        period,
        fetch_spend(store, period, dims, scope.env, team=scope.team, feature=scope.feature),
        fetch_run_groups(store, period, ("customer", "feature"), scope) if outcomes else [],
        fetch_outcomes(store, period, dims, scope) if outcomes else [],
        users, total, notes)


# -- cost per outcome, by feature -----------------------------------------------------------

FEATURE_COLUMNS = [
    Column("team", "team", "text"),
    Column("feature", "feature", "text"),
    Column("outcome", "outcome", "text"),
    Column("runs", "runs", "int"),
    Column("runs_with", "runs with it", "int"),
    Column("runs_without", "runs w/o outcome", "int"),
    Column("outcomes", "outcomes", "number"),
    Column("cost", "cost of runs", "money"),
    Column("waste", "waste (no outcome)", "money"),
    Column("waste_share", "waste share", "percent"),
    Column("cost_per_outcome", "cost per outcome", "money"),
]


def feature_report(units: FeatureUnits) -> Report:
    """Cost per outcome per team x feature x outcome name, with the waste of each feature."""
    runs = {r.group: r for r in units.runs}
    outcomes: dict[tuple[str, ...], list[OutcomeRow]] = defaultdict(list)
    for o in units.outcomes:
        outcomes[o.group].append(o)
    rows: list[dict[str, Any]] = []
    for key in sorted(set(runs) | set(outcomes)):
        run = runs.get(key) or RunGroupRow(key, 0, 0, 0, ZERO, ZERO)
        base = {"team": label(key[0]), "feature": label(key[1]), "runs": run.runs,
                "cost": run.cost}
        if not outcomes[key]:
            rows.append({**base, "outcome": NONE_RECORDED, "runs_with": 0, "runs_without": None,
                         "outcomes": None, "waste": None, "waste_share": None,
                         "cost_per_outcome": None})
            continue
        for o in sorted(outcomes[key], key=lambda o: o.name):
            rows.append({**base, "outcome": o.name, "runs_with": o.runs,
                         "runs_without": run.runs - run.runs_with_outcome,
                         "outcomes": o.value, "waste": run.waste,
                         "waste_share": _percent(run.waste, run.cost),
                         "cost_per_outcome": run.cost / o.value if o.value > 0 else None})
    rows.sort(key=lambda r: (-r["cost"], r["team"], r["feature"], r["outcome"]))
    period = units.period
    notes = list(units.notes)
    notes.append(f"cost per outcome = cost of the feature's runs that started in {period.label} "
                 "/ the outcomes counted for them (their values summed); a run is one trace, "
                 "and an outcome recorded later with trace_id= counts for the run it names")
    judged = [r for r in units.runs if outcomes.get(r.group)]
    if judged:
        n = sum(r.runs for r in judged)
        idle = n - sum(r.runs_with_outcome for r in judged)
        cost = sum((r.cost for r in judged), ZERO)
        waste = sum((r.waste for r in judged), ZERO)
        share = _percent(waste, cost)
        notes.append(f"waste: {idle:,} of {n:,} runs of features that record outcomes produced "
                     f"none; they cost ${waste:,.2f} of ${cost:,.2f}"
                     + (f" ({share:.1f}%)" if share is not None else ""))
    unlinked = sum(o.unlinked for o in units.outcomes)
    if unlinked:
        notes.append(f"{unlinked:,} outcomes name no run with LLM calls (no trace_id= and no call "
                     "in their trace): counted by their own attribution and day")
    if any(not outcomes.get(k) for k in runs):
        notes.append(f"{NONE_RECORDED}: the feature recorded no outcome in the period, so its "
                     "runs cannot be judged; record one with spanledger.outcome(name)")
    meta = {"period": period.to_dict(), "by": "feature"}
    return Report("unit-economics", f"Cost per outcome by feature, {period.label}",
                  FEATURE_COLUMNS, rows, None, notes, meta)


# -- unit economics per customer --------------------------------------------------------------

def customer_report(units: CustomerUnits, revenue: Revenue | None = None,
                    threshold: Decimal | None = None) -> Report:
    """AI cost, runs, active users and (with ``revenue``) % of revenue and margin per customer."""
    period = units.period
    cost: dict[str, Decimal] = defaultdict(lambda: ZERO)
    calls: dict[str, int] = defaultdict(int)
    unpriced: dict[str, int] = defaultdict(int)
    for s in units.spend:
        cost[s.group[0]] += s.cost
        calls[s.group[0]] += s.calls
        if s.status != "priced":
            unpriced[s.group[0]] += s.calls
    runs, judged = _customer_runs(units.runs)
    outcomes: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for o in units.outcomes:
        outcomes[o.group[0]] += o.value
    customers = set(cost) | set(runs) | set(outcomes) | {k[0] for k in units.users}
    if revenue is not None:
        customers |= revenue.customers
    limit = _threshold(revenue, threshold)
    rows: list[dict[str, Any]] = []
    for c in customers:
        users = units.users.get((c,), 0)
        run = judged.get(c)
        row: dict[str, Any] = {
            "customer": label(c), "runs": runs.get(c, 0),
            "success": _percent(Decimal(run.runs_with_outcome), Decimal(run.runs))
            if run else None,
            "waste": run.waste if run else None,
            "calls": calls[c], "users": users, "outcomes": outcomes[c],
            "cost": cost[c], "cost_per_user": cost[c] / users if users else None,
        }
        if revenue is not None:
            row.update(_margin(cost[c], revenue.for_period(c, period), limit))
        rows.append(row)
    rows.sort(key=lambda r: (-r["cost"], r["customer"]))
    columns = [
        Column("customer", "customer", "text"),
        Column("runs", "runs", "int", total=True),
        Column("success", "runs with an outcome", "percent"),
        Column("outcomes", "outcomes", "number", total=True),
        Column("calls", "calls", "int", total=True),
        Column("users", "active users", "int"),
        Column("cost", "AI cost", "money", total=True),
        Column("waste", "waste (runs w/o outcome)", "money", total=True),
        Column("cost_per_user", "cost per active user", "money"),
    ]
    total_cost = sum(cost.values(), ZERO)
    all_runs = sum(r["runs"] for r in rows)
    judged_runs = sum(r.runs for r in judged.values())
    total: dict[str, Any] = {
        "customer": "TOTAL", "runs": all_runs,
        "success": _percent(Decimal(sum(r.runs_with_outcome for r in judged.values())),
                            Decimal(judged_runs)),
        "outcomes": sum((r["outcomes"] for r in rows), ZERO),
        "calls": sum(r["calls"] for r in rows), "users": units.total_users,
        "cost": total_cost,
        "waste": sum((r["waste"] for r in rows if r["waste"] is not None), ZERO),
        "cost_per_user": total_cost / units.total_users if units.total_users else None,
    }
    notes = list(units.notes)
    notes.append("AI cost as `report spend --by customer` (priced calls, by the day of each "
                 "call); runs (traces) started in the period; runs with an outcome and waste "
                 "(the cost of runs without one) count the runs of features that record "
                 "outcomes only; outcomes: the values of every outcome name "
                 "summed (`--by feature` splits them); active users: distinct users with a call "
                 "(the TOTAL counts each user once)")
    if sum(unpriced.values()):
        notes.append(f"{sum(unpriced.values()):,} unpriced calls have no price and are in no "
                     "cost: see `spanledger prices unpriced`")
    meta: dict[str, Any] = {"period": period.to_dict(), "by": "customer"}
    if revenue is not None:
        columns += [
            Column("revenue", "revenue", "money", total=True),
            Column("cost_share", "AI cost % of revenue", "percent"),
            Column("margin", "margin after AI", "money", total=True),
            Column("margin_share", "margin %", "percent"),
            Column("flag", "flag", "text"),
        ]
        with_revenue = [r for r in rows if r.get("revenue") is not None]
        paid = sum((r["revenue"] for r in with_revenue), ZERO)
        billed_cost = sum((r["cost"] for r in with_revenue), ZERO)
        margin = sum((r["margin"] for r in with_revenue), ZERO)
        flagged = [r["customer"] for r in rows if r.get("flag")]
        total.update(revenue=paid, cost_share=_percent(billed_cost, paid), margin=margin,
                     margin_share=_percent(margin, paid),
                     flag=f"{len(flagged)} flagged" if flagged else "")
        notes.append(f"revenue from {revenue.file}, monthly amounts prorated onto "
                     f"{period.label} by days; margin = revenue - AI cost; flagged: AI cost "
                     f">= {limit:f}% of revenue, or AI cost without revenue")
        missing = sorted(r["customer"] for r in rows
                         if r.get("revenue") is None and r["cost"] > 0)
        if missing:
            unbilled = sum((r["cost"] for r in rows if r.get("revenue") is None), ZERO)
            notes.append(f"AI cost ${unbilled:,.2f} of customers not in the revenue file (not in "
                         f"the margin total): {', '.join(missing)}")
        meta.update(revenue_file=revenue.file, threshold_percent=f"{limit:f}",
                    flagged=flagged)
    title = f"Unit economics per customer, {period.label}"
    return Report("unit-economics", title, columns, rows, total, notes, meta)


def _customer_runs(rows: list[RunGroupRow]) -> tuple[dict[str, int], dict[str, RunGroupRow]]:
    """Runs per customer, and per customer the runs of features that record outcomes
    (summed): only those can be judged a success or waste."""
    recording = {r.group[1] for r in rows if r.runs_with_outcome}
    runs: dict[str, int] = defaultdict(int)
    judged: dict[str, RunGroupRow] = {}
    for r in rows:
        customer = r.group[0]
        runs[customer] += r.runs
        if r.group[1] not in recording:
            continue
        j = judged.get(customer) or RunGroupRow((customer,), 0, 0, 0, ZERO, ZERO)
        judged[customer] = RunGroupRow((customer,), j.runs + r.runs,
                                       j.runs_with_outcome + r.runs_with_outcome,
                                       j.calls + r.calls, j.cost + r.cost, j.waste + r.waste)
    return runs, judged


def _threshold(revenue: Revenue | None, threshold: Decimal | None) -> Decimal:
    if threshold is not None:
        return threshold
    if revenue is not None and revenue.threshold_percent is not None:
        return revenue.threshold_percent
    return DEFAULT_THRESHOLD_PERCENT


def _margin(cost: Decimal, revenue: Decimal | None, limit: Decimal) -> dict[str, Any]:
    """The revenue columns of one customer; flagged at >= ``limit`` % (never ``>``)."""
    if revenue is None:
        return {"revenue": None, "cost_share": None, "margin": None, "margin_share": None,
                "flag": ""}
    share = _percent(cost, revenue)
    margin = revenue - cost
    if share is None:
        flag = "AI cost, no revenue" if cost > 0 else ""
    else:
        flag = f">= {limit:f}% of revenue" if share >= limit else ""
    return {"revenue": revenue, "cost_share": share, "margin": margin,
            "margin_share": _percent(margin, revenue), "flag": flag}


def _percent(part: Decimal, whole: Decimal) -> Decimal | None:
    return part / whole * HUNDRED if whole > 0 else None


def build_unit_economics(store: Store, period: Period, by: str = "feature",
                         scope: Scope = ALL, revenue: Revenue | None = None,
                         threshold: Decimal | None = None) -> Report:
    """The ``by`` view ("feature" or "customer") of the period, read from ``store``."""
    if by not in VIEWS:
        raise UsageError(f"--by: expected one of {', '.join(VIEWS)}, got {by!r}")
    if by == "feature":
        if revenue is not None:
            raise UsageError("--revenue applies to --by customer")
        return feature_report(fetch_feature_units(store, period, scope))
    return customer_report(fetch_customer_units(store, period, scope), revenue, threshold)


__all__ = ["NONE_RECORDED", "UNATTRIBUTED", "VIEWS", "CustomerUnits", "FeatureUnits",
           "build_unit_economics", "customer_report", "feature_report", "fetch_customer_units",
           "fetch_feature_units"]
