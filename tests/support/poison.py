"""Poison requests for the collector tests: spans the schema cannot hold, spread days.

Shared by the in-process writer tests and the end-to-end test against a running
collector, so both attack with the same spans.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from support.loadgen import genai_request

DAY_NS = 86_400 * 10**9
JAN_2026_NS = 1_767_225_600 * 10**9
#: seeds for canary requests: canaries never share ids with each other or the poison
seeds = itertools.count(1000)


def span_ids(request: Any) -> set[tuple[str, str]]:
    """(TraceId, SpanId) in hex of every span of an OTLP request."""
    return {(s.trace_id.hex(), s.span_id.hex()) for rs in request.resource_spans
            for ss in rs.scope_spans for s in ss.spans}


def canary_request(spans: int, service: str) -> Any:
    return genai_request(spans, service=service, rng=random.Random(next(seeds)))


def spread_over_days(request: Any, days: int) -> Any:
    """Give the request's spans ``days`` different days (interleaved), from 2026-01-01."""
    for i, span in enumerate(request.resource_spans[0].scope_spans[0].spans):
        span.start_time_unix_nano = JAN_2026_NS + (i % days) * DAY_NS + 3_600 * 10**9
        span.end_time_unix_nano = span.start_time_unix_nano + 10**6
    return request


def poison_times() -> Any:
    """Four spans whose times the schema cannot hold, in one request."""
    req = genai_request(4, service="poisoner", rng=random.Random(7))
    a, b, c, d = req.resource_spans[0].scope_spans[0].spans
    a.start_time_unix_nano = 1 << 63  # past Arrow's int64: used to fail the whole segment
    a.end_time_unix_nano = (1 << 63) + 5
    b.end_time_unix_nano = (1 << 64) - 1  # addNanoseconds overflow in llm_cost_by_trace_mv
    c.start_time_unix_nano = 7_000_000_000 * 10**9  # year 2191: Date would wrap around
    c.end_time_unix_nano = c.start_time_unix_nano + 1
    event = d.events.add()
    event.name = "late"
    event.time_unix_nano = (1 << 64) - 1
    return req
