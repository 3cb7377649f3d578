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

from spanledger.errors import UsageError
from spanledger.pricing.types import TokenUsage
from spanledger.reports import chargeback as cb
from spanledger.reports import spend_steps as steps
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
from spanledger.reports.tabular import Report
from spanledger.store.base import Store

MODELS = ("showback", "proportional", "cost-plus", "budget")


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

    def price(provider: str, model: str, usage: TokenUsage, tier: str | None = None
              ) -> Decimal | None:
        if not model:
            return None
        if usage.is_empty:  # a vector-database or tool span, priced per call
            cost = (catalog.price_call(db_system=model, at=when)
                    or catalog.price_call(tool=model, at=when))
        else:
            cost = catalog.price_tokens(provider or None, model, usage, at=when, tier=tier)
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
    The work is done by the steps of :mod:`spend_steps`, in their order.
    """
    opts.validate()
    if opts.snapshot is not None and snapshot is None:
        raise ValueError("spend_report: --snapshot-prices needs the re-priced calls")
    groups = cb.group_spend(rows, snapshot if opts.snapshot is not None else None)
    if opts.budgets is not None:  # --model budget (validated)
        groups = steps.with_budget_groups(groups, opts.budgets, opts.snapshot is not None)
    t = steps.base_table(groups, opts.dims, {
        "period": opts.period.to_dict(), "model": opts.model, "by": list(opts.dims),
        "environment": opts.env})
    if opts.snapshot is not None:
        steps.add_snapshot(t, opts.snapshot)
    if opts.model == "proportional":
        assert opts.invoice_total is not None  # validated
        steps.add_proportional(t, opts.invoice_total)
    elif opts.model == "cost-plus":
        steps.add_cost_plus(t, cb.DEFAULT_MARKUP if opts.markup is None else opts.markup)
    else:
        steps.add_showback(t)
    if opts.shared is not None:
        steps.add_shared_costs(t, opts.shared.for_period(opts.period))
    steps.add_charge(t)
    if opts.budgets is not None:
        steps.add_budgets(t, opts.budgets, opts.period, opts.today or utc_today())
    title = f"LLM spend {opts.period.label} by {','.join(opts.dims)} ({opts.model})"
    return steps.finish(t, title)
