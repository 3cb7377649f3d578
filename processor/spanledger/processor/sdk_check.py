"""The start-up self-check of :mod:`spanledger.processor.sdk_access`, on the public API only.

It builds real spans with a real ``TracerProvider`` (no global state touched):
a root whose parent is remote, a local child with attributes, events, links and
more attributes than the limit allows (so some are dropped), a parentless span,
contexts with and without baggage and a current span. Each probe asks one fast
path a question and compares the answer with what the public API says for the
same object. A probe returns None when they agree, else a short description of
the difference (it goes into the warning an operator reads).
"""

from __future__ import annotations

import contextlib
import dis
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from opentelemetry import baggage, context, trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

__all__ = ["Probes"]

_REMOTE = SpanContext(trace_id=0x5B8AA5A2D2C872E8321CF37308D69DF2, span_id=0x051581BF3CB55C13,
                      is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
_LINKED = SpanContext(trace_id=0x1, span_id=0x2, is_remote=True)
#: the bytecode of a body that only returns None (3.11: LOAD_CONST + RETURN_VALUE; 3.12+:
#: RETURN_CONST)
_EMPTY_OPS = frozenset({"RESUME", "NOP", "LOAD_CONST", "RETURN_VALUE", "RETURN_CONST"})
_CONST_OPS = frozenset({"LOAD_CONST", "RETURN_CONST"})


class _Keep(SpanProcessor):
    """Keeps the live spans (at start) and the finished ones (at end)."""

    def __init__(self) -> None:
        self.started: list[Any] = []
        self.ended: list[ReadableSpan] = []

    def on_start(self, span: Any, parent_context: context.Context | None = None) -> None:
        self.started.append(span)

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


def _view(span: ReadableSpan) -> tuple[Any, ...]:
    """Everything an exporter reads from a finished span, but its attributes."""
    status = span.status
    return (span.name, span.context, span.parent, span.resource, tuple(span.events),
            tuple(span.links), span.kind, status.status_code, status.description,
            span.start_time, span.end_time, span.instrumentation_scope,
            span.dropped_attributes, span.dropped_events, span.dropped_links)


def _differs(what: str, got: Any, want: Any) -> str | None:
    return None if got == want else f"{what}: got {got!r}, the public API says {want!r}"


def _first(*found: str | None) -> str | None:
    return next((f for f in found if f is not None), None)


class _QuietHere(logging.Filter):
    """Drops this thread's records: the probes trip attribute limits on purpose, and the
    SDK warns about each drop; a self-check must not look like a problem in the logs."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread


@contextlib.contextmanager
def quiet_sdk() -> Iterator[None]:
    """Silence the SDK's attribute-limit warnings of this thread while probing."""
    sdk_logger = logging.getLogger("opentelemetry.attributes")
    quiet = _QuietHere()
    sdk_logger.addFilter(quiet)
    try:
        yield
    finally:
        sdk_logger.removeFilter(quiet)


class Probes:
    """Real spans, built once per check, and one probe per accessor."""

    def __init__(self, noop_hook_owners: tuple[type, ...] = ()) -> None:
        #: SDK processor classes whose ``on_start`` the forwarding fast path skips as empty
        self.noop_hook_owners = noop_hook_owners
        with quiet_sdk():
            self._build()

    def _build(self) -> None:
        keep = _Keep()
        # a low attribute limit so the child drops some (the dropped count must survive copies)
        provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=6))
        provider.add_span_processor(keep)
        tracer = provider.get_tracer("spanledger.sdk_check")
        ctx = baggage.set_baggage("team", "probe", context.Context())
        self.bag_ctx = baggage.set_baggage("feature", "self-check", ctx)
        remote_ctx = trace.set_span_in_context(NonRecordingSpan(_REMOTE), self.bag_ctx)
        root = tracer.start_span("root", context=remote_ctx, kind=SpanKind.SERVER,
                                 attributes={"spanledger.team": "probe", "http.route": "/"})
        self.root_ctx = trace.set_span_in_context(root, self.bag_ctx)
        child = tracer.start_span("child", context=self.root_ctx, links=[Link(_LINKED)],
                                  attributes={f"k{i}": i for i in range(8)})
        child.add_event("retry", {"attempt": 2})
        child.set_status(Status(StatusCode.ERROR, "probe"))
        child.end()
        root.end()
        self.lone = tracer.start_span("lone", context=context.Context())
        self.lone.end()
        self.live_root, self.live_child = keep.started[0], keep.started[1]
        self.done_child, self.done_root, self.done_lone = keep.ended
        self.tracer = tracer
        self.count_limited = TracerProvider(span_limits=SpanLimits(
            max_span_attributes=3)).get_tracer("spanledger.sdk_check")
        self.length_limited = TracerProvider(span_limits=SpanLimits(
            max_span_attribute_length=4)).get_tracer("spanledger.sdk_check")
        provider.shutdown()

    @property
    def spans(self) -> tuple[Any, ...]:
        return (self.live_root, self.live_child, self.done_child, self.done_root, self.done_lone)

    def verify(self, name: str, impl: Callable[..., Any]) -> str | None:
        """None when ``impl`` (accessor ``name``) answers as the public API does."""
        probe: Callable[[Callable[..., Any]], str | None] = getattr(self, f"probe_{name}")
        with quiet_sdk():
            return probe(impl)

    # --- context ---------------------------------------------------------------------------
    def probe_current_context(self, fn: Callable[[], Any]) -> str | None:
        token = context.attach(self.bag_ctx)
        try:
            inside = fn() is context.get_current()
        finally:
            context.detach(token)
        after = fn() is context.get_current()
        return None if inside and after else "not the current context"

    def probe_baggage_of(self, fn: Callable[[Any], Any]) -> str | None:
        want = dict(baggage.get_all(self.bag_ctx))
        return _first(
            _differs("baggage", dict(fn(self.bag_ctx) or {}), want),
            _differs("baggage of an empty context", dict(fn(context.Context()) or {}), {}),
        )

    def probe_context_span_attributes(self, fn: Callable[[Any], Any]) -> str | None:
        span_ctx = trace.set_span_in_context(self.live_root, context.Context())
        remote = trace.set_span_in_context(NonRecordingSpan(_REMOTE), context.Context())
        return _first(
            _differs("current span attributes", dict(fn(span_ctx) or {}),
                     dict(trace.get_current_span(span_ctx).attributes)),  # type: ignore[attr-defined]
            _differs("no current span", dict(fn(context.Context()) or {}), {}),
            _differs("a non-recording current span", dict(fn(remote) or {}), {}),
        )

    # --- span identity and times -----------------------------------------------------------
    def probe_local_parent_id(self, fn: Callable[[Any], Any]) -> str | None:
        def want(span: Any) -> int | None:
            parent = span.parent
            return None if parent is None or parent.is_remote else parent.span_id

        return _first(*(_differs(f"local parent of {s.name}", fn(s), want(s))
                        for s in self.spans))

    def probe_trace_id_of(self, fn: Callable[[Any], Any]) -> str | None:
        return _first(*(_differs(f"trace id of {s.name}", fn(s), s.context.trace_id)
                        for s in self.spans))

    def probe_span_id_of(self, fn: Callable[[Any], Any]) -> str | None:
        return _first(*(_differs(f"span id of {s.name}", fn(s), s.context.span_id)
                        for s in self.spans))

    def probe_span_facts(self, fn: Callable[[Any], Any]) -> str | None:
        def want(span: Any) -> tuple[Any, ...]:
            parent = span.parent
            local = None if parent is None or parent.is_remote else parent.span_id
            return (span.context.trace_id, local, span.start_time or 0, span.end_time or 0)

        return _first(*(_differs(f"facts of {s.name}", tuple(fn(s)), want(s))
                        for s in self.spans))

    # --- attributes ------------------------------------------------------------------------
    def probe_read_attributes(self, fn: Callable[[Any], Any]) -> str | None:
        plain = ReadableSpan("plain", attributes={"a": 1})
        bare = ReadableSpan("bare")
        return _first(
            *(_differs(f"attributes of {s.name}", dict(fn(s)), dict(s.attributes))
              for s in (*self.spans, plain, bare)),
            None if fn(self.done_child).get("missing") is None else "a missing key",
        )

    def probe_add_attributes(self, fn: Callable[[Any, Mapping[str, Any]], None]) -> str | None:
        values = {"spanledger.team": "probe", "spanledger.feature": "self-check-long-value"}
        found: list[str | None] = []
        for label, tracer in (("a span", self.tracer),
                              ("a span at its attribute limit", self.count_limited),
                              ("a span with a value length limit", self.length_limited)):
            attrs = {"a": 1, "b": "bb"}
            ours, theirs = (tracer.start_span(n, attributes=attrs) for n in ("ours", "theirs"))
            root_trace = fn(ours, values)
            theirs.set_attributes(values)
            found.append(_differs(f"local root trace id of {label}", root_trace,
                                  ours.context.trace_id))
            found.append(_differs(f"attributes added to {label}", dict(ours.attributes),
                                  dict(theirs.attributes)))
            found.append(_differs(f"dropped attributes of {label}", ours.dropped_attributes,
                                  theirs.dropped_attributes))
            ours.end()
            theirs.end()
        child = self.tracer.start_span("child", context=self.root_ctx)
        below_remote = self.tracer.start_span("below-remote", context=trace.set_span_in_context(
            NonRecordingSpan(_REMOTE), context.Context()))
        found.append(_differs("local root trace id of a child", fn(child, values), None))
        found.append(_differs("local root trace id below a remote parent",
                              fn(below_remote, values), below_remote.context.trace_id))
        child.end()
        below_remote.end()
        return _first(*found)

    def probe_with_attributes(self, fn: Callable[[Any, dict[str, Any]], Any]) -> str | None:
        found: list[str | None] = []
        for span in (self.done_child, self.done_root, self.done_lone):
            before = dict(span.attributes)
            merged = {**before, "spanledger.cost.status": "priced"}
            copy = fn(span, merged)
            found += [
                None if isinstance(copy, ReadableSpan) else "not a ReadableSpan",
                _differs(f"copy of {span.name}", _view(copy), _view(span)),
                _differs(f"attributes of the copy of {span.name}", dict(copy.attributes),
                         merged),
                _differs(f"attributes of {span.name} after the copy", dict(span.attributes),
                         before),
            ]
        return _first(*found)

    def probe_plain_mapping(self, fn: Callable[[Any], Any]) -> str | None:
        samples: list[Mapping[str, Any]] = [
            self.done_child.attributes, MappingProxyType({"a": 1}), {"a": 1},
            BoundedAttributes(attributes={"a": 1}), self.live_child.attributes,
        ]
        return _first(*(
            _differs(f"{type(m).__name__} as a mapping", (dict(fn(m)), fn(m).get("missing")),
                     (dict(m), None)) for m in samples))

    def probe_propagator_members(self, fn: Callable[[Any], Any]) -> str | None:
        from opentelemetry.baggage.propagation import W3CBaggagePropagator
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        a, b = TraceContextTextMapPropagator(), W3CBaggagePropagator()
        got = fn(CompositePropagator([a, b]))
        return _first(
            None if list(got) in ([a, b],) else f"members {got!r}, expected [{a!r}, {b!r}]",
            None if list(fn(a)) == [a] else "a single propagator is its own member",
        )

    def probe_forward_hook(self, fn: Callable[[Any, str], Any]) -> str | None:
        if fn(_Keep(), "on_start") is None:
            return "a processor's own on_start was skipped"
        for owner in self.noop_hook_owners:
            ops = [(i.opname, i.argval) for i in dis.get_instructions(owner.on_start)]
            if any(op not in _EMPTY_OPS or (op in _CONST_OPS and val is not None)
                   for op, val in ops):
                return f"{owner.__name__}.on_start is no longer empty"
        return None

    def probe_sdk_configurator(self, fn: Callable[[], Any]) -> str | None:
        cls = fn()
        if not isinstance(cls, type) or not callable(getattr(cls, "configure", None)):
            return f"{cls!r} is not a configurator class"
        return None
