"""Chargeback models as pure functions over exact Decimal amounts.

No SQL and no formatting here, so every rule finance relies on (the invoice
split sums to the invoice, shared costs sum to the shared total, a budget
threshold is crossed at exactly 80 %) is checked on plain numbers.

Definitions (also in the ``report spend --help`` text):

- *token volume* of a group = input tokens + output tokens of all its calls,
  priced or not. Input includes cached input (GenAI semconv), reasoning
  tokens are part of output. Proportional chargeback needs no prices, so
  unpriced calls take their share of the invoice too.
- *basis* of a group = its actual priced cost, or its cost re-priced at the
  snapshot date with ``--snapshot-prices``.
- shared platform costs are split by each group's charge before shared
  costs (its share of cost), never evenly.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal

from spanledger.pricing.types import USD_QUANTUM, TokenUsage, usd
from spanledger.reports.queries import CallUsageRow, SpendRow

ZERO = Decimal(0)
CENT = Decimal("0.01")
UNATTRIBUTED = "(unattributed)"
#: the row of invoice lines no group used (calls from services without spanledger)
NOT_METERED = "(not metered)"
#: the row of GPU pool costs no call used in the period
IDLE_GPU = "(idle GPU)"
#: alert levels below the hard stop: FinOps practice alerts at 50/80/100 % of a budget
#: and stops hard around 120 % (DEFAULT_HARD_STOP, configurable per budget)
ALERT_PERCENTS: tuple[Decimal, ...] = (Decimal(50), Decimal(80), Decimal(100))
DEFAULT_HARD_STOP = Decimal(120)
DEFAULT_MARKUP = Decimal("0.15")


def label(value: str) -> str:
    """Display name of a group value: empty attribution is its own visible row."""
    return value if value != "" else UNATTRIBUTED


# -- rounding ---------------------------------------------------------------------

def largest_remainder(amounts: Sequence[Decimal], target: Decimal,
                      quantum: Decimal) -> list[Decimal]:
    """Round ``amounts`` to multiples of ``quantum`` so that they sum to ``target`` exactly.

    Every amount is floored, then the quanta still missing go to the amounts
    that lost the most (ties: the earlier one). ``target`` must itself be a
    multiple of ``quantum`` within len(amounts) quanta of sum(amounts).
    """
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        floors = [(a / quantum).to_integral_value(rounding=ROUND_FLOOR) for a in amounts]
        missing = int((target / quantum) - sum(floors, ZERO))
        if amounts and not 0 <= missing <= len(amounts):
            raise ValueError(f"cannot round {len(amounts)} amounts to reach {target}")
        order = sorted(range(len(amounts)), key=lambda i: (-(amounts[i] / quantum - floors[i]), i))
        for i in order[:missing]:
            floors[i] += 1
        return [(f * quantum).quantize(quantum) for f in floors]


def round_for_display(amounts: Sequence[Decimal],
                      quantum: Decimal = CENT) -> tuple[list[Decimal], Decimal]:
    """Rows rounded so they add up to the rounded total shown under them."""
    total = sum(amounts, ZERO).quantize(quantum, rounding=decimal.ROUND_HALF_EVEN)
    return largest_remainder(list(amounts), total, quantum), total


def allocate(total: Decimal, weights: Sequence[Decimal | int],
             quantum: Decimal) -> list[Decimal] | None:
    """Split ``total`` by ``weights``; the parts sum to ``total`` exactly. None if no weight."""
    weight_sum = sum((Decimal(w) for w in weights), ZERO)
    if weight_sum <= 0:
        return None
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        exact = [total * Decimal(w) / weight_sum for w in weights]
    return largest_remainder(exact, total, quantum)


# -- group spend -----------------------------------------------------------------------

@dataclass(slots=True)
class GroupSpend:
    """What one report group consumed over the period."""

    group: tuple[str, ...]
    #: counted calls of every kind (LLM, tool, vector database)
    calls: int = 0
    errors: int = 0
    #: the kinds apart: model calls (None: all of ``calls``), tool calls, vector-database calls
    llm_calls: int | None = None
    tool_calls: int = 0
    vector_calls: int = 0
    #: second spans of calls counted once (a client SDK's own span beside an instrumentation's)
    duplicate_spans: int = 0
    #: calls with a price (of any kind): none with calls means the group's cost is unknown
    priced_calls: int = 0
    unpriced_calls: int = 0
    unpriced_tokens: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost: Decimal = ZERO
    #: cost re-priced at the snapshot date (None without --snapshot-prices)
    snapshot_cost: Decimal | None = None
    #: priced calls with no price on the snapshot date: kept at their actual cost
    snapshot_fallback_calls: int = 0
    #: the part of calls / cost that are late arrivals for a closed period, booked in this
    #: one (the adjustment), and calls whose reported cost differs from the collector's
    late_calls: int = 0
    late_cost: Decimal = ZERO
    disagreements: int = 0

    @property
    def model_calls(self) -> int:
        """LLM (model) calls."""
        return self.calls if self.llm_calls is None else self.llm_calls

    @property
    def wholly_unpriced(self) -> bool:
        """Calls and not one of them priced: the cost is unknown ("unpriced"), not $0."""
        return self.calls > 0 and self.priced_calls == 0 and self.cost == 0

    @property
    def tokens(self) -> int:
        """Token volume: input (incl. cached) + output (incl. reasoning)."""
        return self.input_tokens + self.output_tokens

    @property
    def basis(self) -> Decimal:
        return self.cost if self.snapshot_cost is None else self.snapshot_cost


#: (provider, model, usage of one call, service tier or None) -> its cost, None = no price
PriceFn = Callable[[str, str, TokenUsage, "str | None"], Decimal | None]
#: group -> (cost re-priced at the snapshot date, priced calls that had no price then)
Snapshot = Mapping[tuple[str, ...], tuple[Decimal, int]]


def snapshot_costs(calls: Iterable[CallUsageRow], price: PriceFn) -> dict[tuple[str, ...],
                                                                         tuple[Decimal, int]]:
    """Re-price every priced call at the snapshot date, one call's usage at a time.

    ``price(provider, model, usage)`` is the cost of ONE call with ``usage`` at
    the snapshot date, or None when the model had no price then: those calls
    keep their actual cost and are counted. Each call is rounded to 1e-12 USD
    like a span's own cost, then multiplied by the number of identical calls.
    """
    out: dict[tuple[str, ...], tuple[Decimal, int]] = {}
    for r in calls:
        usage = TokenUsage(r.input_tokens, r.output_tokens, r.cache_read_tokens,
                           r.cache_write_tokens, r.reasoning_tokens, r.cache_write_1h_tokens)
        one = price(r.provider, r.model, usage, r.tier or None) if r.model else None
        cost, fallback = out.get(r.group, (ZERO, 0))
        if one is None:
            out[r.group] = (cost + r.cost, fallback + r.calls)
        else:
            out[r.group] = (cost + usd(one) * r.calls, fallback)
    return out


def group_spend(rows: Iterable[SpendRow], snapshot: Snapshot | None = None) -> list[GroupSpend]:
    """Sum provider/model/status rows into groups, with their snapshot cost if given.

    Unpriced calls stay unpriced under a snapshot too.
    """
    groups: dict[tuple[str, ...], GroupSpend] = {}
    for r in rows:
        g = groups.get(r.group)
        if g is None:
            g = groups[r.group] = GroupSpend(r.group)
            if snapshot is not None:
                g.snapshot_cost, g.snapshot_fallback_calls = snapshot.get(r.group, (ZERO, 0))
        g.calls += r.calls
        g.errors += r.errors
        g.llm_calls = (g.llm_calls or 0) + r.model_calls
        g.tool_calls += r.tool_calls
        g.vector_calls += r.vector_calls
        g.duplicate_spans += r.duplicate_spans
        g.input_tokens += r.input_tokens
        g.output_tokens += r.output_tokens
        g.cache_read_tokens += r.cache_read_tokens
        g.cache_write_tokens += r.cache_write_tokens
        g.late_calls += r.late_calls
        g.disagreements += r.disagreements
        if r.status != "priced":
            if r.status == "unpriced":  # a model without a price (a tool without one is
                g.unpriced_calls += r.calls  # no_usage: counted as a tool call, cost n/a)
                g.unpriced_tokens += r.input_tokens + r.output_tokens
            continue
        g.priced_calls += r.calls
        g.cost += r.cost
        g.late_cost += r.late_cost
    return sorted(groups.values(), key=lambda g: g.group)


# -- models -----------------------------------------------------------------------------

def showback(groups: Sequence[GroupSpend]) -> list[Decimal]:
    """Charge = cost (actual, or snapshot with --snapshot-prices)."""
    return [g.basis for g in groups]


def cost_plus(groups: Sequence[GroupSpend], markup: Decimal) -> list[Decimal]:
    """Charge = cost x (1 + markup), kept at 1e-12 USD."""
    if markup < 0:
        raise ValueError("markup must not be negative")
    return [usd(g.basis * (1 + markup)) for g in groups]


def invoice_quantum(invoice_total: Decimal) -> Decimal:
    """Cents, or the invoice's own finer precision if it has one."""
    exponent = invoice_total.as_tuple().exponent
    assert isinstance(exponent, int)
    return min(CENT, Decimal(1).scaleb(exponent))


def proportional(groups: Sequence[GroupSpend], invoice_total: Decimal) -> list[Decimal] | None:
    """The invoice split by token volume, to the cent, summing to the invoice exactly.

    None when there is no token volume to split by (the invoice stays unallocated).
    """
    return allocate(invoice_total, [g.tokens for g in groups], invoice_quantum(invoice_total))


@dataclass(frozen=True, slots=True)
class InvoiceLines:
    """An invoice as provider/model lines (``report spend --invoice FILE``).

    Keys are (provider, model) as :mod:`~spanledger.reports.model_keys` names them,
    so the bill's ``gpt-4o-2024-08-06`` line meets the spans' ``gpt-4o``.
    """

    lines: Mapping[tuple[str, str], Decimal]
    files: tuple[str, ...] = ()

    @property
    def total(self) -> Decimal:
        return sum(self.lines.values(), ZERO)


@dataclass(frozen=True, slots=True)
class LineSplit:
    """One invoice line and what each group is charged of it."""

    key: tuple[str, str]
    amount: Decimal
    parts: list[Decimal]
    #: no group used this line: the amount goes to the NOT_METERED row
    unallocated: bool


def proportional_by_line(volumes: Mapping[tuple[str, str], Sequence[int]],
                         invoice: InvoiceLines, n_groups: int,
                         placeholder: int | None) -> tuple[list[Decimal], list[LineSplit]]:
    """Each invoice line split by the groups' token volume on THAT line, to the cent.

    The invoice total is rounded to cents first, its lines are rounded to sum to
    it (largest remainder), then each line is split among the groups that used
    its provider/model (largest remainder again): a team that only called the
    cheap model pays no part of the expensive model's line. A line no group used
    goes to the ``placeholder`` row. The charges sum to the rounded invoice total.
    """
    keys = sorted(invoice.lines)
    total = invoice.total.quantize(CENT, rounding=decimal.ROUND_HALF_EVEN)
    amounts = largest_remainder([invoice.lines[k] for k in keys], total, CENT)
    charges = [ZERO] * n_groups
    splits = []
    for key, amount in zip(keys, amounts, strict=True):
        weights = volumes.get(key, ())
        parts = allocate(amount, weights, CENT) if any(weights) else None
        if parts is None:
            if placeholder is None:
                raise ValueError(f"invoice line {key} has no volume and no row to go to")
            parts = [ZERO] * n_groups
            parts[placeholder] = amount
        for i, part in enumerate(parts):
            charges[i] += part
        splits.append(LineSplit(key, amount, parts, not any(weights)))
    return charges, splits


def fixed(groups: Sequence[GroupSpend], prices: Mapping[tuple[str, ...], Decimal],
          unlisted_actual: bool) -> list[Decimal]:
    """Charge = the group's fixed price for the period; unlisted groups: actual cost or zero."""
    return [prices.get(g.group, g.basis if unlisted_actual else ZERO) for g in groups]


@dataclass(frozen=True, slots=True)
class HybridCharge:
    """One group's spend under per-environment rules: shown only, charged, and the markup."""

    shown: Decimal
    charged: Decimal
    markup: Decimal

    @property
    def charge(self) -> Decimal:
        return self.charged + self.markup


def hybrid(env_costs: Mapping[str, Decimal],
           rule: Callable[[str], tuple[str, Decimal]]) -> HybridCharge:
    """``rule(environment)`` -> (showback | chargeback | cost-plus, markup); exact at 1e-12 USD."""
    shown = charged = markup = ZERO
    for env, cost in env_costs.items():
        model, rate = rule(env)
        if model == "showback":
            shown += cost
            continue
        charged += cost
        if model == "cost-plus":
            markup += usd(cost * (1 + rate)) - cost
    return HybridCharge(shown, charged, markup)


def prorate_shared(charges: Sequence[Decimal], shared_total: Decimal) -> list[Decimal] | None:
    """Shared platform costs split by each group's share of the charges (never evenly).

    Parts are at 1e-12 USD and sum to ``shared_total`` exactly; None when
    nothing was charged (no share to prorate by).
    """
    return allocate(shared_total, charges, USD_QUANTUM)


# -- budgets ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BudgetStatus:
    budget: Decimal
    consumed: Decimal
    used_percent: Decimal
    #: highest threshold reached (50, 80, 100 or the hard stop), None below 50 %
    threshold: Decimal | None
    hard_stop: bool
    projected: Decimal
    projected_percent: Decimal
    projected_threshold: Decimal | None = field(default=None)

    @property
    def state(self) -> str:
        if self.hard_stop:
            return f"HARD STOP ({self.threshold:f}%)"
        if self.threshold is None:
            return "ok"
        return f">= {self.threshold:f}%"


def crossed(percent: Decimal, hard_stop_percent: Decimal) -> Decimal | None:
    """The highest threshold ``percent`` has reached; reached means >= (not >)."""
    levels = sorted({*ALERT_PERCENTS, hard_stop_percent})
    hit = [t for t in levels if percent >= t]
    return hit[-1] if hit else None


def project(consumed: Decimal, elapsed_days: int, period_days: int) -> Decimal:
    """Linear run-rate: consumed / elapsed days x days in the period.

    Before the period starts nothing is projected beyond what is there;
    once it is over the projection is the actual.
    """
    if elapsed_days <= 0 or elapsed_days >= period_days:
        return consumed
    return usd(consumed * period_days / elapsed_days)


def budget_status(consumed: Decimal, budget: Decimal, hard_stop_percent: Decimal,
                  elapsed_days: int, period_days: int) -> BudgetStatus:
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        used = consumed * 100 / budget
        projected = project(consumed, elapsed_days, period_days)
        projected_pct = projected * 100 / budget
    threshold = crossed(used, hard_stop_percent)
    return BudgetStatus(
        budget=budget, consumed=consumed, used_percent=used, threshold=threshold,
        hard_stop=threshold is not None and threshold >= hard_stop_percent,
        projected=projected, projected_percent=projected_pct,
        projected_threshold=crossed(projected_pct, hard_stop_percent),
    )
