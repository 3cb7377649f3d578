"""The steps of ``report spend``, each on plain rows: no store, no flags, no clock.

:func:`spanledger.reports.spend.spend_report` runs them in this order on one
:class:`SpendTable` (one row per report group):

1. :func:`base_table`: each group's calls, tokens, unpriced counts and actual cost;
2. :func:`add_snapshot`: the cost at ``--snapshot-prices`` beside the actual;
3. the chargeback model, one of :func:`add_showback`, :func:`add_proportional`,
   :func:`add_proportional_lines`, :func:`add_cost_plus`, :func:`add_fixed`,
   :func:`add_hybrid`: each group's charge before shared costs;
4. :func:`add_gpu`: GPU pool costs of self-hosted models, by each group's use;
5. :func:`add_shared_costs`: shared platform costs prorated by the charge so far;
6. :func:`add_charge`: the charge column, model charge plus GPU and shared costs;
7. :func:`add_budgets`: budget, % used, threshold and month-end projection;
8. :func:`finish`: the unpriced note, the TOTAL row and the order of the rows.

Before the table: :func:`by_environment` (hybrid), :func:`without_gpu_models` and
:func:`with_groups` (rows that must exist although nothing was spent: a budget, a
fixed price, an invoice line nobody metered, an idle GPU pool).

Each step appends its columns, fills its cells in every row and adds its notes
and machine-readable parameters, so what one rule does to the numbers is
checked on a handful of groups (``tests/test_reports_spend_steps.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from spanledger.reports import chargeback as cb
from spanledger.reports.budgets import Budgets
from spanledger.reports.fixed_prices import FixedPrices
from spanledger.reports.gpu_costs import GpuCosts, GpuShare
from spanledger.reports.hybrid import HybridPlan
from spanledger.reports.model_keys import model_key, provider_key
from spanledger.reports.period import Period
from spanledger.reports.queries import SpendRow
from spanledger.reports.tabular import Column, Report

ZERO = Decimal(0)


@dataclass(slots=True)
class SpendTable:
    """The spend report while it is built; ``rows[i]`` is ``groups[i]`` until :func:`finish`."""

    dims: tuple[str, ...]
    groups: list[cb.GroupSpend]
    columns: list[Column]
    rows: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: fixed TOTAL values of columns that are not sums (a share column's 100 %)
    total: dict[str, Any] = field(default_factory=dict)
    #: each group's charge under the chargeback model, before shared costs
    charges: list[Decimal] = field(default_factory=list)
    #: the columns the charge is displayed as the sum of (see Column.parts)
    charge_parts: list[tuple[int, str]] = field(default_factory=lambda: [(1, "cost")])
    #: each group's part of the shared platform costs
    shared: list[Decimal] = field(default_factory=list)


def with_groups(groups: Sequence[cb.GroupSpend], keys: Iterable[tuple[str, ...]],
                snapshot: bool = False) -> list[cb.GroupSpend]:
    """The groups plus an empty one for every key that saw no spend (0 spend is news too)."""
    have = {g.group for g in groups}
    missing = [cb.GroupSpend(key, snapshot_cost=ZERO if snapshot else None)
               for key in dict.fromkeys(keys) if key not in have]
    return [*groups, *missing]


def with_budget_groups(groups: Sequence[cb.GroupSpend], budgets: Budgets,
                       snapshot: bool) -> list[cb.GroupSpend]:
    """The groups plus an empty one for every budget that saw no spend."""
    return with_groups(groups, budgets.entries, snapshot)


def by_environment(rows: Sequence[SpendRow], dims: tuple[str, ...]
                   ) -> tuple[list[SpendRow], dict[tuple[str, ...], dict[str, Decimal]]]:
    """Hybrid: each group's priced cost per environment, and the rows keyed by ``dims`` only.

    Rows carry the environment as their last group value unless ``dims`` has it.
    """
    inside = "environment" in dims
    at = dims.index("environment") if inside else len(dims)
    keyed: list[SpendRow] = []
    envs: dict[tuple[str, ...], dict[str, Decimal]] = {}
    for r in rows:
        group = r.group if inside else r.group[:-1]
        env = r.group[at]
        if r.status == "priced":
            per = envs.setdefault(group, {})
            per[env] = per.get(env, ZERO) + r.cost
        keyed.append(r if inside else replace(r, group=group))
    return keyed, envs


def without_gpu_models(rows: Sequence[SpendRow], gpu: GpuCosts) -> list[SpendRow]:
    """Calls of models a GPU pool serves are charged by the pool: no per-token cost, not unpriced.

    Their tokens and calls stay in the rows; a per-token price the prices file may
    give them (amortised GPU hours) is dropped so the GPU bill is not counted twice.
    """
    return [replace(r, status="priced", cost=ZERO) if gpu.serves(r.model) else r for r in rows]


def _line(r: SpendRow) -> tuple[str, str]:
    return (provider_key(r.provider), model_key(r.provider, r.model))


def unused_lines(rows: Sequence[SpendRow], invoice: cb.InvoiceLines) -> list[tuple[str, str]]:
    """Invoice lines (provider/model) no metered call used."""
    used = {_line(r) for r in rows if r.input_tokens + r.output_tokens}
    return [k for k in sorted(invoice.lines) if k not in used]


def base_table(groups: Sequence[cb.GroupSpend], dims: tuple[str, ...],
               meta: Mapping[str, Any] | None = None) -> SpendTable:
    """One row per group: its labels, counts and actual cost (every model shows these)."""
    columns = [Column(d, d, "text") for d in dims] + [
        Column("calls", "LLM calls", "int", total=True),
        Column("tool_calls", "tool calls", "int", total=True),
        Column("vector_calls", "vector-DB calls", "int", total=True),
        Column("tokens", "tokens", "int", total=True),
        Column("unpriced_calls", "unpriced calls", "int", total=True),
        Column("unpriced_tokens", "unpriced tokens", "int", total=True),
        Column("cost", "actual cost", "money", total=True, na_when="unpriced_group"),
    ]
    rows: list[dict[str, Any]] = [
        {**{d: cb.label(v) for d, v in zip(dims, g.group, strict=True)},
         "calls": g.model_calls, "tool_calls": g.tool_calls, "vector_calls": g.vector_calls,
         "tokens": g.tokens, "unpriced_calls": g.unpriced_calls,
         "unpriced_tokens": g.unpriced_tokens, "cost": g.cost,
         "unpriced_group": g.wholly_unpriced}
        for g in groups
    ]
    return SpendTable(dims, list(groups), columns, rows, dict(meta or {}),
                      shared=[ZERO] * len(groups))


def add_late_arrivals(t: SpendTable) -> None:
    """The adjustment for closed periods: the part of each group's cost that was dated in a
    closed month and booked in this period (only when there is any)."""
    late_calls = sum(g.late_calls for g in t.groups)
    if not late_calls:
        return
    at = next(i for i, c in enumerate(t.columns) if c.key == "cost") + 1
    t.columns.insert(at, Column("late_cost", "of which late", "money", total=True))
    for row, g in zip(t.rows, t.groups, strict=True):
        row["late_cost"] = g.late_cost
    late_cost = sum((g.late_cost for g in t.groups), ZERO)
    t.notes.append(f"adjustment: {late_calls} late calls ({late_cost:.2f} USD, column "
                   "'of which late') were dated in a closed period and are booked in this one; "
                   "the closed period's own report is unchanged")
    t.meta["late_calls"] = late_calls
    t.meta["late_cost"] = str(late_cost)


def add_snapshot(t: SpendTable, at: dt.date) -> None:
    """Cost at the prices of ``at`` beside the actual; the charge is based on it from here on."""
    t.columns += [Column("snapshot_cost", f"cost at {at} prices", "money", total=True),
                  Column("snapshot_diff", "snapshot - actual", "money", total=True,
                         parts=((1, "snapshot_cost"), (-1, "cost")))]
    for row, g in zip(t.rows, t.groups, strict=True):
        snap = g.snapshot_cost if g.snapshot_cost is not None else ZERO
        row["snapshot_cost"], row["snapshot_diff"] = snap, snap - g.cost
    fallback = sum(g.snapshot_fallback_calls for g in t.groups)
    snap_total = sum((g.basis for g in t.groups), ZERO)
    act_total = sum((g.cost for g in t.groups), ZERO)
    t.notes.append(f"charged at the prices of {at}: {snap_total:.2f} USD vs actual "
                   f"{act_total:.2f} USD (difference {snap_total - act_total:+.2f} USD)")
    if fallback:
        t.notes.append(f"{fallback} priced calls had no price on {at}: "
                       "kept at their actual cost")
    t.meta["snapshot_prices"] = at.isoformat()
    t.charge_parts = [(1, "snapshot_cost")]


def add_showback(t: SpendTable) -> None:
    """Showback (and budget): the charge is the cost itself."""
    t.charges = cb.showback(t.groups)


def add_proportional(t: SpendTable, invoice_total: Decimal) -> None:
    """The real invoice split by token volume, to the cent; the charge is the share."""
    t.columns.append(Column("token_share", "token share", "percent"))
    split = cb.proportional(t.groups, invoice_total)
    tokens_total = sum(g.tokens for g in t.groups)
    for row, g in zip(t.rows, t.groups, strict=True):
        row["token_share"] = (Decimal(g.tokens) * 100 / tokens_total) if tokens_total else None
    t.columns.append(Column("invoice_share", "invoice share", "money", total=True))
    t.charge_parts = [(1, "invoice_share")]
    if split is None:
        t.charges = [ZERO] * len(t.groups)
        t.notes.append(f"invoice total {invoice_total} USD not allocated: "
                       "no token volume in the period")
    else:
        t.charges = split
        t.total["token_share"] = Decimal(100)
    for row, c in zip(t.rows, t.charges, strict=True):
        row["invoice_share"] = c
    tracked = sum((g.cost for g in t.groups), ZERO)
    t.notes.append(f"invoice {invoice_total} USD split by token volume (input incl. cached "
                   f"+ output tokens, priced or not); tracked actual cost {tracked:.2f} USD, "
                   f"gap {invoice_total - tracked:+.2f} USD (untagged or uninstrumented "
                   "calls, discounts, unpriced models)")
    t.meta["invoice_total"] = str(invoice_total)


def add_proportional_lines(t: SpendTable, rows: Sequence[SpendRow],
                           invoice: cb.InvoiceLines) -> None:
    """The invoice split line by line: each provider/model line by the token volume of the
    groups that used that model, to the cent; lines nobody metered are the NOT_METERED row."""
    index = {g.group: i for i, g in enumerate(t.groups)}
    volumes: dict[tuple[str, str], list[int]] = {}
    for r in rows:
        key = _line(r)
        if key in invoice.lines and r.group in index:
            volume = volumes.setdefault(key, [0] * len(t.groups))
            volume[index[r.group]] += r.input_tokens + r.output_tokens
    placeholder = index.get((cb.NOT_METERED,) * len(t.dims))
    charges, splits = cb.proportional_by_line(volumes, invoice, len(t.groups), placeholder)
    t.columns.append(Column("invoice_share", "invoice share", "money", total=True))
    t.charge_parts = [(1, "invoice_share")]
    t.charges = charges
    for row, c in zip(t.rows, charges, strict=True):
        row["invoice_share"] = c
    total = sum(charges, ZERO)
    unused = [s for s in splits if s.unallocated]
    t.notes.append(f"invoice {total} USD ({', '.join(invoice.files)}) split per provider/model "
                   f"line: {len(splits)} lines, each by the token volume of the groups that used "
                   "that model (input incl. cached + output tokens, priced or not)")
    if unused:
        t.notes.append(f"{sum((s.amount for s in unused), ZERO)} USD on lines no metered call "
                       f"used ({', '.join('/'.join(s.key) for s in unused)}): row "
                       f"{cb.NOT_METERED} (services without spanledger?)")
    t.meta["invoice_total"] = str(total)
    t.meta["invoice_lines"] = [{"provider": s.key[0], "model": s.key[1], "amount": str(s.amount),
                                "allocated": not s.unallocated} for s in splits]


def add_fixed(t: SpendTable, fixed: FixedPrices, period: Period) -> None:
    """Charge = the fixed price of the period; the difference to cost is the platform margin."""
    prices = {k: period.prorate_monthly(v) for k, v in fixed.monthly.items()}
    t.charges = cb.fixed(t.groups, prices, fixed.unlisted == "actual")
    t.columns += [Column("fixed_price", "fixed price", "money", total=True),
                  Column("margin", "platform margin", "money", total=True)]
    t.charge_parts.append((1, "margin"))
    for row, g, c in zip(t.rows, t.groups, t.charges, strict=True):
        row["fixed_price"] = prices.get(g.group)
        row["margin"] = c - g.basis
    margin = sum((c - g.basis for g, c in zip(t.groups, t.charges, strict=True)), ZERO)
    unlisted = [g for g in t.groups if g.group not in prices and g.calls]
    t.notes.append(f"fixed monthly prices from {fixed.file}, prorated to the period; platform "
                   f"margin {margin:+.2f} USD (fixed prices - actual cost)")
    if unlisted:
        how = "their actual cost" if fixed.unlisted == "actual" else "nothing"
        t.notes.append(f"{len(unlisted)} groups without a fixed price are charged {how}")
    t.meta["fixed_prices_file"] = fixed.file


def add_hybrid(t: SpendTable, environments: Mapping[tuple[str, ...], Mapping[str, Decimal]],
               plan: HybridPlan) -> None:
    """Per environment: showback (shown, not charged), chargeback, or cost-plus."""
    def rule(env: str) -> tuple[str, Decimal]:
        r = plan.rule(env)
        return r.model, r.markup

    parts = [cb.hybrid(environments.get(g.group, {}), rule) for g in t.groups]
    t.columns += [Column("shown", "shown only", "money", total=True),
                  Column("charged_cost", "charged cost", "money", total=True),
                  Column("markup", "markup", "money", total=True)]
    t.charge_parts = [(1, "charged_cost"), (1, "markup")]
    t.charges = [p.charge for p in parts]
    for row, p in zip(t.rows, parts, strict=True):
        row.update(shown=p.shown, charged_cost=p.charged, markup=p.markup)
    rules = ", ".join(f"{env}: {r.label}" for env, r in plan.environments.items())
    t.notes.append(f"hybrid ({plan.file}): {rules}; any other environment: {plan.default.label}"
                   "; showback spend is shown, not charged")
    t.meta["hybrid_file"] = plan.file


def add_gpu(t: SpendTable, shares: Sequence[GpuShare], gpu: GpuCosts) -> None:
    """Each group's part of the GPU pools, added to its charge (before shared costs)."""
    index = {g.group: i for i, g in enumerate(t.groups)}
    per_group = [ZERO] * len(t.groups)
    for s in shares:
        per_group[index[s.group]] += s.cost
    t.columns.append(Column("gpu_cost", "gpu cost", "money", total=True))
    t.charge_parts.append((1, "gpu_cost"))
    t.charges = [c + g for c, g in zip(t.charges, per_group, strict=True)]
    for row, g in zip(t.rows, per_group, strict=True):
        row["gpu_cost"] = g
    for pool in gpu.pools:
        total = sum((s.cost for s in shares if s.pool is pool), ZERO)
        t.notes.append(f"GPU pool {pool.name} ({pool.gpus} x {pool.gpu}) {total:.2f} USD, "
                       f"shared by {pool.allocate_by.replace('_', '-')} of "
                       f"{', '.join(pool.models)}: their calls carry no per-token cost here")
    t.meta["gpu_costs_file"] = gpu.file


def add_cost_plus(t: SpendTable, markup: Decimal) -> None:
    """Cost x (1 + markup): the markup is its own column, so the charge adds up across."""
    t.charges = cb.cost_plus(t.groups, markup)
    t.columns.append(Column("markup", f"markup {markup * 100:f}%", "money", total=True))
    t.charge_parts.append((1, "markup"))
    for row, g, c in zip(t.rows, t.groups, t.charges, strict=True):
        row["markup"] = c - g.basis
    t.meta["markup"] = str(markup)


def add_shared_costs(t: SpendTable, items: Mapping[str, Decimal]) -> None:
    """Shared platform costs of the period prorated by each group's charge, never evenly."""
    n = len(t.groups)
    shared_total = sum(items.values(), ZERO)
    t.meta["shared_costs"] = {k: str(v) for k, v in items.items()}
    t.columns += [Column("shared_share", "share of shared", "percent"),
                  Column("shared_cost", "shared costs", "money", total=True)]
    parts = cb.prorate_shared(t.charges, shared_total) if shared_total else [ZERO] * n
    if parts is None:
        t.notes.append(f"shared costs {shared_total:.2f} USD not allocated: no charge in the "
                       "period to prorate them by")
        parts = [ZERO] * n
    elif shared_total:
        t.total["shared_share"] = Decimal(100)
        t.notes.append(f"shared platform costs {shared_total:.2f} USD ("
                       + ", ".join(f"{k} {v:.2f}" for k, v in items.items())
                       + ") prorated by each group's share of charge")
    t.shared = parts
    t.charge_parts.append((1, "shared_cost"))
    for row, p in zip(t.rows, parts, strict=True):
        row["shared_share"] = (p * 100 / shared_total) if shared_total else None
        row["shared_cost"] = p


def add_charge(t: SpendTable) -> None:
    """What each group is charged: the model's charge plus its shared costs."""
    t.columns.append(Column("charge", "charge", "money", total=True,
                            parts=tuple(t.charge_parts), na_when="unpriced_charge"))
    for row, c, s in zip(t.rows, t.charges, t.shared, strict=True):
        row["charge"] = c + s
        # nothing priced and nothing to charge: unknown, not $0 (a token share is a charge)
        row["unpriced_charge"] = row["unpriced_group"] and row["charge"] == 0


def add_budgets(t: SpendTable, budgets: Budgets, period: Period, today: dt.date) -> None:
    """Consumption (the charge, shared costs included) against the period's budget."""
    elapsed = period.elapsed_days(today)
    t.columns += [
        Column("budget", "budget", "money", total=True),
        Column("hard_stop", "hard stop", "percent"),
        Column("used", "used", "percent"),
        Column("state", "threshold", "text"),
        Column("projected", "projected", "money", total=True),
        Column("projected_used", "projected used", "percent"),
    ]
    for row, g in zip(t.rows, t.groups, strict=True):
        b = budgets.entries.get(g.group)
        if b is None:
            row.update(budget=None, hard_stop=None, used=None, state="no budget",
                       projected=None, projected_used=None)
            continue
        period_budget = period.prorate_monthly(b.monthly)
        st = cb.budget_status(row["charge"], period_budget, b.hard_stop_percent,
                              elapsed, period.days)
        row.update(budget=period_budget, hard_stop=b.hard_stop_percent,
                   used=st.used_percent, state=st.state,
                   projected=st.projected, projected_used=st.projected_percent)
    t.notes.append(f"projection: linear run-rate over {elapsed} of {period.days} days "
                   f"(as of {today}); thresholds 50/80/100% and the hard stop are reached at >=")
    t.meta["budgets_file"] = budgets.file
    t.meta["as_of"] = today.isoformat()


def finish(t: SpendTable, title: str) -> Report:
    """The unpriced note, the TOTAL row (sums of the summed columns), rows by charge."""
    unpriced = sum(g.unpriced_calls for g in t.groups)
    if unpriced:
        t.notes.append(f"{unpriced} unpriced calls "
                       f"({sum(g.unpriced_tokens for g in t.groups)} tokens) have no price and "
                       "are not in any cost: see `spanledger prices unpriced`")
    duplicates = sum(g.duplicate_spans for g in t.groups)
    if duplicates:
        t.notes.append(f"{duplicates} duplicate spans (a second instrumentation of a call "
                       "already counted, e.g. a client SDK's own span) are in no count or cost")
    tools_unpriced = sum(g.tool_calls + g.vector_calls for g in t.groups
                         if g.wholly_unpriced)
    if tools_unpriced:
        t.notes.append("unpriced: groups whose calls all lack a price (their cost is unknown, "
                       "not zero); tool and vector-database calls get per-call prices in the "
                       "prices file (calls:)")
    total = dict(t.total)
    for col in t.columns:
        if col.total:
            vals = [r[col.key] for r in t.rows if r.get(col.key) is not None]
            total[col.key] = sum(vals, ZERO if col.kind == "money" else 0)
    for d in t.dims[:1]:
        total[d] = "TOTAL"
    if t.groups and all(g.wholly_unpriced for g in t.groups):  # nothing priced at all
        total["unpriced_group"] = True
        total["unpriced_charge"] = total.get("charge") == 0
    rows = sorted(t.rows, key=lambda r: (-r["charge"], tuple(r[d] for d in t.dims)))
    return Report("spend", title, t.columns, rows, total, t.notes, t.meta)
