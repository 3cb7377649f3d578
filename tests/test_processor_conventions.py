"""The coverage matrix through the in-service processor: one exact price per call.

Every case (tests/support/matrix_cases.py) drives a real client through real
instrumentations against the stub provider: the anthropic SDK's own spans beside
OpenLLMetry's, mistralai's beside OpenLLMetry's, openinference, the contrib openai-v2,
OpenLLMetry's OpenAI with service tiers, three OpenAI instrumentations at once, OpenLLMetry
Bedrock over boto3. Each call must carry exactly one counted cost, equal to
``genai_prices.calc_price`` of what the provider billed to 1e-9 USD; the other spans of the
call are ``duplicate``. Streams without usage and 0/0 answers are ``no_usage``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spanledger import semconv as sc
from spanledger.demo.stub_provider import StubProvider
from support.matrix import Pipelines, assert_one_counted, status
from support.matrix_cases import CASES, Case, run_case


@pytest.fixture(scope="module")
def stub() -> Iterator[StubProvider]:
    with StubProvider() as s:
        yield s


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_one_exact_price_per_call(case: Case, stub: StubProvider) -> None:
    p = Pipelines()
    expected = run_case(case, p, stub)
    spans = p.priced_spans()
    calls = [s for s in spans if status(s) not in (None, sc.STATUS_AGGREGATE)]
    with_usage = [s for s in calls if status(s) != sc.STATUS_NO_USAGE]
    assert len(with_usage) == case.spans_with_usage, [(s.name, status(s)) for s in calls]
    if expected is None:
        assert calls and all(status(s) == sc.STATUS_NO_USAGE for s in calls)
        assert not any(sc.COST in (s.attributes or {}) for s in spans)
        return
    span = assert_one_counted(with_usage, expected.price())
    assert p.processor.stats.duplicates == case.spans_with_usage - 1
    if expected.context:
        assert (span.attributes or {})[sc.PRICE_TIER] == next(iter(expected.context.values()))


def test_the_sdk_span_keeps_the_cost_with_its_one_hour_split(stub: StubProvider) -> None:
    """The anthropic SDK's span knows the 1-hour writes (billed at 2x input, not 1.25x);
    OpenLLMetry's does not. The SDK's span ends first, inside the instrumentation's, and
    keeps the cost: the exact one."""
    p = Pipelines()
    run_case(next(c for c in CASES if c.name == "anthropic-sdk+openllmetry"), p, stub)
    spans = {s.instrumentation_scope.name: s for s in p.priced_spans()
             if status(s) in (sc.STATUS_PRICED, sc.STATUS_DUPLICATE)}
    sdk = spans["com.anthropic.sdk.python"].attributes or {}
    assert sdk[sc.COST_STATUS] == sc.STATUS_PRICED
    assert sdk[sc.USAGE_CACHE_WRITE_1H] == 300 and sdk[sc.CONVENTION] == "anthropic-sdk"
    other = spans["opentelemetry.instrumentation.anthropic"].attributes or {}
    assert other[sc.COST_STATUS] == sc.STATUS_DUPLICATE
    from support.matrix_cases import A_EXPECTED, A_EXPECTED_5M

    # the 1-hour rule matters: charging the 1h writes at the 5-minute rate is 0.000675 less
    assert A_EXPECTED.price() - A_EXPECTED_5M.price() > 0


def test_input_without_cache_is_not_subtracted_twice(stub: StubProvider) -> None:
    """Bedrock Converse reports input WITHOUT the cache (3000 + 1000 read): 0.00604, not
    the 0.00284 that subtracting the cache from 3000 again would give (the issue's case)."""
    p = Pipelines()
    expected = run_case(next(c for c in CASES if c.name == "openllmetry-bedrock-converse-nova"),
                        p, stub)
    assert expected is not None
    (span,) = [s for s in p.priced_spans() if status(s) == sc.STATUS_PRICED]
    attrs = span.attributes or {}
    assert attrs[sc.USAGE_INPUT] == 4000 and attrs["gen_ai.usage.input_tokens"] == 3000
    assert attrs[sc.MODEL] == "nova-pro-v1:0"  # as reported; priced as amazon.nova-pro-v1:0
