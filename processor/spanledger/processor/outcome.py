"""``spanledger.outcome(name, value=1, **attribution)``: a business outcome, counted for a run.

Cost becomes a unit cost only when it is joined to what it achieved: "$4.20 per
resolved ticket". A service calls ``outcome("ticket_resolved")`` where the work
succeeds; ClickHouse counts it per day x team x feature x customer x outcome
name (``outcomes_daily``) and per run (``outcomes_by_trace``), and the reports
divide cost by outcomes and call the runs without one waste.

Design: one small span per outcome, not a span event. Reasons:

- it reaches ClickHouse through the same OTLP path as every span, as a row of
  ``otel_traces`` that the views pick up by its ``spanledger.outcome.name``
  attribute; the OpenTelemetry Collector contrib exporter writes it the same way;
- it needs no open span to hang on: an event can only be added to a span that is
  still recording, while outcomes are often known after the request span ended
  (a callback, a queue consumer, a webhook days later);
- the :class:`~spanledger.processor.cost_processor.CostSpanProcessor` attributes
  it like any span (W3C baggage, else the parent span, else the trace's root),
  so an outcome inside the run carries the run's team, feature and customer
  without the caller repeating them;
- span events are capped per span (128 by default) and a long agent run may
  record many outcomes.

An outcome recorded in another trace (a webhook that learns the ticket was
resolved) names the run with ``trace_id=``: the span carries it as
``spanledger.outcome.trace_id`` (what the views join on) and, when ``span_id=``
is known too, a span link to it (what trace viewers follow; OTLP links need
both ids). The reports then take the run's own attribution for it.

Values are plain numbers (how many tickets, pages, leads), never money: money
stays in the cost attributes, exact, and outcomes only divide it.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags

from spanledger import semconv as sc

from .attribution import attribute

__all__ = ["Outcome", "outcome"]

logger = logging.getLogger("spanledger.processor")

_TRACE_HEX = re.compile(r"^[0-9a-f]{32}$")
_SPAN_HEX = re.compile(r"^[0-9a-f]{16}$")
#: the views keep values as Decimal(38, 9); larger numbers are surely a unit mistake
MAX_VALUE = 10**18
MAX_NAME = 256


@dataclass(frozen=True, slots=True)
class Outcome:
    """What :func:`outcome` recorded: the outcome and the run it is counted for."""

    name: str
    value: int | float
    #: the run (trace id, 32 lowercase hex) the outcome is counted for
    run_trace_id: str
    #: the outcome span's own trace and span id (the same trace as the run unless
    #: ``trace_id=`` named another one)
    trace_id: str
    span_id: str


def outcome(name: str, value: int | float | Decimal = 1, *,
            trace_id: str | int | None = None, span_id: str | int | None = None,
            tracer_provider: trace.TracerProvider | None = None,
            **attribution: Any) -> Outcome | None:
    """Record ``value`` of outcome ``name`` for the current run (or the run ``trace_id``).

    >>> with spanledger.attribute(team="support", feature="ticket-triage", customer="acme"):
    ...     answer = agent.run(ticket)
    ...     if answer.resolved:
    ...         spanledger.outcome("ticket_resolved")

    A webhook that hears about it later, in another trace, names the run:

    >>> spanledger.outcome("conversion", trace_id=lead.run_trace_id, customer="acme")

    ``attribution`` (``team``, ``feature``, ``customer``, ``user``, ``cost_center``
    and further baggage keys) overrides the attribution of the context for this
    outcome; ``None`` values are skipped. Returns what was recorded, or None when
    tracing is off (no SDK TracerProvider: the outcome is not recorded).

    Raises ValueError for a name that is empty or too long, a value that is not
    a finite number >= 0, or ids that are not OpenTelemetry ids.
    """
    name = _checked_name(name)
    number = _checked_value(value)
    run_hex = _trace_hex(trace_id) if trace_id is not None else None
    if span_id is not None and run_hex is None:
        raise ValueError("outcome(): span_id= names a span of the run: give trace_id= too")
    attrs: dict[str, Any] = {sc.OUTCOME_NAME: name, sc.OUTCOME_VALUE: number}
    links: list[Link] = []
    if run_hex is not None:
        attrs[sc.OUTCOME_TRACE_ID] = run_hex
        if span_id is not None:
            links.append(Link(SpanContext(int(run_hex, 16), int(_span_hex(span_id), 16),
                                          is_remote=True,
                                          trace_flags=TraceFlags(TraceFlags.SAMPLED)),
                              {sc.OUTCOME_NAME: name}))
    who = attribute(**attribution)
    # set on the span AND in baggage: the cost processor writes baggage values over
    # start attributes, and without a processor the start attributes are all there is
    attrs.update({sc.attribution_attr(k): v for k, v in who.values.items()})
    tracer = trace.get_tracer(sc.OUTCOME_TRACER, tracer_provider=tracer_provider)
    with who, tracer.start_as_current_span(sc.OUTCOME_SPAN_PREFIX + name, kind=SpanKind.INTERNAL,
                                           attributes=attrs, links=links) as span:
        ctx = span.get_span_context()
    if not ctx.is_valid:
        logger.debug("spanledger.outcome(%r): tracing is off, not recorded", name)
        return None
    own_trace = f"{ctx.trace_id:032x}"
    return Outcome(name, number, run_hex or own_trace, own_trace, f"{ctx.span_id:016x}")


def _checked_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"outcome(): name must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME:
        raise ValueError(f"outcome(): name is longer than {MAX_NAME} characters")
    return name


def _checked_value(value: object) -> int | float:
    """An int or float attribute (OpenTelemetry has no Decimal) that the views read exactly."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"outcome(): value must be a number, got {value!r}")
    number: int | float = float(value) if isinstance(value, Decimal) else value
    if isinstance(number, float) and number.is_integer() and abs(number) < MAX_VALUE:
        number = int(number)
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(f"outcome(): value must be finite, got {value!r}")
    if number < 0 or number >= MAX_VALUE:
        raise ValueError(f"outcome(): value must be >= 0 and < 1e18, got {value!r}")
    return number


def _trace_hex(trace_id: str | int) -> str:
    text = _hex(trace_id, 32)
    if not _TRACE_HEX.match(text) or int(text, 16) == 0:
        raise ValueError(f"outcome(): trace_id must be 32 hex digits (not all zero), "
                         f"got {trace_id!r}")
    return text


def _span_hex(span_id: str | int) -> str:
    text = _hex(span_id, 16)
    if not _SPAN_HEX.match(text) or int(text, 16) == 0:
        raise ValueError(f"outcome(): span_id must be 16 hex digits (not all zero), "
                         f"got {span_id!r}")
    return text


def _hex(value: str | int, digits: int) -> str:
    if isinstance(value, bool):
        return ""
    if isinstance(value, int):
        return f"{value:0{digits}x}" if value >= 0 else ""
    return value.strip().lower().removeprefix("0x") if isinstance(value, str) else ""
