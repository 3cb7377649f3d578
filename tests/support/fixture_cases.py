"""The captured half of the coverage matrix: spans recorded from openlit, litellm and
pydantic-ai (tests/fixtures/capture/*.py) and what each call must cost.

What the provider billed is in each fixture case (``usage``). Where an instrumentation
does not record part of it, the price spanledger can compute from its spans differs, and
the case says so here: these are the known limits the README's table lists.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from support.matrix import Expected, fixture_expected, load_fixture


@dataclass(frozen=True)
class FixtureCase:
    fixture: str
    case: str
    expected: Expected
    #: spans of the call with usage (the second of a call is a duplicate)
    spans_with_usage: int
    #: the cost the instrumentation put on its span (None: none)
    reported: float | None
    #: why the expected price is not what the provider billed ("" = it is)
    limit: str = ""

    @property
    def id(self) -> str:
        return f"{self.fixture}:{self.case}"

    def records(self) -> list[dict[str, Any]]:
        doc = load_fixture(self.fixture)
        return next(c for c in doc["cases"] if c["case"] == self.case)["spans"]


def _reported(records: list[dict[str, Any]]) -> float | None:
    for r in records:
        for name in ("gen_ai.usage.cost", "gen_ai.cost.total_cost", "operation.cost"):
            if name in r["attributes"]:
                return float(r["attributes"][name])
    return None


def _cases() -> list[FixtureCase]:
    out = []
    limits = {
        ("openlit", "anthropic-stream"): (
            "openlit's Anthropic streams report no cache counts: input 3000 as uncached",
            lambda e: replace(e, input_tokens=3000, cache_read=0, cache_write=0)),
        ("litellm", "anthropic-cache"): (
            "litellm's spans carry no cached-token counts: cached input as uncached",
            lambda e: replace(e, cache_read=0, cache_write=0)),
        ("litellm", "openai-chat-cached"): (
            "litellm's spans carry no cached-token counts: cached input as uncached",
            lambda e: replace(e, cache_read=0)),
        ("litellm", "openai-stream"): (
            "litellm's spans carry no cached-token counts: cached input as uncached",
            lambda e: replace(e, cache_read=0)),
    }
    usage_spans = {("pydantic-ai", "anthropic-cache-and-sdk-span"): 2}
    for fixture in ("openlit", "litellm", "pydantic-ai"):
        for c in load_fixture(fixture)["cases"]:
            expected = fixture_expected(c["usage"])
            limit, change = limits.get((fixture, c["case"]), ("", None))
            if change is not None:
                expected = change(expected)
            out.append(FixtureCase(fixture, c["case"], expected,
                                   usage_spans.get((fixture, c["case"]), 1),
                                   _reported(c["spans"]), limit))
    return out


FIXTURE_CASES = _cases()
