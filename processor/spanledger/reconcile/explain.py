"""Why a row of the bill differs from what was metered, found one cause at a time.

Each row starts from what spanledger metered and adjusts it, cause by cause,
toward what the bill says; a cause is named only when it accounts for the
difference (to the bill's own rounding). In this order:

1. ``unpriced``: calls of a model with no price have tokens but no cost;
2. ``self_hosted``: metered calls of a model priced from the prices file only,
   absent from the provider's bill (their tokens are not compared then);
3. token differences (when the bill counts tokens): ``cache_tokens`` (input
   tokens moved between the cached and uncached types), ``reasoning_tokens``
   (output the spans did not count), ``not_metered`` (tokens the bill has and no
   span has: calls from services without spanledger), or metered tokens the bill
   does not have (a finding, not an explanation);
4. ``tier``: batch or flex calls billed at half the standard price, priority above it;
   ``cache_tokens`` again for one-hour cache writes (billed at 1.6x the five-minute
   price the spans carry); ``server_tools``: per-request charges no span prices;
5. price level: ``discount_not_billed`` (a discount in the prices file the bill
   does not show), ``price_change`` (billed at another of the model's catalog or
   prices-file prices than the one the spans were priced at), ``discount_missing``
   (the whole period of a model billed a round percentage below the metered
   price: a negotiated discount the prices file lacks).

What is left is ``(unexplained)`` and counts against ``--tolerance``.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections import defaultdict
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal

from spanledger.pricing.types import TokenUsage
from spanledger.reconcile.compare import Explanation, Row
from spanledger.reconcile.formats import ALL, REQUESTS, TOKEN_TYPES
from spanledger.reports.model_keys import catalog_model

ZERO = Decimal(0)
HUNDRED = Decimal(100)
MILLION = Decimal(1_000_000)
#: what one bill line may be off by its own rounding (Anthropic: 0.01 cent)
LINE_ROUNDING = Decimal("0.0001")
#: a row is explained when what is left is within its lines' rounding or this share of it
ROW_TOLERANCE = Decimal("0.001")
#: a model's discount must fit its whole period this closely (bills round each line)
DISCOUNT_FIT = Decimal("0.0002")
#: a billed unit price matches a catalog price within this share
PRICE_MATCH = Decimal("0.005")
#: service tiers billed at a fixed share of the standard price
TIER_FACTORS = {"batch": Decimal("0.5"), "flex": Decimal("0.5")}
#: priced variants of a token type, against the price spans are priced at: Anthropic's
#: one-hour cache writes cost 2x input, the five-minute ones 1.25x input
VARIANT_FACTORS = {"1h": Decimal("1.6")}
INPUT_SIDE = ("input", "cache_read", "cache_write")

#: (provider, model, token type, day) -> USD per token at the catalog / prices file; None
UnitFn = Callable[[str, str, str, dt.date], Decimal | None]
#: (provider, model, token type, day) -> [(USD per million tokens, since)] every price the
#: model has had for this type, and the prices file's discount % in force (or None)
PricesFn = Callable[[str, str, str, dt.date], tuple[list[tuple[Decimal, str]], Decimal | None]]


def tolerance(amount: Decimal, lines: int = 1) -> Decimal:
    """How far a billed ``amount`` made of ``lines`` bill lines may be off by rounding alone."""
    return max(LINE_ROUNDING * max(lines, 1), abs(amount) * ROW_TOLERANCE)


def row_tolerance(r: Row) -> Decimal:
    return tolerance(r.bill.amount or ZERO, len(r.bill.sources))


def _mtok(unit: Decimal) -> str:
    """USD per token as USD per million tokens, for the reason text."""
    return f"{(unit * MILLION).quantize(Decimal('0.0001')).normalize():f}"


def _percent(p: Decimal) -> str:
    return f"{p.normalize():f}"


def explain(rows: Sequence[Row], unit_price: UnitFn, prices: PricesFn) -> None:
    """Fill each row's explanations, expected amount and what stays unexplained."""
    for r in rows:
        r.unit = _unit(r, unit_price)
    deltas = _input_deltas(rows)
    # "no spans of this model" explains a billed line only where spanledger meters this
    # provider at all; a provider with no spans in the period is an open question
    metered = {r.provider for r in rows if r.metered.all_tokens or r.metered.cost}
    for r in rows:
        r.expected = r.metered.cost if r.bill.amount is not None else None
        _unpriced(r)
        _self_hosted(r)
        if not r.explanations or r.explanations[-1].kind != "self_hosted":
            _tokens(r, deltas, r.provider in metered)
        _tier(r)
        _cache_variants(r)
        _server_tools(r)
    for r in rows:
        _discount_not_billed(r, prices)
        _price_change(r, prices)
    for (provider, model), p in _model_discounts(rows).items():
        for r in rows:
            if (r.provider, r.model) == (provider, model):
                _discount(r, p)
    for r in rows:
        _settle(r)


def _unit(r: Row, unit_price: UnitFn) -> Decimal | None:
    if r.metered.tokens:
        with decimal.localcontext() as ctx:
            ctx.prec = 40
            return r.metered.cost / r.metered.tokens
    if r.token_type in TOKEN_TYPES:
        name = next(iter(sorted(r.metered.names or r.bill.names)), r.model)
        return unit_price(r.provider, name, r.token_type, r.day)
    return None


def _input_deltas(rows: Sequence[Row]) -> dict[tuple[dt.date, str, str], int]:
    """Per day x provider x model: billed minus metered input-side tokens, over all input types."""
    out: dict[tuple[dt.date, str, str], int] = defaultdict(int)
    for r in rows:
        if r.token_type in INPUT_SIDE and r.token_variance is not None:
            out[(r.day, r.provider, r.model)] += r.token_variance
    return out


def _add(r: Row, kind: str, text: str, amount: Decimal | None, tokens: int | None = None,
         explains: bool = True) -> None:
    r.explanations.append(Explanation(kind, text, amount, tokens, explains))
    if amount is not None and r.expected is not None:
        r.expected += amount


def _unpriced(r: Row) -> None:
    m = r.metered
    if not m.unpriced_tokens:
        return
    text = (f"unpriced model: {m.unpriced_calls:,} calls ({m.unpriced_tokens:,} tokens) have no "
            "price in the catalog or the prices file")
    amount: Decimal | None = None
    if r.bill.amount is not None and r.expected is not None:
        if not m.tokens:  # nothing priced: the bill's amount is what they cost
            amount = r.bill.amount - r.expected
        elif r.unit is not None:
            amount = m.unpriced_tokens * r.unit
    _add(r, "unpriced", text, amount, m.unpriced_tokens)


def _tokens(r: Row, deltas: dict[tuple[dt.date, str, str], int], provider_metered: bool) -> None:
    delta = r.token_variance
    m = r.metered
    if (not delta and r.bill.amount and provider_metered and r.token_type != REQUESTS
            and not (m.all_tokens or m.cost or r.bill.tokens)):
        # billed, and not one span of this model on this day: no token counts needed
        _add(r, "not_metered", "not metered: no spans of this model on this day (calls from "
             "services without spanledger)", r.bill.amount - (r.expected or ZERO))
        return
    if not delta:
        return
    money = None if r.unit is None or r.expected is None else delta * r.unit
    group_delta = deltas.get((r.day, r.provider, r.model), 0)
    if r.token_type in INPUT_SIDE and group_delta == 0:
        what = {"input": "uncached input", "cache_read": "cache-read",
                "cache_write": "cache-write"}[r.token_type]
        _add(r, "cache_tokens", f"cache tokens: the bill counts {delta:+,} {what} tokens against "
             "the spans, offset by the other input types", money, delta)
    elif r.token_type == "output" and delta == r.metered.reasoning:
        _add(r, "reasoning_tokens", f"reasoning tokens: {delta:,} reasoning tokens the spans did "
             "not count as output", money, delta)
    elif delta > 0:
        if r.metered.all_tokens:
            text = (f"not metered: {delta:,} tokens on the bill have no span (calls from "
                    "services without spanledger)")
        else:
            text = (f"not metered: no spans of this model on this day ({delta:,} tokens: calls "
                    "from services without spanledger)")
        _add(r, "not_metered", text, money, delta)
    else:
        _add(r, "not_billed", f"{-delta:,} metered tokens are not on the bill", money, delta,
             explains=False)


def _helps(r: Row, adjustment: Decimal) -> bool:
    """Whether moving the expected amount by ``adjustment`` brings it closer to the bill
    (a cause the spans' prices already account for must not be applied twice)."""
    a, e = r.bill.amount, r.expected
    return a is not None and e is not None and abs(a - e - adjustment) < abs(a - e)


def _tier(r: Row) -> None:
    b = r.bill
    if r.expected is None or b.amount is None:
        return
    for tier, billed in sorted(b.tier_amounts.items()):
        if tier == "standard" or not billed:
            continue
        if len(b.tier_amounts) == 1:  # the whole row is this tier
            share = r.expected
        elif b.tokens and b.tier_tokens.get(tier) and r.unit is not None:
            share = b.tier_tokens[tier] * r.unit
        else:
            continue
        factor = TIER_FACTORS.get(tier)
        if factor is not None and _helps(r, share * (factor - 1)):
            _add(r, "tier", f"{tier} tier: billed at x{_percent(factor)} the standard price",
                 share * (factor - 1))
        elif tier == "priority" and share and billed > share and _helps(r, billed - share):
            factor = (billed / share).quantize(Decimal("0.01"))
            _add(r, "tier", f"priority tier: billed at x{_percent(factor)} the standard price",
                 billed - share)


def _cache_variants(r: Row) -> None:
    """One-hour cache writes billed above the five-minute price the spans were priced at."""
    b = r.bill
    if r.token_type != "cache_write" or r.expected is None or b.amount is None:
        return
    for variant, factor in VARIANT_FACTORS.items():
        if not b.variant_amounts.get(variant):
            continue
        if b.variant_tokens.get(variant) and r.unit is not None:
            share = b.variant_tokens[variant] * r.unit
        elif b.variant_amounts[variant] == b.amount:  # every write of the row
            share = r.expected
        else:
            continue
        if _helps(r, share * (factor - 1)):
            _add(r, "cache_tokens", f"{variant} cache writes: billed at x{_percent(factor)} the "
                 "5-minute cache-write price the spans were priced at", share * (factor - 1))


def _server_tools(r: Row) -> None:
    """Per-request charges (web search, code execution): spans carry no price for them."""
    if r.token_type != REQUESTS or not r.bill.amount or r.metered.cost or r.expected is None:
        return
    _add(r, "server_tools", f"{r.display_model or 'server tool'}: billed per request "
         "(server-side tools); spans carry no price for them", r.bill.amount - r.expected)


def _self_hosted(r: Row) -> None:
    m = r.metered
    if r.expected is None or r.bill.amount or not m.cost or m.override_calls < m.priced_calls:
        return
    name = next(iter(sorted(m.names)), r.model)
    if catalog_model(r.provider, name) is not None:
        return
    _add(r, "self_hosted", f"not on the {r.provider} bill: priced from the prices file only "
         "(self-hosted, or billed elsewhere)", -r.expected)


def _model_discounts(rows: Sequence[Row]) -> dict[tuple[str, str], Decimal]:
    """Models billed one round percentage below the metered price over the whole period."""
    billed: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    lines: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows:
        if r.bill.amount is None or r.expected is None or r.token_type == REQUESTS:
            continue
        if any(e.kind in ("unpriced", "self_hosted", "price_change") for e in r.explanations):
            continue
        billed[(r.provider, r.model)] += r.bill.amount
        expected[(r.provider, r.model)] += r.expected
        lines[(r.provider, r.model)] += len(r.bill.sources)
    out = {}
    for key, e in expected.items():
        a = billed[key]
        if e <= 0 or a <= 0 or abs(a - e) <= tolerance(a, lines[key]):
            continue
        with decimal.localcontext() as ctx:
            ctx.prec = 40
            p = ((1 - a / e) * HUNDRED * 2).quantize(Decimal(1), ROUND_HALF_EVEN) / 2
            fit = abs(a - e * (1 - p / HUNDRED))
        if 0 < p < HUNDRED and fit <= max(LINE_ROUNDING * lines[key], a * DISCOUNT_FIT):
            out[key] = p
    return out


def _discount(r: Row, p: Decimal) -> None:
    if r.bill.amount is None or r.expected is None or not r.expected:
        return
    if any(e.kind in ("unpriced", "self_hosted", "price_change") for e in r.explanations):
        return
    _add(r, "discount_missing", f"discount missing from the overrides: billed {_percent(p)}% "
         f"below the metered price (discount_percent: {_percent(p)} for {r.provider} {r.model})",
         -r.expected * p / HUNDRED)


def _off(r: Row) -> bool:
    """Whether the bill and the expected amount still differ by more than rounding."""
    a, e = r.bill.amount, r.expected
    return (a is not None and e is not None and e > 0 and a > 0
            and abs(a - e) > row_tolerance(r))


def _price_history(r: Row, prices: PricesFn) -> tuple[list[tuple[Decimal, str]], Decimal | None]:
    """Every price of the row's model under each name it goes by (the spans' names first:
    those are what a prices file is written for)."""
    periods: list[tuple[Decimal, str]] = []
    discount = None
    for name in [*sorted(r.metered.names), *sorted(r.bill.names)] or [r.model]:
        found, disc = prices(r.provider, name, r.token_type, r.day)
        periods += [p for p in found if p not in periods]
        discount = discount if discount is not None else disc
    return periods, discount


def _price_change(r: Row, prices: PricesFn) -> None:
    """Billed at another price the model has had (catalog or prices file) than the metered one."""
    if not _off(r) or r.token_type not in TOKEN_TYPES or r.unit is None:
        return
    a, e = r.bill.amount, r.expected
    assert a is not None and e is not None
    if any(x.kind == "discount_not_billed" for x in r.explanations):
        return
    periods, _ = _price_history(r, prices)
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        billed_unit = (a / r.bill.tokens if r.bill.tokens else r.unit * a / e) * MILLION
        metered_unit = r.unit * MILLION
        def near(unit: Decimal, price: Decimal) -> bool:
            return abs(unit - price) <= price * PRICE_MATCH

        # both sides at a price the model really had, and not the same one
        billed = [(p, since) for p, since in periods if p and near(billed_unit, p)]
        metered = [p for p, _ in periods if p and near(metered_unit, p)]
        for price, since in billed:
            if metered and all(not near(m, price) for m in metered):
                _add(r, "price_change", f"price change: billed at {_mtok(price / MILLION)}/Mtok "
                     f"({since}), metered at {_mtok(r.unit)}/Mtok", a - e)
                return


def _discount_not_billed(r: Row, prices: PricesFn) -> None:
    """Billed above the metered price by exactly the prices file's discount."""
    if not _off(r) or r.token_type not in TOKEN_TYPES:
        return
    a, e = r.bill.amount, r.expected
    assert a is not None and e is not None
    if a <= e:
        return
    _, discount = _price_history(r, prices)
    if not discount or discount >= HUNDRED:
        return
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        undone = e / (1 - discount / HUNDRED)
        if abs(a - undone) > row_tolerance(r):
            return
        p = ((a / e - 1) * HUNDRED).quantize(Decimal("0.1"))
    _add(r, "discount_not_billed", f"billed {_percent(p)}% above the metered price: the "
         f"overrides' discount ({_percent(discount)}%) is not on the bill", a - e)


#: causes that account for a difference in token counts
TOKEN_CAUSES = frozenset({"cache_tokens", "reasoning_tokens", "not_metered", "self_hosted"})


def _settle(r: Row) -> None:
    """What no explanation accounts for; a row within the bill's rounding is settled.

    Findings that explain nothing (metered tokens the bill lacks) moved the
    expected amount too, so their amounts count as unexplained.
    """
    a, e = r.bill.amount, r.expected
    if a is not None and e is not None:
        rest = a - e + sum((x.amount or ZERO for x in r.explanations if not x.explains), ZERO)
        r.unexplained = rest if abs(rest) > row_tolerance(r) else ZERO
    if r.bill.tokens is None:
        return
    delta = r.token_variance or 0
    explained = any(x.kind in TOKEN_CAUSES for x in r.explanations)
    r.unexplained_tokens = 0 if explained or not delta else delta


#: tokens of the probe call a unit price is read from: small enough to stay below every
#: long-context tier (those start at 128k-200k input tokens per call)
UNIT_PROBE = 1_000


def unit_usage(token_type: str) -> TokenUsage | None:
    """:data:`UNIT_PROBE` tokens of ``token_type`` as one call's usage (to read a unit price)."""
    n = UNIT_PROBE
    return {"input": TokenUsage(input_tokens=n), "cache_read": TokenUsage(n, 0, n, 0),
            "cache_write": TokenUsage(n, 0, 0, n), "output": TokenUsage(output_tokens=n)
            }.get(token_type)


__all__ = ["ALL", "explain", "tolerance", "unit_usage"]
