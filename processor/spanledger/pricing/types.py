"""Value types shared by the catalog, the span processor and the collector.

Money is :class:`~decimal.Decimal` quantized to 1e-12 USD (the scale of the
ClickHouse ``Decimal(38, 12)`` columns), so a cost survives span attribute ->
OTLP -> ClickHouse without a rounding step anywhere on the way.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

#: decimal places of every stored amount (ClickHouse ``Decimal(38, 12)``): money is counted in
#: pico-dollars, and this module is the one home of that scale (everything else imports it)
USD_SCALE = 12
#: the smallest amount stored anywhere, one pico-dollar: ``Decimal(n) * USD_QUANTUM`` is n
#: pico-dollars at the stored scale
USD_QUANTUM = Decimal(1).scaleb(-USD_SCALE)
#: pico-dollars in one USD, for integer pico-dollar arithmetic (``pico / PICO_PER_USD`` is the
#: correctly rounded float of the amount)
PICO_PER_USD = 10**USD_SCALE
ZERO = Decimal(0)


def usd(value: Decimal) -> Decimal:
    """Round a USD amount to the stored scale (banker's rounding, no drift in sums)."""
    return value.quantize(USD_QUANTUM, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Usage of one call, normalized to the GenAI semconv meaning.

    ``input_tokens`` is the total input *including* cache reads and cache
    writes (what OpenAI reports, and what the Anthropic instrumentation
    reports after adding them up); the cache counts say how much of it was
    billed at the cache rates. ``cache_write_1h_tokens`` is the part of the
    cache writes made with a one-hour time to live (Anthropic bills them at a
    higher rate than the default 5-minute writes).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_1h_tokens: int = 0

    def counts(self) -> tuple[int, int, int, int, int, int]:
        """(input, output, cache_read, cache_write, reasoning, cache_write_1h): the order
        rate plans read."""
        return (self.input_tokens, self.output_tokens, self.cache_read_tokens,
                self.cache_write_tokens, self.reasoning_tokens, self.cache_write_1h_tokens)

    @property
    def uncached_input_tokens(self) -> int:
        return max(self.input_tokens - self.cache_read_tokens - self.cache_write_tokens, 0)

    @property
    def is_empty(self) -> bool:
        return not (self.input_tokens or self.output_tokens or self.cache_read_tokens
                    or self.cache_write_tokens)


@dataclass(frozen=True, slots=True)
class Cost:
    """A priced call: the parts add up to :attr:`total` exactly."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    #: which catalog priced it, e.g. ``genai-prices@0.2.3`` or ``override:prices.yaml``
    source: str

    @property
    def total(self) -> Decimal:
        return self.input + self.output + self.cache_read + self.cache_write
