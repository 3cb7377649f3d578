"""The overrides file: hand-calculated prices, history, discounts, globs, per-call, bad files."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import pytest

from spanledger.pricing.catalog import PriceCatalog
from spanledger.pricing.types import TokenUsage, usd
from spanledger.resources import data_dir
from spanledger.yamlconf import ConfigError
from support.pricing import TOLERANCE, assert_matches, day, hand_cost, reference, write

USAGE = TokenUsage(100_000, 20_000, cache_read_tokens=30_000, cache_write_tokens=10_000)

PRICES = """
models:
  - provider: openai
    model: "*"
    discount_percent: 15
    effective_from: 2025-03-01
  - provider: openai
    model: gpt-4o
    input: 2.00
    output: 8.00
    effective_from: 2025-06-01
  - provider: openai
    model: gpt-4o
    input: 1.80
    output: 7.20
    cache_read: 0.50
    cache_write: 2.00
    discount_percent: 5
    effective_from: 2026-01-01
  - model: "ft:gpt-4o-mini*"
    input: 0.30
    output: 1.20
    cache_read: 0.15
  - model: "ft:gpt-4o-mini:acme:special"
    input: 0.25
    output: 1.00
    cache_read: 0.10
    cache_write: 0.25
  - model: "my-llama-*"
    input: 0.40
    output: 0.60
  - provider: anthropic
    model: claude-haiku-4-5
    input: 0.80
    output: 4.00
calls:
  - db_system: qdrant
    per_call: 0.00002
  - db_system: pinecone
    per_call: 0.00001
    effective_from: 2025-01-01
  - db_system: pinecone
    per_call: 0.000016
    effective_from: 2026-01-01
  - tool: "web_*"
    per_call: 0.01
"""


@pytest.fixture
def catalog(tmp_path: Path) -> PriceCatalog:
    return PriceCatalog(write(tmp_path, PRICES))


def test_override_history_each_call_at_its_own_time(catalog: PriceCatalog) -> None:
    # before any gpt-4o entry and before the discount: plain catalog price
    early = catalog.price_tokens("openai", "gpt-4o", USAGE, day(2025, 2, 1))
    assert_matches(early, reference("gpt-4o", "openai", USAGE, day(2025, 2, 1)))
    assert early is not None and early.source == "genai-prices@0.2.3"
    # discount in force, gpt-4o override not yet: catalog price - 15%
    march = catalog.price_tokens("openai", "gpt-4o", USAGE, day(2025, 3, 1, hour=0))
    assert_matches(march, reference("gpt-4o", "openai", USAGE, day(2025, 3, 1)), Decimal("0.85"))
    assert march is not None and march.source == "override:prices.yaml"
    # first override (exact name beats the "*" discount); no cache keys: catalog ratio
    # gpt-4o: cache read 1.25 / input 2.5 = 0.5; no cache-write price = input price
    june = catalog.price_tokens("openai", "gpt-4o", USAGE, day(2025, 6, 1, hour=0))
    assert june is not None
    assert june.total == usd(hand_cost(USAGE, "2.00", "8.00", "1.00", "2.00"))
    # second override, on the last day of the first one and from its own date
    assert catalog.price_tokens("openai", "gpt-4o", USAGE, day(2025, 12, 31, hour=23)) == june
    later = catalog.price_tokens("openai", "gpt-4o", USAGE, day(2026, 1, 1, hour=0))
    assert later is not None
    assert abs(later.total - hand_cost(USAGE, "1.80", "7.20", "0.50", "2.00", "5")) <= TOLERANCE
    assert later.input == usd(Decimal(60_000) * Decimal("1.80") / 1_000_000 * Decimal("0.95"))
    assert later.cache_read == usd(Decimal(30_000) * Decimal("0.50") / 1_000_000 * Decimal("0.95"))


def test_discount_applies_to_every_openai_catalog_model(catalog: PriceCatalog) -> None:
    at = day(2026, 6, 1)
    cost = catalog.price_tokens("openai", "gpt-4o-mini", USAGE, at)
    assert_matches(cost, reference("gpt-4o-mini", "openai", USAGE, at), Decimal("0.85"))
    # other providers untouched
    other = catalog.price_tokens("gcp.vertex_ai", "gemini-2.5-pro", USAGE, at)
    assert_matches(other, reference("gemini-2.5-pro", "google", USAGE, at))


def test_globs_and_specificity(catalog: PriceCatalog) -> None:
    at = day(2026, 6, 1)
    ft = catalog.price_tokens("openai", "FT:gpt-4o-mini:acme::abc123", USAGE, at)
    assert ft is not None
    # ft glob has no cache_write and the catalog does not know the model: input price
    assert ft.total == usd(hand_cost(USAGE, "0.30", "1.20", "0.15", "0.30"))
    special = catalog.price_tokens("openai", "ft:gpt-4o-mini:acme:special", USAGE, at)
    assert special is not None
    assert special.total == usd(hand_cost(USAGE, "0.25", "1.00", "0.10", "0.25"))
    # anthropic override of a catalog model inherits the catalog cache ratios (0.1x, 1.25x)
    haiku = catalog.price_tokens("anthropic", "claude-haiku-4-5", USAGE, at)
    assert haiku is not None
    assert haiku.total == usd(hand_cost(USAGE, "0.80", "4.00", "0.08", "1.00"))
    # the anthropic rule does not match another provider's spans
    bedrock = catalog.price_tokens("aws.bedrock", "claude-haiku-4-5", USAGE, at)
    assert bedrock is None or bedrock.source.startswith("genai-prices@")


def test_self_hosted_without_cache_read_warns_once(
    catalog: PriceCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    at = day(2026, 6, 1)
    with caplog.at_level(logging.WARNING, logger="spanledger.pricing.catalog"):
        first = catalog.price_tokens("ollama", "my-llama-3-70b", USAGE, at)
        again = catalog.price_tokens("ollama", "my-llama-3-70b", USAGE, at)
    assert first == again and first is not None
    assert first.total == usd(hand_cost(USAGE, "0.40", "0.60", "0.40", "0.40"))
    warnings = [r.getMessage() for r in caplog.records if "cache_read" in r.getMessage()]
    assert len(warnings) == 1
    assert "prices.yaml:" in warnings[0] and "my-llama-3-70b" in warnings[0]


def test_per_call_prices(catalog: PriceCatalog) -> None:
    q = catalog.price_call(db_system="qdrant", at=day(2026, 6, 1))
    assert q is not None and q.total == Decimal("0.00002") and q.input == q.total
    assert q.source == "override:prices.yaml"
    assert catalog.price_call(db_system="pinecone", at=day(2024, 12, 31)) is None
    assert catalog.price_call(db_system="pinecone", at=day(2025, 6, 1)).total == Decimal("0.00001")  # type: ignore[union-attr]
    assert catalog.price_call(db_system="pinecone", at=day(2026, 6, 1)).total == Decimal("0.000016")  # type: ignore[union-attr]
    assert catalog.price_call(tool="web_search", at=day(2026, 6, 1)).total == Decimal("0.01")  # type: ignore[union-attr]
    assert catalog.price_call(tool="calculator", db_system="postgresql", at=day(2026, 6, 1)) is None


def test_describe_lists_catalog_and_override_periods(catalog: PriceCatalog) -> None:
    periods = catalog.describe("gpt-4o", "openai", at=day(2026, 2, 1))
    kinds = [
        (p.kind, p.effective_from and p.effective_from.isoformat(), p.in_force) for p in periods
    ]
    assert kinds == [
        ("catalog", None, False),
        ("override", "2025-06-01", False),
        ("override", "2026-01-01", True),
        ("override", "2025-03-01", False),
    ]
    assert periods[1].cache_read == Decimal("1.00")  # derived from the catalog ratio
    assert periods[1].effective_until == day(2026, 1, 1).date()
    assert catalog.describe("my-llama-x")[0].input == Decimal("0.40")


def test_example_file_loads_and_prices() -> None:
    example = data_dir("collector-config") / "prices.example.yaml"
    catalog = PriceCatalog(example)
    cost = catalog.price_tokens("openai", "ft:gpt-4o-mini:acme::x1", USAGE, day(2026, 6, 1))
    assert cost is not None and cost.source == "override:prices.example.yaml"
    assert catalog.price_call(db_system="qdrant", at=day(2026, 6, 1)) is not None


@pytest.mark.parametrize("name", ["prices.example.yaml", "demo-prices.yaml"])
def test_shipped_price_files_load(name: str) -> None:
    path = data_dir("collector-config") / name
    if not path.exists():
        pytest.skip(f"{name} not in this checkout")
    assert PriceCatalog(path).overrides is not None


def test_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert PriceCatalog.from_env().overrides is None
    monkeypatch.setenv("SPANLEDGER_PRICES_FILE", str(write(tmp_path, PRICES)))
    assert PriceCatalog.from_env().price_call(db_system="qdrant", at=day(2026, 1, 1)) is not None


BAD_FILES = [
    (
        "models:\n  - model: gpt-4o\n    input: 1\n    output: 2\n    inptu: 3\n",
        5,
        "models[0].inptu",
        "unknown key",
    ),
    (
        "models:\n  - model: gpt-4o\n    input: one\n    output: 2\n",
        3,
        "models[0].input",
        "expected a number",
    ),
    (
        "models:\n  - model: gpt-4o\n    input: -1\n    output: 2\n",
        3,
        "models[0].input",
        "must be >= 0",
    ),
    (
        "models:\n  - model: gpt-4o\n    input: 1\n    output: 2\n    effective_from: June\n",
        5,
        "models[0].effective_from",
        "expected a date",
    ),
    (
        "models:\n  - model: gpt-4o\n    input: 1\n    output: 2\n    effective_from: 2025-02-30\n",
        5,
        "models[0].effective_from",
        "expected a date",
    ),
    (
        "models:\n  - provider: openai\n    input: 1\n    output: 2\n",
        2,
        "models[0].model",
        "required key is missing",
    ),
    (
        "models:\n  - model: gpt-4o\n    input: 1\n",
        2,
        "models[0].output",
        "required key is missing",
    ),
    ("models:\n  - model: gpt-4o\n", 2, "models[0]", "has no prices"),
    (
        "models:\n  - model: gpt-4o\n    discount_percent: 120\n",
        3,
        "models[0].discount_percent",
        "must be <= 100",
    ),
    (
        "models:\n  - model: a\n    input: 1\n    output: 1\n    effective_from: 2025-01-01\n"
        "  - model: a\n    input: 2\n    output: 2\n    effective_from: 2025-01-01\n",
        9,
        "models[1].effective_from",
        "first one at line 2",
    ),
    (
        "calls:\n  - db_system: qdrant\n    tool: search\n    per_call: 1\n",
        2,
        "calls[0]",
        "exactly one of",
    ),
    ("calls:\n  - db_system: qdrant\n", 2, "calls[0].per_call", "required key is missing"),
    ("calls:\n  - tool: search\n    per_call: -0.1\n", 3, "calls[0].per_call", "must be >= 0"),
    ("model:\n  - model: a\n", 1, "model", "unknown key"),
    ("models: [\n", 2, None, "invalid YAML"),
]


@pytest.mark.parametrize(
    ("text", "line", "key", "problem"), BAD_FILES, ids=[f"{b[2]}-{b[3]}" for b in BAD_FILES]
)
def test_bad_file_names_file_line_and_key(
    tmp_path: Path, text: str, line: int, key: str | None, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        PriceCatalog(path)
    message = str(info.value)
    where = f"{path}:{line}: " + (f"{key}: " if key else "")
    assert message.startswith(where), message
    assert problem in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        PriceCatalog(tmp_path / "nope.yaml")
