"""Helpers for the pricing tests: independent reference prices and small files.

The reference for catalog prices is ``genai_prices.calc_price`` itself (the
slow, name-matching path), never our compiled rate cards; the reference for
override prices is arithmetic written out in the test.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from decimal import Decimal
from pathlib import Path

from genai_prices import Usage, calc_price
from genai_prices.types import PriceCalculation

from spanledger.pricing.types import Cost, TokenUsage

#: the tolerance every cost assertion uses (USD)
TOLERANCE = Decimal("1e-9")
MILLION = Decimal(1_000_000)


def day(year: int, month: int, d: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(year, month, d, hour, tzinfo=dt.UTC)


def ns(at: dt.datetime) -> int:
    """Span start time in ns since the epoch."""
    return int(at.timestamp()) * 1_000_000_000


def genai_usage(usage: TokenUsage) -> Usage:
    """The same usage in genai-prices' terms (its input_tokens also includes the cache)."""
    values = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
    }
    if usage.reasoning_tokens:
        values["output_reasoning_tokens"] = usage.reasoning_tokens
    return Usage(**values)


def reference(
    model: str, provider_id: str | None, usage: TokenUsage, at: dt.datetime
) -> PriceCalculation:
    return calc_price(
        genai_usage(usage), model, provider_id=provider_id, genai_request_timestamp=at
    )


def assert_matches(cost: Cost | None, ref: PriceCalculation, factor: Decimal = Decimal(1)) -> None:
    """Total, output and input-side parts equal genai-prices' to 1e-9 USD (times ``factor``)."""
    assert cost is not None
    assert abs(cost.total - ref.total_price * factor) <= TOLERANCE, (cost, ref)
    assert abs(cost.output - ref.output_price * factor) <= TOLERANCE, (cost, ref)
    input_side = cost.input + cost.cache_read + cost.cache_write
    assert abs(input_side - (ref.total_price - ref.output_price) * factor) <= TOLERANCE, (cost, ref)


def hand_cost(
    usage: TokenUsage,
    input: str,
    output: str,
    cache_read: str,
    cache_write: str,
    discount_percent: str = "0",
) -> Decimal:
    """Override price written out: uncached input, output, cache reads, cache writes."""
    uncached = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
    total = (
        uncached * Decimal(input)
        + usage.output_tokens * Decimal(output)
        + usage.cache_read_tokens * Decimal(cache_read)
        + usage.cache_write_tokens * Decimal(cache_write)
    ) / MILLION
    return total * (100 - Decimal(discount_percent)) / 100


def write(tmp_path: Path, text: str, name: str = "prices.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path
