"""Model names from spans are bounded: a 1 MB unknown name costs no memory and no log flood.

Names come from outside. Before, every distinct unknown name was matched
against the whole catalog (0.2 s for 1 MB), cached, counted and logged in
full: a sender of 1 MB names grew the collector's workers and logs without
bound. Names longer than MAX_NAME_CHARS are now unknown (unpriced, never $0),
not cached, and counted and logged by their bounded form.
"""

from __future__ import annotations

import logging
import tracemalloc
from pathlib import Path

import pytest

from spanledger import semconv
from spanledger.pricing.catalog import MAX_NAME_CHARS, TRUNCATED_MARK, PriceCatalog
from spanledger.pricing.span_pricing import price_span
from support.pricing import day, ns, write

AT = ns(day(2026, 11, 1))
MB = 1024 * 1024


def _chat(model: str, provider: str = "openai", **extra: str) -> dict[str, object]:
    return {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
            "gen_ai.request.model": model, "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 100, **extra}


@pytest.fixture()
def catalog(tmp_path: Path) -> PriceCatalog:
    return PriceCatalog(write(tmp_path, """
        models:
          - model: "custom-*"
            input: 1.00
            output: 2.00
        calls:
          - tool: "*"
            per_call: 0.01
        """))


def test_huge_unknown_names_are_unpriced_and_not_kept(catalog: PriceCatalog,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(30):
            name = f"{i:02d}" + "x" * MB  # a new 1 MB name every time
            for provider in ("openai", "p" * MB):
                result = price_span(catalog, _chat(name, provider), AT)
                assert result is not None and result.status == semconv.STATUS_UNPRICED
                assert result.cost is None
            del name, result
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert retained < 2 * MB  # was 30 MB and more: every name cached and counted in full
    counts = catalog.unpriced_counts()
    assert sum(counts.values()) == 60
    assert all(len(p) <= MAX_NAME_CHARS + len(TRUNCATED_MARK)
               and len(m) <= MAX_NAME_CHARS + len(TRUNCATED_MARK) for p, m in counts)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all(len(w) < 2000 and TRUNCATED_MARK in w for w in warnings)


def test_the_bound_is_exact(catalog: PriceCatalog) -> None:
    at_bound = "custom-" + "a" * (MAX_NAME_CHARS - len("custom-"))
    priced = price_span(catalog, _chat(at_bound), AT)
    assert priced is not None and priced.status == semconv.STATUS_PRICED
    assert priced.cost is not None and priced.cost.total > 0
    over = price_span(catalog, _chat(at_bound + "a"), AT)
    assert over is not None and over.status == semconv.STATUS_UNPRICED
    assert catalog.unpriced_counts() == {("openai", at_bound + TRUNCATED_MARK): 1}


def test_huge_tool_names_get_no_per_call_price(catalog: PriceCatalog) -> None:
    tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "web_search"}
    priced = price_span(catalog, tool, AT)
    assert priced is not None and priced.status == semconv.STATUS_PRICED
    huge = price_span(catalog, {**tool, "gen_ai.tool.name": "t" * MB}, AT)
    assert huge is None or huge.status != semconv.STATUS_PRICED
