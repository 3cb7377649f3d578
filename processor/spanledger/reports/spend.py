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
from spanledger.reports import trust
from spanledger.reports.budgets import Budgets
from spanledger.reports.fixed_prices import FixedPrices
from spanledger.reports.gpu_costs import GpuCosts, allocate_gpu
from spanledger.reports.hybrid import HybridPlan
from spanledger.reports.period import Period, utc_today
from spanledger.reports.queries import (
    NO_TABLES,
    ModelUsageRow,
    SpendRow,
    UnverifiedSpend,
    fetch_call_usage,
    fetch_model_usage,
    fetch_spend,
    fetch_unverified,
    missing_rollups,
)
from spanledger.reports.shared_costs import SharedCosts
from spanledger.reports.tabular import Report
from spanledger.semconv import UNVERIFIED
from spanledger.store.base import Store

MODELS = ("showback", "proportional", "cost-plus", "budget", "fixed", "hybrid")
#: file flags, each for one model only (--shared-costs and --gpu-costs go with every model)
MODEL_FILES = {"budgets": ("budget", "--budgets"), "fixed": ("fixed", "--fixed-prices"),
               "hybrid": ("hybrid", "--hybrid")}


@dataclass(frozen=True, slots=True)
class SpendOptions:
    period: Period
    dims: tuple[str, ...] = ("team",)
    model: str = "showback"
    markup: Decimal | None = None
    invoice_total: Decimal | None = None
    #: the invoice as provider/model lines, from a provider's cost export (--invoice FILE)
    invoice: cb.InvoiceLines | None = None
    shared: SharedCosts | None = None
    budgets: Budgets | None = None
    fixed: FixedPrices | None = None
    hybrid: HybridPlan | None = None
    gpu: GpuCosts | None = None
    snapshot: dt.date | None = None
    #: overrides file for --snapshot-prices (default $SPANLEDGER_PRICES_FILE)
    prices: str | None = None
    env: str | None = None
    #: "now" for the budget projection (default: today in UTC)
    today: dt.date | None = None

    def validate(self, given: dict[str, bool] | None = None) -> None:
        """Refuse flag combinations that would otherwise be silently ignored (checked only here).

        ``given`` says which files were named (keys ``budgets``, ``fixed``,
        ``hybrid``, ``gpu``, ``invoice``) before they are loaded, so the command
        line can refuse bad flags before reading any file (default: which are set).
        """
        loaded = {"budgets": self.budgets is not None, "fixed": self.fixed is not None,
                  "hybrid": self.hybrid is not None, "gpu": self.gpu is not None,
                  "invoice": self.invoice is not None}
        named = {**loaded, **(given or {})}
        if self.model not in MODELS:
            raise UsageError(f"--model: unknown model {self.model!r} (expected one of: "
                             f"{', '.join(MODELS)})")
        if self.markup is not None:
            if self.markup < 0:
                raise UsageError(f"--markup must not be negative, got {self.markup}")
            if self.model != "cost-plus":
                raise UsageError("--markup applies to --model cost-plus only")
        if self.model == "proportional":
            if (self.invoice_total is None) == (not named["invoice"]):
                raise UsageError("--model proportional needs --invoice-total AMOUNT or "
                                 "--invoice FILE (one of them)")
            if self.invoice_total is not None and self.invoice_total < 0:
                raise UsageError(f"--invoice-total must not be negative, got {self.invoice_total}")
        elif self.invoice_total is not None or named["invoice"]:
            flag = "--invoice-total" if self.invoice_total is not None else "--invoice"
            raise UsageError(f"{flag} applies to --model proportional only")
        if self.prices and self.snapshot is None:
            raise UsageError(
                "--prices applies to --snapshot-prices only (actual costs are on the spans)")
        for key, (model, flag) in MODEL_FILES.items():
            if named[key] and self.model != model:
                raise UsageError(f"{flag} applies to --model {model} only")
            if self.model == model and not named[key]:
                raise UsageError(f"--model {model} needs {flag} FILE")
        if self.today is not None and self.model != "budget":
            raise UsageError("--as-of applies to --model budget only (the projection)")
        if self.snapshot is not None and (self.model in ("fixed", "hybrid") or named["gpu"]):
            what = "--gpu-costs" if named["gpu"] else f"--model {self.model}"
            raise UsageError(f"--snapshot-prices does not apply with {what} (it compares "
                             "with actual cost)")


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


def _environments(opts: SpendOptions) -> tuple[str, ...]:
    """Dimensions to fetch: the report's, plus the environment when hybrid needs it."""
    if opts.model == "hybrid" and "environment" not in opts.dims:
        return (*opts.dims, "environment")
    return opts.dims


def build_spend_report(store: Store, opts: SpendOptions) -> Report:
    """Fetch and build; with --snapshot-prices every priced call is re-priced at that date."""
    opts.validate()
    if missing_rollups(store):
        report = spend_report([], opts, {} if opts.snapshot is not None else None,
                              gpu_usage=[])
        report.notes.insert(0, NO_TABLES)
        return report
    rows = fetch_spend(store, opts.period, _environments(opts), opts.env)
    trust_notes = trust.notes(trust.fetch_trust(store, opts.period, opts.env))
    snapshot = None
    if opts.snapshot is not None:
        calls = fetch_call_usage(store, opts.period, opts.dims, opts.env)
        snapshot = cb.snapshot_costs(calls, snapshot_pricer(opts.snapshot, opts.prices))
    gpu_usage = None
    if opts.gpu is not None:
        gpu_usage = fetch_model_usage(store, opts.period, opts.dims, opts.env)
    report = spend_report(rows, opts, snapshot, gpu_usage=gpu_usage)
    unverified = fetch_unverified(store, opts.period, opts.env)
    if unverified.calls:
        report.notes.append(unverified_note(unverified))
    report.notes += trust_notes
    return report


def unverified_note(spend: UnverifiedSpend) -> str:
    """What the ``(unverified)`` rows are: spend no collector token vouches for."""
    return (f"{spend.cost:.2f} USD ({spend.calls} calls) is unverified: the collector token "
            f"that sent it may not claim its team, cost centre or service, so it is stored as "
            f"{UNVERIFIED} (its claim in spanledger.team.claimed, .cost_center.claimed, "
            ".service.claimed) and charged to no one")


def spend_report(rows: list[SpendRow], opts: SpendOptions,
                 snapshot: cb.Snapshot | None = None, *,
                 gpu_usage: list[ModelUsageRow] | None = None) -> Report:
    """The spend report over already fetched rows (pure: no store, no clock unless today unset).

    ``snapshot`` (required with --snapshot-prices) is :func:`chargeback.snapshot_costs`;
    ``gpu_usage`` (required with --gpu-costs) is :func:`queries.fetch_model_usage`. With
    ``--model hybrid`` and no environment in ``--by``, ``rows`` carry the environment as
    one more group value (see :func:`build_spend_report`). The work is done by the
    steps of :mod:`spend_steps`, in their order.
    """
    opts.validate()
    if opts.snapshot is not None and snapshot is None:
        raise ValueError("spend_report: --snapshot-prices needs the re-priced calls")
    gpu_shares = None
    if opts.gpu is not None:  # first: GPU-served calls carry no per-token cost in any model
        if gpu_usage is None:
            raise ValueError("spend_report: --gpu-costs needs the calls per model")
        rows = steps.without_gpu_models(rows, opts.gpu)
        gpu_shares = allocate_gpu(opts.gpu, gpu_usage, opts.period, len(opts.dims))
    environments = None
    if opts.model == "hybrid":
        rows, environments = steps.by_environment(rows, opts.dims)
    groups = cb.group_spend(rows, snapshot if opts.snapshot is not None else None)
    if opts.budgets is not None:  # --model budget (validated)
        groups = steps.with_budget_groups(groups, opts.budgets, opts.snapshot is not None)
    if opts.fixed is not None:
        groups = steps.with_groups(groups, opts.fixed.monthly)
    if opts.invoice is not None and steps.unused_lines(rows, opts.invoice):
        groups = steps.with_groups(groups, [(cb.NOT_METERED,) * len(opts.dims)])
    if gpu_shares is not None:
        groups = steps.with_groups(groups, [s.group for s in gpu_shares])
    t = steps.base_table(groups, opts.dims, {
        "period": opts.period.to_dict(), "model": opts.model, "by": list(opts.dims),
        "environment": opts.env})
    steps.add_late_arrivals(t)
    if opts.snapshot is not None:
        steps.add_snapshot(t, opts.snapshot)
    if opts.model == "proportional" and opts.invoice is not None:
        steps.add_proportional_lines(t, rows, opts.invoice)
    elif opts.model == "proportional":
        assert opts.invoice_total is not None  # validated
        steps.add_proportional(t, opts.invoice_total)
    elif opts.model == "cost-plus":
        steps.add_cost_plus(t, cb.DEFAULT_MARKUP if opts.markup is None else opts.markup)
    elif opts.model == "fixed":
        assert opts.fixed is not None  # validated
        steps.add_fixed(t, opts.fixed, opts.period)
    elif opts.model == "hybrid":
        assert opts.hybrid is not None and environments is not None  # validated
        steps.add_hybrid(t, environments, opts.hybrid)
    else:
        steps.add_showback(t)
    if gpu_shares is not None:
        assert opts.gpu is not None
        steps.add_gpu(t, gpu_shares, opts.gpu)
    if opts.shared is not None:
        steps.add_shared_costs(t, opts.shared.for_period(opts.period))
    steps.add_charge(t)
    if opts.budgets is not None:
        steps.add_budgets(t, opts.budgets, opts.period, opts.today or utc_today())
    title = f"LLM spend {opts.period.label} by {','.join(opts.dims)} ({opts.model})"
    return steps.finish(t, title)
