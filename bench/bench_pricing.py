"""Micro-benchmark of the pricing hot path: ``python bench/bench_pricing.py``.

Prints microseconds per call for a plain span, a cached GenAI span (plain
dict as the collector passes it, and the SDK's attribute proxy as the
processor passes it) and genai-prices' own ``calc_price`` for comparison.
Numbers only, no thresholds: machines differ; see the pricing report.
"""

from __future__ import annotations

import datetime as dt
import timeit
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from genai_prices import Usage, calc_price
from opentelemetry.attributes import BoundedAttributes

from spanledger.pricing.catalog import PriceCatalog
from spanledger.pricing.span_pricing import price_span
from spanledger.pricing.types import TokenUsage

PLAIN = {
    "http.request.method": "GET",
    "url.full": "https://example.com/api/items?id=7",
    "http.response.status_code": 200,
    "server.address": "example.com",
    "server.port": 443,
    "network.protocol.version": "1.1",
    "user_agent.original": "python-requests/2.32",
    "spanledger.team": "search",
    "spanledger.feature": "rag",
}
GENAI = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 12_000,
    "gen_ai.usage.output_tokens": 800,
    "gen_ai.usage.cache_read.input_tokens": 4_000,
    "server.address": "api.openai.com",
    "spanledger.team": "search",
    "spanledger.feature": "rag",
}


def sdk_attributes(attrs: dict[str, Any]) -> Any:
    """What ``ReadableSpan.attributes`` returns: a read-only proxy over BoundedAttributes."""
    return MappingProxyType(BoundedAttributes(128, attrs, immutable=True))


def per_call_us(fn: Callable[[], object], number: int) -> float:
    best = min(timeit.repeat(fn, number=number, repeat=5))
    return best / number * 1e6


def main() -> None:
    catalog = PriceCatalog()
    start = 1_793_000_000_000_000_000
    at = dt.datetime.fromtimestamp(start / 1e9, dt.UTC)
    usage = TokenUsage(12_000, 800, 4_000)
    gp_usage = Usage(input_tokens=12_000, output_tokens=800, cache_read_tokens=4_000)
    plain_sdk, genai_sdk = sdk_attributes(PLAIN), sdk_attributes(GENAI)
    price_span(catalog, GENAI, start)  # warm the caches
    rows = [
        ("price_span plain span (dict)", lambda: price_span(catalog, PLAIN, start), 200_000),
        (
            "price_span plain span (SDK attributes)",
            lambda: price_span(catalog, plain_sdk, start),
            200_000,
        ),
        ("price_span cached GenAI span (dict)", lambda: price_span(catalog, GENAI, start), 50_000),
        (
            "price_span cached GenAI span (SDK attributes)",
            lambda: price_span(catalog, genai_sdk, start),
            50_000,
        ),
        (
            "price_span + attributes() (dict)",
            lambda: price_span(catalog, GENAI, start).attributes(),
            50_000,
        ),  # type: ignore[union-attr]
        (
            "catalog.price_tokens (cached)",
            lambda: catalog.price_tokens("openai", "gpt-4o-2024-08-06", usage, at),
            50_000,
        ),
        (
            "genai_prices.calc_price",
            lambda: calc_price(
                gp_usage, "gpt-4o-2024-08-06", provider_id="openai", genai_request_timestamp=at
            ),
            2_000,
        ),
    ]
    for name, fn, number in rows:
        print(f"{name:48s} {per_call_us(fn, number):8.2f} us")


if __name__ == "__main__":
    main()
