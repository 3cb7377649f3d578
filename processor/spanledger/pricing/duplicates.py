"""One provider call, two spans: the rule that tells, shared by the processor and the collector.

A client SDK that traces itself (anthropic >= 2, mistralai 1.x) and an
instrumentation of the same SDK (OpenLLMetry, openinference, openlit) each write a
span for every call, nested or side by side, sometimes in two different traces (the
anthropic SDK's span and OpenLLMetry's are both roots when the caller has no span
open). Counting both doubles the bill, so exactly one keeps the cost and the other is
``duplicate``.

Two spans describe the same call (:func:`same_call`) when ALL of these hold:

1. their times overlap (both were open at once: the wrapper and the wrapped call;
   two calls one after the other never match, however alike);
2. they report the same input and output token counts (normalized: input with the
   cache, whatever the convention);
3. the same model: the requested one when both name it, else the billed one;
4. different instrumentation scopes wrote them (one instrumentation does not trace a
   call twice: two identical concurrent calls of one instrumentation stay two calls);
5. and either
   a. the same ``gen_ai.response.id`` (the provider's id for the call; any trace), or
   b. when at most one of them has a response id: the same trace. Usually they are
      parent and child or siblings, but a third instrumentation's span (or a framework
      span without usage) can sit between the two, so any two spans of the trace qualify.

Which span keeps the cost:

- in the processor, spans end one after the other and the first is exported before
  the second ends, so the first to end keeps it: the innermost span, which is the SDK's
  own (it ends when the response is read, inside the instrumentation's wrapper), and
  the one with the most detail (the anthropic SDK's span has the 1-hour cache split).
  A service whose calls all come from one instrumentation cannot have duplicates
  (rule 4), so the processor only remembers its last calls in a small ring until a
  second instrumentation's span with usage shows up, and indexes from then on;
- in the collector, all spans of an export request are seen together, and the one with
  the most complete usage (:func:`completeness`) keeps it, then the one that ended
  first, then the lowest span id: the same span as in the processor in every pair the
  tests drive;
- when only one of the two arrives, it is priced normally.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from spanledger.pricing.usage import CallReading


class CallFacts(NamedTuple):
    """What matching needs of one counted span (ids as the caller has them: int or hex)."""

    trace_id: Any
    span_id: Any
    #: None for a root (or a remote parent: another process)
    parent_id: Any
    start_ns: int
    end_ns: int
    scope: str
    request_model: str | None
    model: str | None
    input_tokens: int
    output_tokens: int
    response_id: str | None
    completeness: int
    #: the span that keeps the call's cost: this one, or (on a duplicate remembered so a
    #: third span of the call finds it) the one it duplicates
    keeper: Any = None


_new = tuple.__new__


def facts(trace_id: Any, span_id: Any, parent_id: Any, start_ns: int, end_ns: int, scope: str,
          reading: CallReading, rank: bool = True) -> CallFacts | None:
    """The matching facts of a span with usage (None: no usage, nothing to match).

    ``rank``: compute :func:`completeness` (the collector's choice needs it; the
    processor, where the first span to end keeps the cost, does not).
    """
    counts = reading.counts
    if counts is None:
        return None
    # tuple.__new__: a NamedTuple's own constructor is a Python frame, this runs per call
    return _new(CallFacts, (trace_id, span_id, parent_id, start_ns, end_ns, scope,
                            reading.request_model, reading.model, counts[0], counts[1],
                            reading.response_id, completeness(reading) if rank else 0,
                            span_id))


def completeness(reading: CallReading) -> int:
    """How much a span says about its call: the counts it has, plus one for a convention
    that knows the 1-hour cache writes apart (more detail, the exact price)."""
    counts = reading.counts
    if counts is None:
        return 0
    return sum(1 for c in counts if c) + (1 if reading.convention.cache_write_1h else 0)


def same_call(a: CallFacts, b: CallFacts) -> bool:
    """Do ``a`` and ``b`` describe one provider call? (The rule of the module docstring.)"""
    if a.start_ns > b.end_ns or b.start_ns > a.end_ns or a.scope == b.scope:
        return False
    if a.input_tokens != b.input_tokens or a.output_tokens != b.output_tokens:
        return False
    if a.request_model and b.request_model:
        if a.request_model != b.request_model:
            return False
    elif a.model != b.model:
        return False
    if a.response_id and b.response_id:
        return a.response_id == b.response_id
    return bool(a.trace_id == b.trace_id)


def keeps_cost(a: CallFacts, b: CallFacts) -> bool:
    """Does ``a`` rather than ``b`` keep the cost of their call (the collector's choice)?"""
    return (-a.completeness, a.end_ns, str(a.span_id)) <= (-b.completeness, b.end_ns,
                                                            str(b.span_id))
