"""Rate cards: a price list compiled once, then applied to a call in microseconds.

``genai_prices.calc_price`` spends ~120 us a call, mostly matching the model
name and re-deriving which token counts each price applies to. Both depend
only on the price list, not on the call, so :func:`compile_model_price` does
that work once per genai-prices ``ModelPrice``: for every priced unit it keeps
the price per token and the token count it applies to, as a linear
combination of the five counts we read from a span. That mirrors genai-prices'
own "leaf" rule (a price applies to the tokens not covered by a more specific
price): input_mtok covers input minus cache reads minus cache writes, but only
when the model has cache prices; a model without a cache_read price charges
cached tokens at the input price, exactly as genai-prices does.

Tiered prices (a rate for all tokens once the prompt crosses a threshold, as
genai-prices models them) are picked by total input tokens.

Integer pico-dollars: a genai-prices rate per million tokens with at most six
decimals is a whole number of pico-dollars (1e-12 USD, the stored scale) per
token, so ``tokens x rate`` is exact integer arithmetic and needs no rounding
at all. Cards whose every rate is such a whole number get an integer plan
(:meth:`RateCard.pico`), several times cheaper than Decimal multiply + quantize;
anything else (fractional pico rates, discount factors) keeps the Decimal path,
so results are identical either way (tests/test_pricing_pico.py checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from genai_prices.data_units import unit_data
from genai_prices.types import ModelPrice, TieredPrices

from spanledger.pricing.types import USD_QUANTUM, USD_SCALE, ZERO, Cost, TokenUsage

#: a pico amount below this converts to Decimal without rounding (28-digit context)
_EXACT_PICO = 10**27

_new = object.__new__
_set_input, _set_output, _set_cache_read, _set_cache_write, _set_source = (
    Cost.__dict__[name].__set__  # the slot descriptors of the frozen dataclass
    for name in ("input", "output", "cache_read", "cache_write", "source")
)


def make_cost(
    input: Decimal, output: Decimal, cache_read: Decimal, cache_write: Decimal, source: str
) -> Cost:
    """``Cost(...)`` at half the price, for the per-span path.

    The frozen dataclass ``__init__`` pays an ``object.__setattr__`` call per
    field (~0.4 us in all); writing the slots through their descriptors gives
    the same object (Cost has no ``__post_init__``).
    """
    cost = _new(Cost)
    _set_input(cost, input)
    _set_output(cost, output)
    _set_cache_read(cost, cache_read)
    _set_cache_write(cost, cache_write)
    _set_source(cost, source)
    return cost


def cost_from_pico(parts: list[int] | tuple[int, ...], source: str) -> Cost:
    """The :class:`Cost` of integer pico-dollar parts.

    Each part is exact at scale 1e-12: the same Decimal, exponent included,
    that quantizing the Decimal product gives.
    """
    a, b, c, d = parts
    if a < _EXACT_PICO and b < _EXACT_PICO and c < _EXACT_PICO and d < _EXACT_PICO:
        p = USD_QUANTUM
        return make_cost(Decimal(a) * p, Decimal(b) * p, Decimal(c) * p, Decimal(d) * p, source)
    big = [Decimal(x).scaleb(-USD_SCALE).quantize(USD_QUANTUM) for x in parts]
    return make_cost(big[0], big[1], big[2], big[3], source)


def cost_to_pico(cost: Cost) -> tuple[int, int, int, int]:
    """Integer pico-dollar parts of a Cost (exact: its parts are quantized to 1e-12)."""
    return (
        int(cost.input.scaleb(USD_SCALE)),
        int(cost.output.scaleb(USD_SCALE)),
        int(cost.cache_read.scaleb(USD_SCALE)),
        int(cost.cache_write.scaleb(USD_SCALE)),
    )


def _as_pico(price: Decimal) -> int | None:
    """Whole pico-dollars per unit, or None when the price is finer than that."""
    scaled = price.scaleb(USD_SCALE)
    whole = int(scaled)
    return whole if scaled == whole else None


PicoStep = tuple[int, int, tuple[tuple[int, int], ...], int, tuple[tuple[int, int], ...]]
PicoFunction = Callable[[tuple[int, ...]], list[int]]


def _evaluate(plan: tuple[Any, ...], u: tuple[int, ...], zero: Any) -> list[Any]:
    """Cost parts [input, output, cache_read, cache_write] of usage ``u`` under ``plan``.

    One rule for both number types: Decimal USD per token (:meth:`RateCard.parts`)
    and integer pico-dollars per token (what :func:`_pico_function` unrolls for
    :meth:`RateCard.pico`, and the reference it is tested against). Each step counts
    its tokens (a signed sum of usage counts, plus a constant for per-request
    prices) and takes the highest tier whose input threshold the call exceeds.
    """
    parts = [zero, zero, zero, zero]
    for part, n, terms, price, tiers in plan:
        for i, sign in terms:
            n += u[i] * sign
        if n <= 0:
            continue
        for threshold, tier_price in tiers:
            if u[0] > threshold:
                price = tier_price
                break
        parts[part] += price * n
    return parts


def _pico_function(plan: tuple[PicoStep, ...]) -> PicoFunction:
    """:func:`_evaluate` of one integer plan, unrolled into a function of the usage alone.

    A card's plan is fixed once compiled, so its loop (steps, signed terms, tiers)
    can be written out as straight-line integer arithmetic: the same rule, a third
    of the time on the per-span path. Only integers from the plan go into the
    source (prices in pico-dollars, thresholds, usage indexes), never a name or a
    string from a price list; tests/test_pricing_pico.py checks it against the
    Decimal :func:`_evaluate` on every catalog card, tiers and per-request prices included.
    """
    lines = ["def pico(u):", "    u0, u1, u2, u3, u4, u5 = u", "    p0 = p1 = p2 = p3 = 0"]
    for part, constant, terms, price, tiers in plan:
        count = " ".join([str(int(constant))] + [
            f"{'+' if sign > 0 else '-'} {abs(int(sign))} * u{int(i)}" for i, sign in terms])
        rate = str(int(price))
        for threshold, tier_price in reversed(tiers):  # highest threshold tested first
            rate = f"({int(tier_price)} if u0 > {int(threshold)} else {rate})"
        lines += [f"    n = {count}", "    if n > 0:", f"        p{int(part)} += {rate} * n"]
    lines.append("    return [p0, p1, p2, p3]")
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), "<spanledger rate card>", "exec"), namespace)
    return namespace["pico"]  # type: ignore[no-any-return]


# parts of a Cost
INPUT, OUTPUT, CACHE_READ, CACHE_WRITE = range(4)
#: the usage counts we read from spans, in this order, under genai-prices' names
REPORTED = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_reasoning_tokens",
    "cache_write_1h_tokens",
)
MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class _Unit:
    usage_key: str
    price_key: str
    per: int
    dims: frozenset[tuple[str, str]]


_UNITS_BY_PRICE_KEY: dict[str, _Unit] = {
    raw.get("price_key", key): _Unit(
        key,
        raw.get("price_key", key),
        int(raw["per"]),
        frozenset(raw.get("dimensions", {}).items()),
    )
    for key, raw in unit_data.items()
}


def _part_of(unit: _Unit) -> int:
    dims = dict(unit.dims)
    if dims.get("direction") == "output":
        return OUTPUT
    token_type = dims.get("token_type")
    if token_type == "cache_read":
        return CACHE_READ
    if token_type == "cache_write":
        return CACHE_WRITE
    return INPUT  # input tokens, and per-request prices, which belong to no direction


@dataclass(frozen=True, slots=True)
class Rate:
    """One priced unit: cost = price_per_unit * (coef . usage + constant)."""

    part: int
    coef: tuple[int, int, int, int, int, int]
    constant: int
    #: USD per single unit (per token), or tiers [(threshold, price per unit)] ascending
    price: Decimal
    tiers: tuple[tuple[int, Decimal], ...] = ()


class RateCard:
    """A compiled price list; :meth:`cost` prices one call."""

    __slots__ = ("_pico_fn", "_pico_plan", "_plan", "rates", "tiered")

    def __init__(self, rates: tuple[Rate, ...]) -> None:
        self.rates = rates
        self.tiered = any(r.tiers for r in rates)
        # hot-loop form: (part, constant, ((usage index, sign), ...), price, tiers highest first)
        self._plan = tuple(
            (
                r.part,
                r.constant,
                tuple((i, c) for i, c in enumerate(r.coef) if c),
                r.price,
                tuple(reversed(r.tiers)),
            )
            for r in rates
        )
        #: the same plan in whole pico-dollars per unit; None when a price is finer than that
        self._pico_plan: tuple[PicoStep, ...] | None = None
        self._pico_fn: PicoFunction | None = None
        pico_plan: list[PicoStep] = []
        for part, constant, terms, price, tiers in self._plan:
            pico_price = _as_pico(price)
            pico_tiers = [(t, _as_pico(p)) for t, p in tiers]
            if pico_price is None or any(p is None for _, p in pico_tiers):
                break
            pico_plan.append(
                (part, constant, terms, pico_price, tuple((t, p or 0) for t, p in pico_tiers))
            )
        else:
            self._pico_plan = tuple(pico_plan)
            self._pico_fn = _pico_function(self._pico_plan)

    @property
    def pico_function(self) -> PicoFunction | None:
        """:meth:`pico` without the method frame (the per-span path calls it directly)."""
        return self._pico_fn

    @property
    def exact_pico(self) -> bool:
        """True when :meth:`pico` prices every call of this card (all rates whole pico)."""
        return self._pico_plan is not None

    def pico(self, u: tuple[int, int, int, int, int, int]) -> list[int] | None:
        """Exact cost parts [input, output, cache_read, cache_write] in integer pico-dollars
        for usage ``u`` = (input, output, cache_read, cache_write, reasoning,
        cache_write_1h): the rule of
        :meth:`parts` without Decimal arithmetic, which is most of the price of a span.
        None when a rate is finer than a pico-dollar (then :meth:`cost` uses Decimals)."""
        fn = self._pico_fn
        return None if fn is None else fn(u)

    def parts(self, usage: TokenUsage) -> list[Decimal]:
        """Unrounded cost parts [input, output, cache_read, cache_write]."""
        return _evaluate(self._plan, usage.counts(), ZERO)

    def cost(self, usage: TokenUsage, source: str, factor: Decimal | None = None) -> Cost:
        """The call's cost; ``factor`` (e.g. 0.85 for a 15% discount) scales every part."""
        if factor is None and self._pico_plan is not None:
            pico = self.pico(usage.counts())
            return cost_from_pico(pico, source)  # type: ignore[arg-type]
        return self.decimal_cost(usage, source, factor)

    def decimal_cost(
        self, usage: TokenUsage, source: str, factor: Decimal | None = None
    ) -> Cost:
        """:meth:`cost` in Decimal arithmetic: any rate; the reference the pico path matches."""
        p = self.parts(usage)
        if factor is not None:
            p = [x * factor for x in p]
        # = spanledger.pricing.types.usd(), inlined: this runs on every priced span
        q, r = USD_QUANTUM, ROUND_HALF_EVEN
        return make_cost(
            p[0].quantize(q, r),
            p[1].quantize(q, r),
            p[2].quantize(q, r),
            p[3].quantize(q, r),
            source,
        )


def _per_unit(value: Decimal, per: int) -> Decimal:
    return value / per


def compile_model_price(model_price: ModelPrice) -> RateCard:
    """Compile a genai-prices ``ModelPrice`` (see the module docstring for the rule)."""
    priced: list[tuple[_Unit, Any]] = []
    for key, value in model_price.__dict__.items():
        if key.startswith("_") or value is None or key not in _UNITS_BY_PRICE_KEY:
            continue
        priced.append((_UNITS_BY_PRICE_KEY[key], value))
    token_units = [(u, v) for u, v in priced if u.usage_key != "requests"]
    # most specific first, as genai-prices' compute_leaf_values does
    token_units.sort(key=lambda uv: (-len(uv[0].dims), uv[0].usage_key))
    leaves: dict[str, tuple[int, ...]] = {}
    for unit, _ in token_units:
        own = tuple(1 if unit.usage_key == k else 0 for k in REPORTED)
        vec = list(own)
        for other, _ in token_units:
            if other is not unit and unit.dims <= other.dims:
                vec = [a - b for a, b in zip(vec, leaves[other.usage_key], strict=True)]
        leaves[unit.usage_key] = tuple(vec)
    rates: list[Rate] = []
    for unit, value in priced:
        if unit.usage_key == "requests":
            coef, constant = (0, 0, 0, 0, 0, 0), 1
        else:
            coef, constant = leaves[unit.usage_key], 0
            if not any(coef):
                continue  # a unit we never report (audio, images...): count is 0
        if isinstance(value, TieredPrices):
            rates.append(
                Rate(
                    _part_of(unit),
                    coef,
                    constant,
                    _per_unit(value.base, unit.per),  # type: ignore[arg-type]
                    tuple((t.start, _per_unit(t.price, unit.per)) for t in value.tiers),
                )
            )
        else:
            rates.append(Rate(_part_of(unit), coef, constant, _per_unit(value, unit.per)))  # type: ignore[arg-type]
    return RateCard(tuple(rates))


def token_card(
    input_mtok: Decimal, output_mtok: Decimal, cache_read_mtok: Decimal, cache_write_mtok: Decimal
) -> RateCard:
    """A plain per-million-token card (overrides): cached tokens leave the input count."""
    return RateCard(
        (
            Rate(INPUT, (1, 0, -1, -1, 0, 0), 0, input_mtok / MILLION),
            Rate(OUTPUT, (0, 1, 0, 0, 0, 0), 0, output_mtok / MILLION),
            Rate(CACHE_READ, (0, 0, 1, 0, 0, 0), 0, cache_read_mtok / MILLION),
            Rate(CACHE_WRITE, (0, 0, 0, 1, 0, 0), 0, cache_write_mtok / MILLION),
        )
    )


def base_price(value: Any) -> Decimal | None:
    """Per-million price of a genai-prices value (the base rate of tiered prices)."""
    if isinstance(value, TieredPrices):
        return value.base
    return value if isinstance(value, Decimal) else None
