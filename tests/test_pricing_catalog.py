"""Catalog prices (genai-prices) vs genai-prices' own calc_price, to 1e-9 USD."""

from __future__ import annotations

import warnings
from decimal import Decimal

import pytest
from genai_prices.data import providers
from genai_prices.types import ModelPrice

from spanledger.pricing.catalog import PriceCatalog
from spanledger.pricing.rates import compile_model_price
from spanledger.pricing.types import TokenUsage
from support.pricing import TOLERANCE, assert_matches, day, genai_usage, reference

AT = day(2026, 11, 1)
USAGES = [
    TokenUsage(1000, 500),
    TokenUsage(12_345, 678, cache_read_tokens=10_000),
    TokenUsage(50_000, 2_000, cache_read_tokens=20_000, cache_write_tokens=5_000),
    TokenUsage(
        300_000, 4_000, cache_read_tokens=100_000, cache_write_tokens=50_000
    ),  # above 200k/272k tiers
    TokenUsage(7, 9_000, reasoning_tokens=8_000),
    TokenUsage(0, 0),
]


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return PriceCatalog()


@pytest.mark.parametrize(
    ("otel_provider", "model", "genai_provider"),
    [
        ("openai", "gpt-4o", "openai"),
        ("openai", "gpt-4o-mini-2024-07-18", "openai"),
        ("anthropic", "claude-sonnet-4-5", "anthropic"),  # tiered above 200k input tokens
        ("anthropic", "claude-haiku-4-5", "anthropic"),
        ("aws.bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", "aws"),
        ("gcp.vertex_ai", "gemini-2.5-pro", "google"),
        ("gcp.gemini", "gemini-2.5-flash", "google"),
        ("azure.ai.openai", "gpt-4o-mini", "azure"),
        ("openai", "gpt-5.6-luna", "openai"),  # tiered and time-conditional
        ("perplexity", "sonar-deep-research", "perplexity"),  # separate reasoning price
        ("perplexity", "sonar", "perplexity"),  # per-request price
        ("deepseek", "deepseek-chat", "deepseek"),  # time-of-day prices
    ],
)
@pytest.mark.parametrize("usage", USAGES, ids=lambda u: f"in{u.input_tokens}")
def test_catalog_price_equals_calc_price(
    catalog: PriceCatalog, otel_provider: str, model: str, genai_provider: str, usage: TokenUsage
) -> None:
    for at in (AT, day(2026, 11, 1, hour=17), day(2025, 1, 15)):
        cost = catalog.price_tokens(otel_provider, model, usage, at)
        assert_matches(cost, reference(model, genai_provider, usage, at))
        assert cost is not None and cost.source == "genai-prices@0.2.3"


def test_every_catalog_price_compiles_to_the_same_cost() -> None:
    """Every price period of every model: compiled rate card == genai-prices' calc_price."""
    usage = TokenUsage(
        250_000,
        30_000,
        cache_read_tokens=60_000,
        cache_write_tokens=40_000,
        reasoning_tokens=10_000,
    )
    checked = 0
    for provider in providers:
        for model in provider.models:
            periods = (
                [model.prices]
                if isinstance(model.prices, ModelPrice)
                else [c.prices for c in model.prices]
            )
            for mp in periods:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        ref = mp.calc_price(genai_usage(usage))
                    except ValueError:
                        continue  # genai-prices refuses this usage shape for this model
                parts = compile_model_price(mp).parts(usage)
                assert abs(sum(parts) - ref["total_price"]) <= TOLERANCE, (provider.id, model.id)
                assert abs(parts[1] - ref["output_price"]) <= TOLERANCE, (provider.id, model.id)
                checked += 1
    assert checked > 2000


def test_price_history_o3_price_cut(catalog: PriceCatalog) -> None:
    """o3 went from $10/$40 to $2/$8 on 2025-06-10: each call at its own time's price."""
    usage = TokenUsage(1_000_000, 100_000, cache_read_tokens=200_000)
    before = catalog.price_tokens("openai", "o3", usage, day(2025, 6, 9, hour=23))
    after = catalog.price_tokens("openai", "o3", usage, day(2025, 6, 10, hour=0))
    assert before is not None and after is not None
    # hand: 800k uncached input, 200k cached at 0.5, 100k output
    assert before.total == Decimal("8.0") + Decimal("0.1") + Decimal("4.0")
    assert after.total == Decimal("1.6") + Decimal("0.1") + Decimal("0.8")
    assert_matches(before, reference("o3", "openai", usage, day(2025, 6, 9, hour=23)))


def test_openai_cached_input_is_not_double_charged(catalog: PriceCatalog) -> None:
    usage = TokenUsage(10_000, 1_000, cache_read_tokens=4_000)
    cost = catalog.price_tokens("openai", "gpt-4o", usage, AT)
    assert cost is not None
    assert cost.input == Decimal(6_000) * Decimal("2.5") / 1_000_000
    assert cost.cache_read == Decimal(4_000) * Decimal("1.25") / 1_000_000
    assert cost.output == Decimal(1_000) * Decimal(10) / 1_000_000
    assert cost.cache_write == 0


def test_anthropic_cache_write_and_read(catalog: PriceCatalog) -> None:
    usage = TokenUsage(10_000, 1_000, cache_read_tokens=3_000, cache_write_tokens=2_000)
    cost = catalog.price_tokens("anthropic", "claude-haiku-4-5", usage, AT)
    assert cost is not None
    assert cost.input == Decimal(5_000) * 1 / Decimal(1_000_000)
    assert cost.cache_read == Decimal(3_000) * Decimal("0.1") / 1_000_000
    assert cost.cache_write == Decimal(2_000) * Decimal("1.25") / 1_000_000
    assert cost.output == Decimal(1_000) * 5 / Decimal(1_000_000)


def test_unknown_model_is_none_and_cached(catalog: PriceCatalog) -> None:
    for _ in range(2):
        assert catalog.price_tokens("openai", "my-private-model-7b", TokenUsage(10, 10), AT) is None
    assert ("openai", "my-private-model-7b") in catalog._resolved


def test_provider_names(catalog: PriceCatalog) -> None:
    usage = TokenUsage(1000, 1000)
    # unknown provider: matched by model alone
    assert_matches(
        catalog.price_tokens("my-gateway", "gpt-4o", usage, AT),
        reference("gpt-4o", "openai", usage, AT),
    )
    assert_matches(
        catalog.price_tokens(None, "claude-haiku-4-5", usage, AT),
        reference("claude-haiku-4-5", "anthropic", usage, AT),
    )
    # legacy gen_ai.system names
    assert_matches(
        catalog.price_tokens("az.ai.openai", "gpt-4o", usage, AT),
        reference("gpt-4o", "azure", usage, AT),
    )
    assert_matches(
        catalog.price_tokens("vertex_ai", "gemini-2.5-pro", usage, AT),
        reference("gemini-2.5-pro", "google", usage, AT),
    )
    # self-hosted runtimes never get a cloud list price
    assert catalog.price_tokens("ollama", "gpt-4o", usage, AT) is None


def test_describe_marks_period_in_force(catalog: PriceCatalog) -> None:
    periods = catalog.describe("o3", "openai", at=day(2025, 1, 1))
    assert [(p.effective_from, p.input, p.in_force) for p in periods] == [
        (None, Decimal(10), True),
        (day(2025, 6, 10).date(), Decimal(2), False),
    ]
    assert periods[0].effective_until == day(2025, 6, 10).date()
    assert catalog.describe("no-such-model") == []
    assert catalog.version == "genai-prices@0.2.3"
