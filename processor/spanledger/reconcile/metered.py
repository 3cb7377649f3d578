"""What spanledger metered, per day x provider x model x token type, from ``llm_calls``.

A bill splits a model's cost by token type (input, cached input, cache writes,
output); ``llm_cost_daily`` keeps one cost per model, so this reads the cost
parts from ``llm_calls`` (one month is one GROUP BY over its rows), through
the same row reader as every report query. Aggregate spans are left out, as in
every rollup; unpriced calls are kept with their tokens (they have no cost).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from spanledger.reconcile.formats import TOKEN_TYPES
from spanledger.reports.period import Period
from spanledger.reports.queries import Col, day_filter, money, parse_day, read_rows
from spanledger.store.base import Store

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class MeteredRow:
    """Calls of one day x provider x model x status, with tokens and cost per token type."""

    day: dt.date
    provider: str
    model: str
    embeddings: bool
    status: str
    calls: int
    input: int
    cache_read: int
    cache_write: int
    output: int
    reasoning: int
    cost_input: Decimal
    cost_cache_read: Decimal
    cost_cache_write: Decimal
    cost_output: Decimal
    #: priced calls whose price came from the prices file (``override:...``)
    override_calls: int

    def tokens(self, token_type: str) -> int:
        """Tokens of one type; ``input`` is input billed at the input rate (no cache)."""
        return int(getattr(self, token_type))

    def cost(self, token_type: str) -> Decimal:
        return ZERO if self.status != "priced" else getattr(self, f"cost_{token_type}")

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens(t) for t in TOKEN_TYPES)


_COLS = (
    Col("day", "toString(Day)", parse_day), Col("provider", "toString(Provider)", str),
    Col("model", "toString(Model)", str),
    Col("embeddings", "Operation = 'embeddings'", bool),
    Col("status", "toString(Status)", str), Col("calls", "count()"),
    # uncached input, read as the pricing reads it: InputTokens includes the cache (every
    # convention is normalized to that when the span is priced), never below zero
    Col("input", "sum(greatest(toInt64(InputTokens) - toInt64(CacheReadTokens) "
                 "- toInt64(CacheWriteTokens), 0))"),
    Col("cache_read", "sum(CacheReadTokens)"), Col("cache_write", "sum(CacheWriteTokens)"),
    Col("output", "sum(OutputTokens)"), Col("reasoning", "sum(ReasoningTokens)"),
    Col("cost_input", "toString(sum(CostInput))", money),
    Col("cost_cache_read", "toString(sum(CostCacheRead))", money),
    Col("cost_cache_write", "toString(sum(CostCacheWrite))", money),
    Col("cost_output", "toString(sum(CostOutput))", money),
    Col("override_calls", "countIf(Status = 'priced' AND startsWith(PriceSource, 'override:'))"),
)


def fetch_metered(store: Store, period: Period) -> list[MeteredRow]:
    """Every priced and unpriced call of ``period``, summed per key."""
    rest = (f"FROM llm_calls WHERE Status NOT IN ('aggregate', 'duplicate') "
            f"AND {day_filter(period)} "
            "GROUP BY Day, Provider, Model, Operation = 'embeddings', Status")
    return [MeteredRow(**r) for r in read_rows(store, _COLS, rest)]
