"""Demo only: let one worker process play several services over the past month.

Instrumentation stamps spans with "now" and with its provider's one resource.
A demo that shows a month of showback from a 60-second run therefore needs
to move each trace to the day it pretends to have happened on, and give it
the service it pretends to come from. That is exactly what a production
pipeline must never do, so it lives here, in ``spanledger.demo``, and nowhere
in the product's code paths.

How: the scenario enters :func:`staged` around a trace. The
:class:`StagingSpanProcessor`, placed BEFORE the
:class:`~spanledger.processor.cost_processor.CostSpanProcessor`, notes the
shift (target start - real start of the trace's first span) and resource for
that trace, and on each span's end hands a shifted copy downstream. Pricing
thus sees the backdated time (price history applies) and the daily rollups
spread over the whole window. Relative timing inside a trace is kept.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor

__all__ = ["Stage", "StagingSpanProcessor", "staged"]


@dataclass(frozen=True, slots=True)
class Stage:
    """Where a trace pretends to be: its start time and the service it comes from."""

    start_ns: int
    resource: Resource


_STAGE: ContextVar[Stage | None] = ContextVar("spanledger_demo_stage", default=None)


@contextmanager
def staged(stage: Stage) -> Iterator[None]:
    """Traces started inside this block are moved to ``stage`` on export."""
    token = _STAGE.set(stage)
    try:
        yield
    finally:
        _STAGE.reset(token)


class StagingSpanProcessor(SpanProcessor):
    """Wraps the next processor; spans of staged traces reach it shifted and re-sourced.

    Spans of traces started outside :func:`staged` pass through untouched.
    State is one entry per open staged trace, dropped when the span that
    opened it (the trace's local root) ends.
    """

    def __init__(self, next_processor: SpanProcessor) -> None:
        self._next = next_processor
        #: trace id -> (shift ns, resource, span id of the span that opened the entry)
        self._traces: dict[int, tuple[int, Resource, int]] = {}
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        stage = _STAGE.get()
        if stage is not None:
            ctx = span.get_span_context()
            with self._lock:
                if ctx.trace_id not in self._traces:
                    shift = stage.start_ns - (span.start_time or 0)
                    self._traces[ctx.trace_id] = (shift, stage.resource, ctx.span_id)
        self._next.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Span) -> None:
        self._next._on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.context
        entry = self._traces.get(ctx.trace_id) if ctx is not None else None
        if entry is None:
            self._next.on_end(span)
            return
        shift, resource, opener = entry
        if ctx is not None and ctx.span_id == opener:
            with self._lock:
                self._traces.pop(ctx.trace_id, None)
        self._next.on_end(_shifted(span, shift, resource))

    def shutdown(self) -> None:
        self._next.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._next.force_flush(timeout_millis)


def _shifted(span: ReadableSpan, shift: int, resource: Resource) -> ReadableSpan:
    """A copy of ``span`` moved by ``shift`` ns, with ``resource`` (events move along).

    Copied field by field (like the cost processor's enrichment) so the
    attributes object, with its dropped count, is handed on as it is.
    """
    new = object.__new__(ReadableSpan)
    new.__dict__.update(span.__dict__)
    new._start_time = (span.start_time or 0) + shift
    new._end_time = (span.end_time or 0) + shift
    new._resource = resource
    if span.events:
        new._events = tuple(
            Event(e.name, e.attributes, (e.timestamp or 0) + shift) for e in span.events
        )
    return new
