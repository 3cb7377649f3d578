"""Sane bounds for one call: what the collector refuses to store as a priced call.

A chargeback is only as good as its worst row. One span with 2^63-1 input tokens
or a cost of 1e26 USD wraps a UInt64 or Decimal(38, 12) sum and turns a team's
month into nonsense; a negative or NaN cost lowers someone's bill. So before a
span is priced and stored, its token counts and every cost it carries are checked
against per-call ceilings (``trust`` in the collector config). A span outside them
goes to the quarantine with the reason (``spanledger quarantine list``), never into
the rollups; it can be fixed and sent again.

- A token count above ``max_tokens`` (default 10M: five times the largest context
  window sold today), or negative, is ``usage_out_of_bounds``.
- A cost the span arrives with (the service's own figure, or another tool's) that is
  negative, not finite or above ``max_cost`` (default 1,000 USD), or the collector's
  own price above ``max_cost``, is ``cost_out_of_bounds``.

The schema enforces coarser hard bounds of its own for writers that bypass the
collector (the contrib exporter): :data:`SCHEMA_MAX_TOKENS` and
:data:`SCHEMA_MAX_COST_USD` are the limits ``clickhouse/0010_trust.sql`` marks
``invalid`` beyond. The collector's ceilings may be raised up to them, never past:
what the collector stores, the views always count. ARCHITECTURE.md ("Bounds")
has the arithmetic that no sum can overflow with them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from spanledger import semconv
from spanledger.pricing.types import PICO_PER_USD

#: quarantine reason codes (``spanledger_quarantine.Reason``)
USAGE_OUT_OF_BOUNDS = "usage_out_of_bounds"
COST_OUT_OF_BOUNDS = "cost_out_of_bounds"

#: the schema's hard bounds (clickhouse/0010_trust.sql): per token count and per cost
SCHEMA_MAX_TOKENS = 100_000_000
SCHEMA_MAX_COST_USD = 1_000_000

DEFAULT_MAX_TOKENS = 10_000_000
DEFAULT_MAX_COST_USD = 1000.0
#: a reported cost that differs from ours by more than this share (or one pico-dollar)
#: is a disagreement
DEFAULT_TOLERANCE = 1e-6

#: every attribute a span may carry a cost in: checked before anything is read from it
COST_NAMES: tuple[str, ...] = (
    semconv.COST, semconv.COST_AMOUNT, semconv.LITELLM_COST, semconv.OPENINFERENCE_COST,
    *(n for n in semconv.REPORTED_COST_SOURCES
      if n not in (semconv.COST, semconv.COST_AMOUNT, semconv.LITELLM_COST)),
)
COST_NAME_SET = frozenset(COST_NAMES)


@dataclass(frozen=True, slots=True)
class Bounds:
    """The per-call ceilings and the disagreement tolerance (picklable: sent to workers)."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    max_cost_usd: float = DEFAULT_MAX_COST_USD
    tolerance: float = DEFAULT_TOLERANCE

    @property
    def max_cost_pico(self) -> int:
        return int(Decimal(repr(self.max_cost_usd)) * PICO_PER_USD)

    def bad_cost(self, attrs: Mapping[str, str]) -> str | None:
        """Why a cost on the span is out of bounds (None: none is).

        A value that is no number at all ("n/a") is not a cost and is left alone, as
        the readers do; "NaN", "-Inf", "-5" and "1e30" are numbers, and refused.
        """
        limit = self.max_cost_usd
        for name in COST_NAMES:
            text = attrs.get(name)
            if text is None:
                continue
            try:
                value = float(text)
            except (TypeError, ValueError):
                continue
            if not math.isfinite(value):
                return f"{name} = {text[:40]!s}: not a finite number"
            if value < 0:
                return f"{name} = {text[:40]!s}: negative"
            if value > limit:
                return f"{name} = {text[:40]!s}: above the ceiling of {limit:g} USD per call"
        return None

    def bad_counts(self, counts: tuple[int, ...] | None) -> str | None:
        """Why the normalized usage of a call is out of bounds (None: it is not)."""
        if counts is None:
            return None
        limit = self.max_tokens
        for label, value in zip(_COUNT_LABELS, counts, strict=False):
            if value > limit:
                return f"{label} tokens {value}: above the ceiling of {limit} per call"
        return None

    def bad_price(self, parts: tuple[int, ...] | list[int] | None) -> str | None:
        """Why the collector's own price of a call is out of bounds (None: it is not)."""
        if parts is None:
            return None
        total = sum(parts)
        if total > self.max_cost_pico:
            return (f"priced at {total / PICO_PER_USD:.6f} USD: above the ceiling of "
                    f"{self.max_cost_usd:g} USD per call")
        return None

    def disagrees(self, reported: float, ours_pico: int | None) -> bool:
        """Does a reported cost differ from ours beyond the tolerance? (None: we have none.)"""
        if ours_pico is None:
            return reported > 0
        ours = ours_pico / PICO_PER_USD
        return abs(reported - ours) > max(1e-12, self.tolerance * max(abs(reported), abs(ours)))


_COUNT_LABELS = ("input", "output", "cache read", "cache write", "reasoning", "1-hour cache write")


def negative_count(attrs: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    """The first of ``names`` holding a negative number (the readers take it as absent,
    which would drop the call's usage unseen), as ``name = value``; else None."""
    for name in names:
        text = attrs.get(name)
        if text is not None and text[:1] == "-":
            try:
                negative = float(text) < 0
            except ValueError:
                continue
            if negative:
                return f"{name} = {text[:40]}: negative"
    return None
