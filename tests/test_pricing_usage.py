"""Reading usage, model and provider from current and legacy attribute names."""

from __future__ import annotations

import math

import pytest

from spanledger.pricing.types import TokenUsage
from spanledger.pricing.usage import read_model, read_provider, read_usage, to_count


def test_current_names() -> None:
    attrs = {
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 200,
        "gen_ai.usage.cache_read.input_tokens": 300,
        "gen_ai.usage.cache_creation.input_tokens": 100,
        "gen_ai.usage.reasoning.output_tokens": 50,
    }
    assert read_usage(attrs) == TokenUsage(1000, 200, 300, 100, 50)


def test_legacy_names_and_numeric_strings() -> None:
    attrs = {
        "gen_ai.usage.prompt_tokens": "1000",
        "gen_ai.usage.completion_tokens": "200",
        "gen_ai.usage.cache_read_input_tokens": "300",
        "gen_ai.usage.cache_creation_input_tokens": 100.0,
        "gen_ai.usage.reasoning_tokens": " 20 ",
    }
    assert read_usage(attrs) == TokenUsage(1000, 200, 300, 100, 20)


def test_current_name_wins_and_junk_falls_back() -> None:
    attrs = {
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.prompt_tokens": 99,
        "gen_ai.usage.output_tokens": "lots",
        "gen_ai.usage.completion_tokens": "7",
    }
    assert read_usage(attrs) == TokenUsage(10, 7)


@pytest.mark.parametrize(
    "junk", ["", "abc", "1.5", "-3", -3, math.nan, math.inf, True, None, [1, 2], b"12", 2.5]
)
def test_junk_values_are_absent(junk: object) -> None:
    assert to_count(junk) is None
    assert read_usage({"gen_ai.usage.input_tokens": junk}) is None
    assert read_usage(
        {"gen_ai.usage.input_tokens": junk, "gen_ai.usage.output_tokens": 5}
    ) == TokenUsage(0, 5)


def test_no_usage() -> None:
    assert read_usage({}) is None
    assert read_usage({"gen_ai.request.model": "gpt-4o", "gen_ai.usage.total_tokens": 50}) is None


def test_input_includes_cache_per_semconv() -> None:
    # anthropic instrumentation 0.62: input_tokens = uncached + cache reads + cache writes
    usage = read_usage(
        {
            "gen_ai.usage.input_tokens": 1500,
            "gen_ai.usage.output_tokens": 10,
            "gen_ai.usage.cache_read.input_tokens": 1000,
            "gen_ai.usage.cache_creation.input_tokens": 400,
        }
    )
    assert usage == TokenUsage(1500, 10, 1000, 400)
    assert usage.uncached_input_tokens == 100


def test_no_guess_from_the_numbers() -> None:
    # Legacy names follow GenAI semconv (input includes the cache). Cache counts above the
    # input are impossible there; they are NOT taken as "input excludes the cache" (the
    # guess that charged openlit's and Bedrock's spans twice for the cache): a convention
    # that excludes it says so (pricing/conventions.py), and the uncached part stays >= 0.
    usage = read_usage(
        {
            "gen_ai.usage.prompt_tokens": 100,
            "gen_ai.usage.completion_tokens": 10,
            "gen_ai.usage.cache_read_input_tokens": 1000,
            "gen_ai.usage.cache_creation_input_tokens": 400,
        }
    )
    assert usage == TokenUsage(100, 10, 1000, 400)
    assert usage.uncached_input_tokens == 0


def test_model_and_provider() -> None:
    assert (
        read_model({"gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06"})
        == "gpt-4o-2024-08-06"
    )
    assert read_model({"gen_ai.request.model": "gpt-4o", "gen_ai.response.model": ""}) == "gpt-4o"
    assert read_model({"gen_ai.request.model": 5}) is None
    assert read_provider({"gen_ai.system": "openai"}) == "openai"
    assert (
        read_provider({"gen_ai.system": "openai", "gen_ai.provider.name": "azure.ai.openai"})
        == "azure.ai.openai"
    )
    assert read_provider({}) is None
