"""Integer pico-dollar pricing gives exactly what the Decimal path gives.

The per-span path prices in whole pico-dollars (see spanledger.pricing.rates);
these tests pin that it is a pure speed change: the same Cost (value AND
exponent, so str() and ClickHouse Decimal(38,12) see the same digits) as the
Decimal multiply + quantize reference, for every catalog card and many
random usages, and the same span attributes as SpanPrice.attributes().
"""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from genai_prices.types import ModelPrice

from spanledger import semconv
from spanledger.pricing.catalog import PriceCatalog
from spanledger.pricing.rates import Rate, RateCard, cost_from_pico, cost_to_pico, token_card
from spanledger.pricing.span_pricing import price_span, price_span_pico
from spanledger.pricing.types import Cost, TokenUsage
from support.processor import capture, shared_catalog


def _random_usage(rng: random.Random) -> TokenUsage:
    scale = rng.choice((10, 1_000, 100_000, 3_000_000))
    inp = rng.randrange(0, scale)
    cache_read = rng.randrange(0, inp + 1) if rng.random() < 0.6 else 0
    cache_write = rng.randrange(0, inp - cache_read + 1) if rng.random() < 0.3 else 0
    out = rng.randrange(0, scale)
    reasoning = rng.randrange(0, out + 1) if rng.random() < 0.3 else 0
    one_hour = rng.randrange(0, cache_write + 1) if rng.random() < 0.5 else 0
    return TokenUsage(inp, out, cache_read, cache_write, reasoning, one_hour)


def _counts(u: TokenUsage) -> tuple[int, int, int, int, int, int]:
    return (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens,
            u.reasoning_tokens, u.cache_write_1h_tokens)


def _same(a: Cost, b: Cost) -> None:
    assert a == b
    for part in ("input", "output", "cache_read", "cache_write"):
        assert str(getattr(a, part)) == str(getattr(b, part)), part  # same exponent too
    assert str(a.total) == str(b.total)


def _all_cards(catalog: PriceCatalog) -> list[RateCard]:
    cards = []
    for provider in catalog._snapshot.providers:
        for model in provider.models:
            prices = ([model.prices] if isinstance(model.prices, ModelPrice)
                      else [cp.prices for cp in model.prices])
            prices += [v.prices for v in model.price_variants or ()]  # tiers, batch
            cards.extend(catalog._card(mp) for mp in prices)
    return cards


def test_every_catalog_card_prices_identically_in_pico_and_decimal() -> None:
    rng = random.Random(20261124)
    cards = _all_cards(shared_catalog())
    assert sum(c.exact_pico for c in cards) > 0.9 * len(cards)  # the fast path is the norm
    assert any(c.tiered and c.exact_pico for c in cards)  # tiered prices are covered
    for card in cards:
        for _ in range(12):
            usage = _random_usage(rng)
            _same(card.cost(usage, "src"), card.decimal_cost(usage, "src"))
            if card.exact_pico:
                assert list(cost_to_pico(card.cost(usage, "src"))) == card.pico(_counts(usage))
            else:
                assert card.pico(_counts(usage)) is None


def test_fractional_pico_rates_and_factors_keep_the_decimal_path() -> None:
    # 0.0000001 USD per MTok = 1e-13 USD per token: finer than a pico-dollar
    odd = token_card(Decimal("0.0000001"), Decimal("3"), Decimal("0.15"), Decimal("3.75"))
    assert not odd.exact_pico
    even = token_card(Decimal("2.5"), Decimal("10"), Decimal("1.25"), Decimal("3.125"))
    assert even.exact_pico
    rng = random.Random(7)
    for _ in range(500):
        usage = _random_usage(rng)
        _same(odd.cost(usage, "o"), odd.decimal_cost(usage, "o"))
        _same(even.cost(usage, "e"), even.decimal_cost(usage, "e"))
        factor = Decimal("0.85")
        _same(even.cost(usage, "e", factor), even.decimal_cost(usage, "e", factor))


def test_requests_and_tiers_in_the_integer_path() -> None:
    card = RateCard((
        Rate(0, (1, 0, 0, 0, 0), 0, Decimal("1e-6"),
             ((1000, Decimal("2e-6")), (5000, Decimal("3e-6")))),
        Rate(0, (0, 0, 0, 0, 0), 1, Decimal("0.004")),  # per request
        Rate(1, (0, 1, 0, 0, 0), 0, Decimal("4e-6")),
    ))
    assert card.exact_pico
    for inp in (0, 1, 999, 1000, 1001, 4999, 5000, 5001, 10**7):
        usage = TokenUsage(inp, 17)
        _same(card.cost(usage, "t"), card.decimal_cost(usage, "t"))
        assert card.pico(_counts(usage)) == list(cost_to_pico(card.decimal_cost(usage, "t")))


def test_cost_from_pico_matches_quantized_decimals() -> None:
    cost = cost_from_pico([180_000_000, 0, 1, 10**20], "s")
    assert str(cost.input) == "0.000180000000"
    assert str(cost.output) == "0E-12"
    assert cost.cache_read == Decimal("1e-12")
    assert cost.cache_write == Decimal(10**8)
    assert cost == Cost(Decimal("0.000180000000"), Decimal(0), Decimal("1e-12"),
                        Decimal(10**8), "s")


@pytest.mark.parametrize(("provider", "model"), [
    ("openai", "gpt-4o-mini-2024-07-18"),
    ("anthropic", "claude-sonnet-4-5"),
    ("openai", "gpt-4o"),
])
def test_price_span_and_its_pico_form_agree(provider: str, model: str) -> None:
    catalog = shared_catalog()
    rng = random.Random(model)
    for _ in range(200):
        usage = _random_usage(rng)
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": usage.input_tokens,
            "gen_ai.usage.output_tokens": usage.output_tokens,
            "gen_ai.usage.cache_read.input_tokens": usage.cache_read_tokens,
            "gen_ai.usage.cache_creation.input_tokens": usage.cache_write_tokens,
        }
        price = price_span(catalog, attrs, 1_780_000_000_000_000_000)
        pico = price_span_pico(catalog, attrs, 1_780_000_000_000_000_000)
        assert price is not None and pico is not None
        if not (usage.input_tokens or usage.output_tokens):  # all zero: no usage, not $0
            assert price.status == pico[0] == semconv.STATUS_NO_USAGE and price.cost is None
            continue
        assert price.cost is not None
        assert price.status == pico[0] == semconv.STATUS_PRICED
        assert list(cost_to_pico(price.cost)) == list(pico[1] or ())
        reference = catalog._card(
            catalog._choose(catalog._resolve(provider, model), price_time())[2]  # type: ignore[arg-type]
        ).decimal_cost(price.usage, catalog.version)  # type: ignore[arg-type]
        _same(price.cost, reference)


def price_time() -> object:
    """The datetime price_span uses for the start time above."""
    from spanledger.pricing.span_pricing import span_time

    return span_time(1_780_000_000_000_000_000)


def test_processor_attributes_equal_span_price_attributes() -> None:
    cap = capture()
    tracer = cap.tracer()
    rng = random.Random(3)
    sent = []
    with tracer.start_as_current_span("request"):
        for i in range(60):
            usage = _random_usage(rng)
            attrs = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.usage.input_tokens": usage.input_tokens,
                "gen_ai.usage.output_tokens": usage.output_tokens,
                "gen_ai.usage.cache_read.input_tokens": usage.cache_read_tokens,
            }
            with tracer.start_as_current_span(f"chat {i}", attributes=attrs) as span:
                start = span.start_time
            sent.append((f"chat {i}", attrs, start))
    running = Decimal(0)
    for name, attrs, start in sent:
        got = dict(cap.one(name).attributes or {})
        want = price_span(shared_catalog(), attrs, start)
        assert want is not None and want.cost is not None
        for key, value in want.attributes().items():
            assert got[key] == value and type(got[key]) is type(value), key
        running += want.cost.total
        assert got[semconv.TRACE_COST_TO_DATE] == float(running)
    rollup = (cap.one("request").attributes or {}).get(semconv.COST_ROLLUP)
    assert rollup is None or rollup == float(running)
