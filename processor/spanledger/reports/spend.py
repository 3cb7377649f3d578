"""``report spend``: showback and chargeback by team, feature, customer, ...

Reads ``llm_cost_daily`` once (per group x provider x model x status), then
applies one chargeback model from :mod:`chargeback` to exact Decimals.
Every money column of the result sums to its TOTAL value exactly; rounding
to cents happens only when a format displays it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from spanledger.errors import UsageError
from spanledger.pricing.types import TokenUsage
from spanledger.reports import chargeback as cb
from spanledger.reports.budgets import Budgets
from spanledger.reports.period import Period, utc_today
from spanledger.reports.queries import (
    NO_TABLES,
    SpendRow,
    fetch_call_usage,
    fetch_spend,
    missing_rollups,
)
from spanledger.reports.shared_costs import SharedCosts
from spanledger.reports.tabular import Column, Report
from spanledger.store.base import Store

MODELS = ("showback", "proportional", "cost-plus", "budget")
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class SpendOptions:
    period: Period
    dims: tuple[str, ...] = ("team",)
    model: str = "showback"
    markup: Decimal | None = None
    invoice_total: Decimal | None = None
    shared: SharedCosts | None = None
    budgets: Budgets | None = None
    snapshot: dt.date | None = None
    #: overrides file for --snapshot-prices (default $SPANLEDGER_PRICES_FILE)
    prices: str | None = None
    env: str | None = None
    #: "now" for the budget projection (default: today in UTC)
    today: dt.date | None = None

    def validate(self, budgets_given: bool | None = None) -> None:
        """Refuse flag combinations that would otherwise be silently ignored (checked only here).

        ``budgets_given`` says whether a budgets file was named before it is
        loaded, so the command line can refuse bad flags before reading any
        file (default: whether ``budgets`` is set).
        """
        if budgets_given is None:
            budgets_given = self.budgets is not None
        if self.model not in MODELS:
            raise UsageError(f"--model: unknown model {self.model!r} (expected one of: "
                             f"{', '.join(MODELS)})")
        if self.markup is not None:
            if self.markup < 0:
                raise UsageError(f"--markup must not be negative, got {self.markup}")
            if self.model != "cost-plus":
                raise UsageError("--markup applies to --model cost-plus only")
        if self.model == "proportional":
            if self.invoice_total is None:
                raise UsageError("--model proportional needs --invoice-total AMOUNT")
            if self.invoice_total < 0:
                raise UsageError(f"--invoice-total must not be negative, got {self.invoice_total}")
        elif self.invoice_total is not None:
            raise UsageError("--invoice-total applies to --model proportional only")
        if self.prices and self.snapshot is None:
            raise UsageError(
                "--prices applies to --snapshot-prices only (actual costs are on the spans)")
        if budgets_given and self.model != "budget":
            raise UsageError("--budgets applies to --model budget only")
        if self.model == "budget" and not budgets_given:
            raise UsageError("--model budget needs --budgets FILE")
        if self.today is not None and self.model != "budget":
            raise UsageError("--as-of applies to --model budget only (the projection)")


def snapshot_pricer(at: dt.date, prices: str | None = None) -> cb.PriceFn:
    """Price one call's usage at the prices in force at 00:00 UTC on ``at``.

    ``prices`` is the overrides file the services and the collector price with
    (default: ``$SPANLEDGER_PRICES_FILE``), so negotiated rates apply here too.
    """
    from spanledger.pricing.catalog import PriceCatalog

    catalog = PriceCatalog(prices) if prices else PriceCatalog.from_env()
    when = dt.datetime(at.year, at.month, at.day, tzinfo=dt.UTC)

    def price(provider: str, model: str, usage: TokenUsage) -> Decimal | None:
        if not model:
            return None
        if usage.is_empty:  # a vector-database or tool span, priced per call
            cost = (catalog.price_call(db_system=model, at=when)
                    or catalog.price_call(tool=model, at=when))
        else:
            cost = catalog.price_tokens(provider or None, model, usage, at=when)
        return None if cost is None else cost.total

    return price


def build_spend_report(store: Store, opts: SpendOptions) -> Report:
    """Fetch and build; with --snapshot-prices every priced call is re-priced at that date."""
    opts.validate()
    if missing_rollups(store):
        report = spend_report([], opts, {} if opts.snapshot is not None else None)
        report.notes.insert(0, NO_TABLES)
        return report
    rows = fetch_spend(store, opts.period, opts.dims, opts.env)
    snapshot = None
    if opts.snapshot is not None:
        calls = fetch_call_usage(store, opts.period, opts.dims, opts.env)
        snapshot = cb.snapshot_costs(calls, snapshot_pricer(opts.snapshot, opts.prices))
    return spend_report(rows, opts, snapshot)


def spend_report(rows: list[SpendRow], opts: SpendOptions,
                 snapshot: cb.Snapshot | None = None) -> Report:
    """The spend report over already fetched rows (pure: no store, no clock unless today unset).

    ``snapshot`` (required with --snapshot-prices) is :func:`chargeback.snapshot_costs`.
    """
    opts.validate()
    if opts.snapshot is not None and snapshot is None:
        raise ValueError("spend_report: --snapshot-prices needs the re-priced calls")
    groups = cb.group_spend(rows, snapshot if opts.snapshot is not None else None)
    if opts.model == "budget":
        assert opts.budgets is not None
        have = {g.group for g in groups}
        for key in opts.budgets.entries:
            if key not in have:
                groups.append(cb.GroupSpend(key, snapshot_cost=ZERO if opts.snapshot else None))
    notes: list[str] = []
    meta: dict[str, Any] = {
        "period": {"start": opts.period.start.isoformat(), "end": opts.period.end.isoformat(),
                   "label": opts.period.label},
        "model": opts.model, "by": list(opts.dims), "environment": opts.env,
    }
    columns = [Column(d, d, "text") for d in opts.dims] + [
        Column("calls", "calls", "int", total=True),
        Column("tokens", "tokens", "int", total=True),
        Column("unpriced_calls", "unpriced calls", "int", total=True),
        Column("unpriced_tokens", "unpriced tokens", "int", total=True),
        Column("cost", "actual cost", "money", total=True),
    ]
    n = len(groups)
    out: list[dict[str, Any]] = [
        {**{d: cb.label(v) for d, v in zip(opts.dims, g.group, strict=True)},
         "calls": g.calls, "tokens": g.tokens, "unpriced_calls": g.unpriced_calls,
         "unpriced_tokens": g.unpriced_tokens, "cost": g.cost}
        for g in groups
    ]
    total: dict[str, Any] = {}

    # snapshot pricing: side by side, the difference reported
    if opts.snapshot is not None:
        columns += [Column("snapshot_cost", f"cost at {opts.snapshot} prices", "money", total=True),
                    Column("snapshot_diff", "snapshot - actual", "money", total=True,
                           parts=((1, "snapshot_cost"), (-1, "cost")))]
        for row, g in zip(out, groups, strict=True):
            snap = g.snapshot_cost if g.snapshot_cost is not None else ZERO
            row["snapshot_cost"], row["snapshot_diff"] = snap, snap - g.cost
        fallback = sum(g.snapshot_fallback_calls for g in groups)
        snap_total = sum((g.basis for g in groups), ZERO)
        act_total = sum((g.cost for g in groups), ZERO)
        notes.append(f"charged at the prices of {opts.snapshot}: {snap_total:.2f} USD vs actual "
                     f"{act_total:.2f} USD (difference {snap_total - act_total:+.2f} USD)")
        if fallback:
            notes.append(f"{fallback} priced calls had no price on {opts.snapshot}: "
                         "kept at their actual cost")
        meta["snapshot_prices"] = opts.snapshot.isoformat()

    # the chargeback model
    charges: list[Decimal]
    basis_key = "cost" if opts.snapshot is None else "snapshot_cost"
    charge_parts: list[tuple[int, str]] = [(1, basis_key)]
    if opts.model == "proportional":
        assert opts.invoice_total is not None
        columns.append(Column("token_share", "token share", "percent"))
        split = cb.proportional(groups, opts.invoice_total)
        tokens_total = sum(g.tokens for g in groups)
        for row, g in zip(out, groups, strict=True):
            row["token_share"] = (Decimal(g.tokens) * 100 / tokens_total) if tokens_total else None
        columns.append(Column("invoice_share", "invoice share", "money", total=True))
        charge_parts = [(1, "invoice_share")]
        if split is None:
            charges = [ZERO] * n
            notes.append(f"invoice total {opts.invoice_total} USD not allocated: "
                         "no token volume in the period")
        else:
            charges = split
            total["token_share"] = Decimal(100)
        for row, c in zip(out, charges, strict=True):
            row["invoice_share"] = c
        tracked = sum((g.cost for g in groups), ZERO)
        notes.append(f"invoice {opts.invoice_total} USD split by token volume (input incl. cached "
                     f"+ output tokens, priced or not); tracked actual cost {tracked:.2f} USD, "
                     f"gap {opts.invoice_total - tracked:+.2f} USD (untagged or uninstrumented "
                     "calls, discounts, unpriced models)")
        meta["invoice_total"] = str(opts.invoice_total)
    elif opts.model == "cost-plus":
        markup = cb.DEFAULT_MARKUP if opts.markup is None else opts.markup
        charges = cb.cost_plus(groups, markup)
        columns.append(Column("markup", f"markup {markup * 100:f}%", "money", total=True))
        charge_parts.append((1, "markup"))
        for row, g, c in zip(out, groups, charges, strict=True):
            row["markup"] = c - g.basis
        meta["markup"] = str(markup)
    else:
        charges = cb.showback(groups)

    # shared platform costs: prorated by share of charge
    shared_parts: list[Decimal] = [ZERO] * n
    if opts.shared is not None:
        items = opts.shared.for_period(opts.period)
        shared_total = sum(items.values(), ZERO)
        meta["shared_costs"] = {k: str(v) for k, v in items.items()}
        columns += [Column("shared_share", "share of shared", "percent"),
                    Column("shared_cost", "shared costs", "money", total=True)]
        parts = cb.prorate_shared(charges, shared_total) if shared_total else [ZERO] * n
        if parts is None:
            notes.append(f"shared costs {shared_total:.2f} USD not allocated: no charge in the "
                         "period to prorate them by")
            parts = [ZERO] * n
        elif shared_total:
            total["shared_share"] = Decimal(100)
            notes.append(f"shared platform costs {shared_total:.2f} USD ("
                         + ", ".join(f"{k} {v:.2f}" for k, v in items.items())
                         + ") prorated by each group's share of charge")
        shared_parts = parts
        charge_parts.append((1, "shared_cost"))
        for row, p in zip(out, parts, strict=True):
            row["shared_share"] = (p * 100 / shared_total) if shared_total else None
            row["shared_cost"] = p

    columns.append(Column("charge", "charge", "money", total=True, parts=tuple(charge_parts)))
    for row, c, s in zip(out, charges, shared_parts, strict=True):
        row["charge"] = c + s

    # budgets: consumption = charge (incl. shared costs) against the period's budget
    if opts.model == "budget":
        assert opts.budgets is not None
        today = opts.today or utc_today()
        elapsed = opts.period.elapsed_days(today)
        columns += [
            Column("budget", "budget", "money", total=True),
            Column("hard_stop", "hard stop", "percent"),
            Column("used", "used", "percent"),
            Column("state", "threshold", "text"),
            Column("projected", "projected", "money", total=True),
            Column("projected_used", "projected used", "percent"),
        ]
        for row, g in zip(out, groups, strict=True):
            b = opts.budgets.entries.get(g.group)
            if b is None:
                row.update(budget=None, hard_stop=None, used=None, state="no budget",
                           projected=None, projected_used=None)
                continue
            period_budget = opts.period.prorate_monthly(b.monthly)
            st = cb.budget_status(row["charge"], period_budget, b.hard_stop_percent,
                                  elapsed, opts.period.days)
            row.update(budget=period_budget, hard_stop=b.hard_stop_percent,
                       used=st.used_percent, state=st.state,
                       projected=st.projected, projected_used=st.projected_percent)
        notes.append(f"projection: linear run-rate over {elapsed} of {opts.period.days} days "
                     f"(as of {today}); thresholds 50/80/100% and the hard stop are reached at >=")
        meta["budgets_file"] = opts.budgets.file
        meta["as_of"] = today.isoformat()

    unpriced = sum(g.unpriced_calls for g in groups)
    if unpriced:
        notes.append(f"{unpriced} unpriced calls ({sum(g.unpriced_tokens for g in groups)} tokens) "
                     "have no price and are not in any cost: see `spanledger prices unpriced`")

    for col in columns:
        if col.total:
            vals = [r[col.key] for r in out if r.get(col.key) is not None]
            total[col.key] = sum(vals, ZERO if col.kind == "money" else 0)
    for d in opts.dims[:1]:
        total[d] = "TOTAL"

    out.sort(key=lambda r: (-r["charge"], tuple(r[d] for d in opts.dims)))
    title = f"LLM spend {opts.period.label} by {','.join(opts.dims)} ({opts.model})"
    return Report("spend", title, columns, out, total, notes, meta)
