"""``spanledger reconcile``: read the exports, compare, explain, and say whether the bill ties out.

The result is one :class:`~spanledger.reports.tabular.Report` per view, rendered
by the report formats (table, csv, json):

- the rows: day x provider x model x token type, billed, metered, variance,
  tokens on both sides, coverage and the reason;
- the summary: per provider, the variance split by cause, so the causes and
  what stays unexplained add up to billed minus metered.

Coverage is metered / billed. The exit code is 1 when the unexplained variance
is more than ``tolerance`` of the bill (money; tokens where an export has no
money), else 0.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from spanledger.errors import UsageError
from spanledger.reconcile.compare import Row, build_rows
from spanledger.reconcile.explain import UNIT_PROBE, PricesFn, UnitFn, explain, unit_usage
from spanledger.reconcile.metered import fetch_metered
from spanledger.reconcile.readers import Export, read_exports
from spanledger.reports.period import Period
from spanledger.reports.queries import NO_TABLES, missing_rollups
from spanledger.reports.tabular import Column, Report
from spanledger.store.base import Store

ZERO = Decimal(0)
DEFAULT_TOLERANCE = Decimal("0.01")

#: cause -> label in the summary, in the order the summary lists them
CAUSES: dict[str, str] = {
    "not_metered": "calls not metered (services without spanledger)",
    "unpriced": "unpriced model",
    "discount_missing": "discount missing from the overrides",
    "discount_not_billed": "overrides discount not on the bill",
    "price_change": "price change",
    "tier": "batch / flex / priority tier",
    "cache_tokens": "cache tokens",
    "server_tools": "server-side tools (per request)",
    "reasoning_tokens": "reasoning tokens",
    "self_hosted": "self-hosted (not on this bill)",
    "unexplained": "(unexplained)",
    "rounding": "rounding (within the bill's precision)",
}


@dataclass(frozen=True, slots=True)
class ReconcileOptions:
    files: tuple[str, ...]
    #: the period to compare (None: the days the exports cover)
    period: Period | None = None
    tolerance: Decimal = DEFAULT_TOLERANCE
    #: the prices file the services and the collector price with (unit and catalog prices)
    prices: str | None = None

    def validate(self) -> None:
        if not self.files:
            raise UsageError("name at least one provider export file")
        if not ZERO <= self.tolerance < 1:
            raise UsageError(f"--tolerance must be between 0 and 100%, got {self.tolerance}")


@dataclass(slots=True)
class Result:
    exports: list[Export]
    rows: list[Row]
    period: Period
    tolerance: Decimal
    notes: list[str] = field(default_factory=list)

    @property
    def money_rows(self) -> list[Row]:
        return [r for r in self.rows if r.bill.amount is not None]

    @property
    def billed(self) -> Decimal:
        return sum((r.bill.amount for r in self.money_rows if r.bill.amount), ZERO)

    @property
    def metered(self) -> Decimal:
        return sum((r.metered.cost for r in self.money_rows), ZERO)

    @property
    def unexplained(self) -> Decimal:
        return sum((abs(r.unexplained) for r in self.money_rows if r.unexplained), ZERO)

    def unexplained_share(self) -> Decimal:
        """Unexplained variance over the bill: money, and tokens for rows without money."""
        shares = []
        if self.billed:
            shares.append(self.unexplained / self.billed)
        usage = [r for r in self.rows if r.bill.amount is None and r.bill.tokens is not None]
        billed_tokens = sum(r.bill.tokens or 0 for r in usage)
        if billed_tokens:
            shares.append(Decimal(sum(abs(r.unexplained_tokens or 0) for r in usage))
                          / billed_tokens)
        return max(shares, default=ZERO)

    @property
    def ties_out(self) -> bool:
        return self.unexplained_share() <= self.tolerance

    @property
    def exit_code(self) -> int:
        return 0 if self.ties_out else 1


def catalog_prices(prices_file: str | None, *, from_env: bool = True) -> tuple[UnitFn, PricesFn]:
    """Unit prices and price histories from the catalog plus the prices file.

    Without a file, ``$SPANLEDGER_PRICES_FILE`` is used unless ``from_env`` is
    False (then: the catalog's list prices alone).
    """
    from spanledger.pricing.catalog import PriceCatalog

    explicit = prices_file or not from_env
    catalog = PriceCatalog(prices_file) if explicit else PriceCatalog.from_env()

    def at(day: dt.date) -> dt.datetime:
        return dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC)

    def unit(provider: str, model: str, token_type: str, day: dt.date) -> Decimal | None:
        usage = unit_usage(token_type)
        cost = catalog.price_tokens(provider, model, usage, at(day)) if usage else None
        return None if cost is None else cost.total / UNIT_PROBE

    def history(provider: str, model: str, token_type: str,
                day: dt.date) -> tuple[list[tuple[Decimal, str]], Decimal | None]:
        periods = catalog.describe(model, provider, at(day))
        out = []
        for p in periods:
            price = getattr(p, token_type, None)
            if price is None:
                continue
            where = "catalog" if p.kind == "catalog" else "prices file"
            since = f"the {where} price from {p.effective_from}" if p.effective_from else (
                f"the {where} price")
            out.append((Decimal(price), since))
        discount = next((p.discount_percent for p in periods
                         if p.in_force and p.kind == "override"), None)
        return out, discount

    return unit, history


def reconcile(store: Store, opts: ReconcileOptions,
              exports: Sequence[Export] | None = None) -> Result:
    """Read (unless given), compare and explain."""
    opts.validate()
    exports = list(exports) if exports is not None else read_exports(opts.files)
    days = sorted({d for e in exports for d in e.days})
    if not days:
        raise UsageError("the exports hold no days to compare")
    period = opts.period or Period(days[0], days[-1])
    notes: list[str] = []
    if missing_rollups(store):
        notes.append(NO_TABLES)
        metered = []
    else:
        metered = fetch_metered(store, period)
    rows = build_rows(exports, metered, (period.start, period.end))
    unit, history = catalog_prices(opts.prices)
    explain(rows, unit, history)
    for e in exports:
        notes.extend(e.notes)
        if e.skipped:
            notes.append(f"{e.file}: {e.skipped:,} rows of other services left out")
    return Result(exports, rows, period, opts.tolerance, notes)


# -- reports ----------------------------------------------------------------------------

def _coverage(metered: Decimal, billed: Decimal | None) -> Decimal | None:
    return metered * 100 / billed if billed else None


def _summary_notes(res: Result) -> list[str]:
    out = []
    for provider, (billed, metered) in sorted(_per_provider(res).items()):
        cov = _coverage(metered, billed)
        out.append(f"{provider}: billed {billed:,.2f} USD, metered {metered:,.2f} USD, coverage "
                   + (f"{cov:.1f}%" if cov is not None else "n/a"))
    share = res.unexplained_share()
    verdict = "ties out" if res.ties_out else "does NOT tie out"
    out.append(f"unexplained {res.unexplained:,.2f} USD = {share * 100:.2f}% of the bill "
               f"(tolerance {res.tolerance * 100:f}%): the bill {verdict}")
    out.append("read: " + "; ".join(f"{Path(e.file).name} ({e.format})" for e in res.exports))
    return [*out, *res.notes]


def _per_provider(res: Result) -> dict[str, tuple[Decimal, Decimal]]:
    acc: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for r in res.money_rows:
        acc[r.provider][0] += r.bill.amount or ZERO
        acc[r.provider][1] += r.metered.cost
    return {k: (v[0], v[1]) for k, v in acc.items()}


def _meta(res: Result) -> dict[str, Any]:
    return {"period": res.period.to_dict(), "tolerance": str(res.tolerance),
            "billed": str(res.billed), "metered": str(res.metered),
            "unexplained": str(res.unexplained),
            "unexplained_share": str(res.unexplained_share()), "ties_out": res.ties_out,
            "files": [{"file": e.file, "format": e.format, "title": e.title} for e in res.exports]}


ROW_COLUMNS = [
    Column("day", "day"), Column("provider", "provider"), Column("model", "model"),
    Column("token_type", "tokens of"),
    Column("billed", "billed", "money", total=True),
    Column("metered", "metered", "money", total=True),
    Column("variance", "variance", "money", total=True, parts=((1, "billed"), (-1, "metered"))),
    Column("billed_tokens", "billed tokens", "int", total=True),
    Column("metered_tokens", "metered tokens", "int", total=True),
    Column("coverage", "coverage", "percent"),
    Column("unexplained", "unexplained", "money", total=True),
    Column("reason", "reason"),
]


def rows_report(res: Result) -> Report:
    rows = []
    for r in res.rows:
        rows.append({
            "day": r.day.isoformat(), "provider": r.provider, "model": r.display_model,
            "token_type": r.token_type, "billed": r.bill.amount,
            "metered": r.metered.cost if r.bill.amount is not None else None,
            "variance": r.variance, "billed_tokens": r.bill.tokens,
            "metered_tokens": r.metered.all_tokens,
            "coverage": _coverage(r.metered.cost, r.bill.amount),
            "unexplained": r.unexplained, "reason": r.reason})
    total: dict[str, Any] = {"day": "TOTAL", "coverage": _coverage(res.metered, res.billed)}
    for col in ROW_COLUMNS:
        if col.total:
            vals = [row[col.key] for row in rows if row[col.key] is not None]
            total[col.key] = sum(vals, ZERO if col.kind == "money" else 0)
    title = f"Reconciliation {res.period.label}: provider bill vs metered"
    return Report("reconcile", title, list(ROW_COLUMNS), rows, total, _summary_notes(res),
                  _meta(res))


def summary_report(res: Result) -> Report:
    """Per provider: the variance (billed - metered) split by cause; causes add up to it."""
    acc: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for r in res.money_rows:
        variance = r.variance or ZERO
        explained = ZERO
        for e in r.explanations:
            if e.explains and e.amount is not None:
                acc[(r.provider, e.kind)] += e.amount
                explained += e.amount
        unexplained = r.unexplained or ZERO
        acc[(r.provider, "unexplained")] += unexplained
        acc[(r.provider, "rounding")] += variance - explained - unexplained
    billed = _per_provider(res)
    order = list(CAUSES)
    rows = []
    for (provider, kind), amount in sorted(acc.items(), key=lambda kv: (
            kv[0][0], order.index(kv[0][1]))):
        if not amount and kind != "unexplained":
            continue
        bill = billed[provider][0]
        rows.append({"provider": provider, "cause": CAUSES[kind], "amount": amount,
                     "share": amount * 100 / bill if bill else None})
    columns = [Column("provider", "provider"), Column("cause", "cause"),
               Column("amount", "billed - metered", "money", total=True),
               Column("share", "share of bill", "percent")]
    total = {"provider": "TOTAL", "amount": sum((r["amount"] for r in rows), ZERO),
             "share": (res.billed - res.metered) * 100 / res.billed if res.billed else None}
    title = f"Reconciliation {res.period.label}: where billed and metered differ"
    return Report("reconcile-summary", title, columns, rows, total, _summary_notes(res),
                  _meta(res))
