"""Captured spans of openlit, litellm and pydantic-ai: priced exactly, by the processor and
by the collector's enricher, with the same readers.

The spans were recorded from the real packages against the stub provider
(tests/fixtures/capture/*.py; too heavy for the test extra) and are replayed here: same
instrumentation scopes, names, attributes, times and parent/child shape. Each call must
carry one counted cost equal to ``genai_prices.calc_price`` to 1e-9 USD (of what the spans
say, where an instrumentation drops part of the usage: a known limit, named per case),
the cost the instrumentation reported is kept as ``spanledger.cost.reported`` and, when it
differs from ours, counted as a disagreement.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from spanledger import semconv as sc
from spanledger.collector.convert import Columns
from spanledger.collector.pricing_enricher import PricingEnricher
from support.fixture_cases import FIXTURE_CASES, FixtureCase
from support.matrix import (
    TOLERANCE,
    Pipelines,
    assert_one_counted,
    load_fixture,
    otlp_request,
    replay,
    status,
)


@pytest.fixture(scope="module")
def enricher() -> PricingEnricher:
    return PricingEnricher()


@pytest.mark.parametrize("case", FIXTURE_CASES, ids=[c.id for c in FIXTURE_CASES])
def test_processor_prices_captured_spans(case: FixtureCase) -> None:
    p = Pipelines()
    replay(p.provider, case.records())
    spans = p.priced_spans()
    with_usage = [s for s in spans
                  if status(s) in (sc.STATUS_PRICED, sc.STATUS_UNPRICED, sc.STATUS_DUPLICATE)]
    assert len(with_usage) == case.spans_with_usage, [(s.name, status(s)) for s in spans]
    span = assert_one_counted(with_usage, case.expected.price(_start(case)))
    attrs = span.attributes or {}
    if case.reported is not None:
        # kept beside ours on the span that carried it (never summed: not gen_ai.usage.cost)
        reported = [(s.attributes or {}).get(sc.COST_REPORTED) for s in with_usage]
        assert case.reported in reported
    if sc.COST_REPORTED in attrs:  # compared with ours on the counted span
        assert p.processor.stats.reported == 1
        theirs, ours = float(attrs[sc.COST_REPORTED]), float(attrs[sc.COST])
        differs = abs(theirs - ours) > 1e-6 * max(theirs, ours)
        assert p.processor.stats.reported_disagreements == int(differs)
        # openlit prices nothing offline ($0 for every model), litellm misses the cache
        assert differs == (case.fixture in ("openlit", "litellm") and (
            theirs == 0 or bool(case.limit)))


@pytest.mark.parametrize("case", FIXTURE_CASES, ids=[c.id for c in FIXTURE_CASES])
def test_collector_prices_captured_spans_alike(case: FixtureCase,
                                               enricher: PricingEnricher) -> None:
    """The same spans reaching the collector without a cost (a service without the
    processor): the enricher reads them with the same conventions and keeps one cost."""
    p = Pipelines()
    replay(p.provider, case.records())
    cols = Columns()
    cols.add(otlp_request(p.raw_spans()), enricher)
    table = cols.table()
    rows = [dict(m) for m in table.column("SpanAttributes").to_pylist()]
    statuses = [r.get(sc.COST_STATUS) for r in rows]
    counted = [r for r in rows if r.get(sc.COST_STATUS) in (sc.STATUS_PRICED,
                                                           sc.STATUS_UNPRICED)]
    assert len(counted) == 1, statuses
    assert statuses.count(sc.STATUS_DUPLICATE) == case.spans_with_usage - 1
    got = Decimal(counted[0][sc.COST])
    assert abs(got - case.expected.price(_start(case))) <= TOLERANCE
    # the processor's price for the same spans, to the pico-dollar
    (priced,) = [s for s in p.priced_spans() if status(s) == sc.STATUS_PRICED]
    assert got == Decimal(repr((priced.attributes or {})[sc.COST]))


def _start(case: FixtureCase) -> object:
    """The call's own time: prices are taken at the span's start."""
    from datetime import UTC, datetime

    start = min(r["start_ns"] for r in case.records())
    return datetime.fromtimestamp(start / 1e9, UTC)


def test_known_limits_are_named() -> None:
    """Every case whose price differs from what the provider billed says why."""
    for case in FIXTURE_CASES:
        billed = next(c for c in load_fixture(case.fixture)["cases"]
                      if c["case"] == case.case)["usage"]
        full = billed["input_tokens"] == case.expected.input_tokens and billed.get(
            "cache_read_tokens", 0) == case.expected.cache_read
        assert full or case.limit, case.id
