"""Usage conventions as data, and the prices they lead to, against genai-prices itself.

One entry per instrumentation (pricing/conventions.py) says which attributes mean what
and whether input includes the cache; these tests pin each entry's reading, the catalog's
repairs (1-hour cache writes, service tiers and batch, litellm ids, azure_ai, Bedrock
vendor prefixes) against ``genai_prices.calc_price``, and that every entry is covered by
the matrix (a real-client case or a captured fixture).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price

from spanledger import semconv as sc
from spanledger.pricing import conventions as conv
from spanledger.pricing.catalog import PriceCatalog, tier_context
from spanledger.pricing.span_pricing import price_span
from spanledger.pricing.types import TokenUsage
from spanledger.pricing.usage import read_call, read_usage
from support.processor import shared_catalog

AT = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
NS = int(AT.timestamp() * 1e9)
TOL = Decimal("1e-9")


def reference(model: str, provider: str | None, *, context: dict[str, str] | None = None,
              **usage: int) -> Decimal:
    return Decimal(calc_price(Usage(**usage), model, provider_id=provider,
                              genai_request_timestamp=AT, price_context=context).total_price)


def priced(attrs: dict[str, object], scope: str | None = None) -> Decimal:
    result = price_span(shared_catalog(), attrs, NS, scope)
    assert result is not None and result.status == sc.STATUS_PRICED, result
    assert result.cost is not None
    return result.cost.total


# -- readers, one per convention ----------------------------------------------------------------

def test_anthropic_sdk_span_reads_its_one_hour_writes() -> None:
    attrs = {"gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-sonnet-4-5",
             "gen_ai.usage.input_tokens": 600, "gen_ai.usage.output_tokens": 50,
             "gen_ai.usage.cache_read.input_tokens": 100,
             "gen_ai.usage.cache_write.input_tokens": 200,
             "anthropic.usage.cache_creation.ephemeral_5m_input_tokens": 50,
             "anthropic.usage.cache_creation.ephemeral_1h_input_tokens": 150}
    reading = read_call(attrs, "com.anthropic.sdk.python")
    assert reading.convention is conv.ANTHROPIC_SDK
    assert reading.counts == (600, 50, 100, 200, 0, 150)
    assert read_call(attrs).convention is conv.ANTHROPIC_SDK  # by its markers alone
    want = reference("claude-sonnet-4-5", "anthropic", input_tokens=600, output_tokens=50,
                     cache_read_tokens=100, cache_write_tokens=200, cache_write_1h_tokens=150)
    assert priced(attrs) == want
    # 1h writes at the 1h rate: 150 x (6.00 - 3.75) per million more than the 5m rate
    five_minute = reference("claude-sonnet-4-5", "anthropic", input_tokens=600,
                            output_tokens=50, cache_read_tokens=100, cache_write_tokens=200)
    assert want - five_minute == Decimal("0.0003375")


def test_every_anthropic_model_with_a_1h_price_matches_calc_price() -> None:
    """genai-prices 0.2.3 has a 1-hour write price for every Anthropic model that has cache
    writes, so no rule of our own (such as "2x input") is needed or applied."""
    from genai_prices.data_snapshot import get_snapshot
    from genai_prices.types import ModelPrice

    checked = 0
    for provider in get_snapshot().providers:
        if provider.id != "anthropic":
            continue
        for model in provider.models:
            prices = [model.prices] if isinstance(model.prices, ModelPrice) else [
                c.prices for c in model.prices]
            if not any(getattr(p, "cache_write_mtok", None) for p in prices):
                continue
            assert any(getattr(p, "cache_write_1h_mtok", None) for p in prices), model.id
            usage = TokenUsage(10_000, 800, 2_000, 3_000, 0, 1_000)
            got = shared_catalog().price_tokens("anthropic", model.id, usage, AT)
            assert got is not None
            want = reference(model.id, "anthropic", input_tokens=10_000, output_tokens=800,
                             cache_read_tokens=2_000, cache_write_tokens=3_000,
                             cache_write_1h_tokens=1_000)
            assert abs(got.total - want) <= TOL, model.id
            checked += 1
    assert checked >= 20


def test_openinference_names() -> None:
    attrs = {"llm.system": "openai", "llm.model_name": "gpt-4o-mini",
             "llm.token_count.prompt": 2000, "llm.token_count.completion": 300,
             "llm.token_count.prompt_details.cache_read": 1024,
             "llm.token_count.completion_details.reasoning": 100,
             "llm.invocation_parameters": json.dumps({"model": "gpt-5", "service_tier": "flex"}),
             "openinference.span.kind": "LLM"}
    reading = read_call(attrs, "openinference.instrumentation.openai")
    assert reading.convention is conv.OPENINFERENCE
    assert (reading.provider, reading.model, reading.tier) == ("openai", "gpt-4o-mini", "flex")
    assert reading.counts == (2000, 300, 1024, 0, 100, 0)
    assert read_call(attrs).convention is conv.OPENINFERENCE  # markers, without a scope


@pytest.mark.parametrize(("scope", "provider", "excludes"), [
    ("opentelemetry.instrumentation.bedrock", "aws.bedrock", True),
    ("openlit.instrumentation.anthropic", "anthropic", True),
    ("openlit.instrumentation.openai", "openai", False),  # OpenAI input includes the cache
    ("opentelemetry.instrumentation.anthropic", "anthropic", False),
])
def test_input_without_cache_is_a_per_instrumentation_rule(scope: str, provider: str,
                                                           excludes: bool) -> None:
    """No "cache larger than input" guess: uncached input LARGER than the cache counts is
    read right either way, because the convention says what input means."""
    attrs = {"gen_ai.provider.name": provider, "gen_ai.usage.input_tokens": 3000,
             "gen_ai.usage.output_tokens": 200, "gen_ai.usage.cache_read.input_tokens": 1000,
             "gen_ai.usage.cache_creation.input_tokens": 500}
    usage = read_usage(attrs, scope)
    assert usage is not None
    assert usage.input_tokens == (4500 if excludes else 3000)
    assert usage.uncached_input_tokens == (3000 if excludes else 1500)


def test_pydantic_ai_details_and_litellm_ids() -> None:
    pyd = read_call({"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
                     "gen_ai.usage.input_tokens": 2000, "gen_ai.usage.output_tokens": 300,
                     "gen_ai.usage.details.cache_read_tokens": 1024}, "pydantic-ai")
    assert pyd.convention is conv.PYDANTIC_AI and pyd.counts == (2000, 300, 1024, 0, 0, 0)
    lite = {"gen_ai.system": "", "gen_ai.request.model": "text-embedding-3-small",
            "litellm.provider.model": "openai/text-embedding-3-small",
            "gen_ai.usage.input_tokens": 42, "gen_ai.cost.total_cost": 8.4e-07}
    reading = read_call(lite, "litellm")
    assert (reading.provider, reading.model) == ("litellm", "openai/text-embedding-3-small")
    assert reading.reported_cost == 8.4e-07
    assert priced(lite, "litellm") == reference("text-embedding-3-small", "openai",
                                                input_tokens=42)


# -- catalog repairs -------------------------------------------------------------------------

def test_litellm_provider_ids_and_azure_ai_priced_through_genai_prices() -> None:
    attrs = {"gen_ai.provider.name": "litellm", "gen_ai.request.model":
             "anthropic/claude-sonnet-4-5", "gen_ai.usage.input_tokens": 4500,
             "gen_ai.usage.output_tokens": 200, "gen_ai.usage.cache_read.input_tokens": 1000}
    assert priced(attrs) == reference("anthropic/claude-sonnet-4-5", "litellm",
                                      input_tokens=4500, output_tokens=200,
                                      cache_read_tokens=1000)
    azure = {"gen_ai.provider.name": "azure_ai", "gen_ai.request.model": "gpt-4o",
             "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100}
    assert priced(azure) == reference("gpt-4o", "azure", input_tokens=1000, output_tokens=100)


@pytest.mark.parametrize(("model", "full"), [
    ("nova-pro-v1:0", "amazon.nova-pro-v1:0"),
    ("llama3-1-70b-instruct-v1:0", "meta.llama3-1-70b-instruct-v1:0"),
])
def test_bedrock_model_ids_without_their_vendor_are_priced(model: str, full: str) -> None:
    attrs = {"gen_ai.provider.name": "aws.bedrock", "gen_ai.request.model": model,
             "gen_ai.usage.input_tokens": 3000, "gen_ai.usage.output_tokens": 200}
    assert priced(attrs) == reference(full, "aws", input_tokens=3000, output_tokens=200)


def test_an_ambiguous_or_unknown_bedrock_id_stays_unpriced() -> None:
    catalog = PriceCatalog()
    assert catalog.price_tokens("aws.bedrock", "no-such-model-v1:0", TokenUsage(10, 1), AT) is None


@pytest.mark.parametrize(("model", "tier", "context"), [
    ("gpt-5", "flex", {"service_tier": "flex"}),
    ("gpt-4o-mini", "priority", {"service_tier": "priority"}),
    ("gpt-4o", "batch", {"processing": "batch"}),
    ("claude-sonnet-4-5", "batch", {"processing": "batch"}),
])
def test_service_tiers_and_batch_use_the_price_variant(model: str, tier: str,
                                                       context: dict[str, str]) -> None:
    provider = "anthropic" if model.startswith("claude") else "openai"
    attrs = {"gen_ai.provider.name": provider, "gen_ai.request.model": model,
             "gen_ai.usage.input_tokens": 20_000, "gen_ai.usage.output_tokens": 3_000,
             "gen_ai.usage.cache_read.input_tokens": 8_000, sc.PRICE_TIER: tier}
    got = priced(attrs)
    want = reference(model, provider, context=context, input_tokens=20_000, output_tokens=3_000,
                     cache_read_tokens=8_000)
    standard = reference(model, provider, input_tokens=20_000, output_tokens=3_000,
                         cache_read_tokens=8_000)
    assert got == want and got != standard


def test_the_tier_served_wins_and_standard_tiers_keep_the_standard_price() -> None:
    base = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-5",
            "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100}
    served = priced({**base, "openai.request.service_tier": "flex",
                     "openai.response.service_tier": "default"})
    assert served == reference("gpt-5", "openai", input_tokens=1000, output_tokens=100)
    assert tier_context("auto") is None and tier_context("default") is None
    assert tier_context("Batch") == (("processing", "batch"),)


def test_all_zero_usage_is_no_usage_not_zero_dollars() -> None:
    result = price_span(shared_catalog(), {
        "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 0, "gen_ai.usage.output_tokens": 0}, NS)
    assert result is not None and result.status == sc.STATUS_NO_USAGE and result.cost is None


def test_reported_costs_are_read_but_never_ours() -> None:
    attrs = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
             "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 10,
             "gen_ai.usage.cost.amount": "0.5", "gen_ai.usage.cost.currency": "USD"}
    assert read_call(attrs).reported_cost == 0.5
    assert read_call({**attrs, "gen_ai.usage.cost.currency": "EUR"}).reported_cost is None
    # a span spanledger already priced carries OUR cost, not another tool's
    assert read_call({**attrs, sc.COST: 0.1, sc.COST_STATUS: "priced"}).reported_cost is None
    out = price_span(shared_catalog(), attrs, NS)
    assert out is not None and out.attributes()[sc.COST_REPORTED] == 0.5
    assert sc.COST_AMOUNT in out.attributes(semconv_cost=True)


# -- the registry ---------------------------------------------------------------------------

def test_every_convention_is_covered_by_the_matrix() -> None:
    """Adding the next instrumentation = one entry + one case or captured fixture."""
    from support.fixture_cases import FIXTURE_CASES
    from support.matrix_cases import CASES

    covered_by_clients = {
        conv.GENAI: "openllmetry-openai", conv.ANTHROPIC_SDK: "anthropic-sdk",
        conv.MISTRAL_SDK: "mistral-sdk", conv.OPENLLMETRY_BEDROCK: "openllmetry-bedrock",
        conv.OPENINFERENCE: "openinference-openai",
    }
    names = {c.name for c in CASES}
    for convention, prefix in covered_by_clients.items():
        assert any(n.startswith(prefix) for n in names), convention.name
    fixtures = {c.fixture for c in FIXTURE_CASES}
    for convention, fixture in ((conv.OPENLIT, "openlit"), (conv.OPENLIT_ANTHROPIC, "openlit"),
                                (conv.LITELLM, "litellm"), (conv.PYDANTIC_AI, "pydantic-ai")):
        assert fixture in fixtures, convention.name
        assert (Path(__file__).parent / "fixtures" / "capture"
                / f"capture_{fixture.replace('-', '_')}.py").is_file()
    assert set(covered_by_clients) | {conv.OPENLIT, conv.OPENLIT_ANTHROPIC, conv.LITELLM,
                                      conv.PYDANTIC_AI} == set(conv.CONVENTIONS)


def test_every_name_a_convention_reads_is_a_semconv_constant() -> None:
    from test_semconv_contract import defined_names

    defined = defined_names()
    for c in conv.CONVENTIONS:
        for field in ("markers", "provider", "response_model", "request_model", "input",
                      "output", "cache_read", "cache_write", "cache_write_5m",
                      "cache_write_1h", "reasoning", "tier", "tier_in_json", "response_id",
                      "reported_cost"):
            missing = set(getattr(c, field)) - defined
            assert not missing, (c.name, field, missing)
