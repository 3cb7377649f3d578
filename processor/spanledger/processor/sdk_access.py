"""The one door to OpenTelemetry internals: fast paths, checked at start-up, public fallbacks.

Why this module exists: ``CostSpanProcessor.on_start`` / ``on_end`` run for every
span of an instrumented service, so a few hundred nanoseconds per span are a
visible share of the SDK's own cost. The fast paths below read SDK/API internals
(private names, tuple positions, the BoundedAttributes dict) instead of the
public properties, which wrap values in proxies, validate again or add Python
frames. No other spanledger module touches an OpenTelemetry private name.

Why it is safe: private names may change in any SDK release. At import this
module runs a self-check (:mod:`spanledger.processor.sdk_check`): it builds real
spans with a real ``TracerProvider`` (attributes, baggage, a remote and a local
parent, events, links, dropped attributes) and asks each fast path the question
the public API answers (``span.attributes``, ``span.parent``,
``span.context.trace_id``, ``baggage.get_all(ctx)``,
``trace.get_current_span(ctx)``, ...). A fast path that raises or answers
differently is replaced by its public fallback, logged once (a warning naming
the accessor and what differed) and counted: :data:`STATS`, :func:`fallbacks`
and the OpenTelemetry counter ``spanledger.sdk_access.fallbacks`` (observable,
so it reports even though the check ran before the MeterProvider was set).
Spans are then priced exactly as before, only slower: a new SDK release can
cost speed, never money (no span silently loses its cost).

The accessors (module attributes, rebound by :func:`check`; callers look them
up at call time or bind them when they are built). For each: the internal the
fast path reads, and the public fallback.

- ``current_context()``: ``context._RUNTIME_CONTEXT._current_context.get`` (the
  ContextVar's own ``get``, one C call). Public: ``context.get_current()`` (two
  Python frames more).
- ``baggage_of(ctx)``: ``ctx.get(baggage._BAGGAGE_KEY)``, the baggage dict itself,
  which the processor caches by identity.
  Public: ``baggage.get_all(ctx)``, a new proxy per call (the processor's cache
  then misses: it reads the baggage again).
- ``context_span_attributes(ctx)``: ``ctx.get(trace.propagation._SPAN_KEY)`` and
  that span's ``_attributes._dict``. Public: ``trace.get_current_span(ctx).attributes``.
- ``local_parent_id(span)``: ``span._parent`` and SpanContext tuple positions 2
  (is_remote) and 1 (span id). Public: ``span.parent.is_remote`` / ``.span_id``.
- ``trace_id_of(span)``, ``span_id_of(span)``: ``span._context[0]`` / ``[1]``.
  Public: ``span.context.trace_id`` / ``.span_id`` (two property frames).
- ``span_facts(span)``: trace id, local parent id, start and end time in one call
  (what pricing a span needs): ``span._context``, ``span._parent``, the tuple
  positions, ``span._start_time``, ``span._end_time``. Public: the properties.
- ``read_attributes(span)``: ``span._attributes._dict`` (the dict inside
  BoundedAttributes). Public: ``span.attributes``, a proxy whose ``get`` of a
  missing key raises and catches KeyError inside (~0.5 us; usage reading probes a
  dozen names, most of them missing).
- ``add_attributes(span, values)``: ``span._attributes._dict.update(values)`` when
  the limits (``maxlen``, ``max_value_len``) allow it. Public:
  ``span.set_attributes(values)`` (a lock and a validation per value). It returns
  the span's trace id when the span is a local root (no parent, or a remote one),
  else None: the processor remembers a root's attribution, and this runs once
  per attributed span, so one call answers both.
- ``with_attributes(span, values)``: the finished ReadableSpan copied through its
  ``__dict__`` with a new ``_attributes`` (a BoundedAttributes keeping ``dropped``
  and ``_immutable`` when the original dropped some). Public:
  :class:`EnrichedSpan`, the public constructor (a Resource lookup and eleven
  property frames more).
- ``plain_mapping(attrs)``: the dict behind a ``span.attributes`` proxy, through
  ``gc.get_referents`` and ``BoundedAttributes._dict``. Public: the mapping as given.
- ``propagator_members(p)``: ``CompositePropagator._propagators`` (so setup keeps
  the composite flat). Public: ``[p]`` (a nested composite: the same headers).
- ``forward_hook(processor, name)``: skips the SDK processors' ``on_start`` when
  their bodies are empty, which the check verifies in the bytecode. Public: always
  call the hook. (``_on_ending``, the SDK's private hook, is handed to the SDK as
  the wrapped processor's own: :func:`on_ending_of`.)
- ``sdk_configurator()`` (checked at first use, by ``opentelemetry-instrument``
  only): ``sdk._configuration._OTelSDKConfigurator`` and its
  ``export_span_processor`` option. Public: none; the distro then sets up tracing
  with ``spanledger.configure()`` (OTLP traces, every ``OTEL_*`` variable the
  exporter reads).

What the speed buys (``python bench/bench_processor.py`` with and without
``--public-api``, which forces every fallback; 2 shared cores, ratios to the bare
SDK, best of 7 rounds): fast paths plain spans 1.02-1.07x, GenAI spans
1.20-1.27x; all on the public API plain 1.20x, GenAI 1.47x. The public API
costs ~4-8 us more per span: ``set_attributes`` at start (a lock, a validation
per value), the attribute proxies at end, and the constructor copy.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from opentelemetry import baggage as baggage_api
from opentelemetry import context as context_api
from opentelemetry import metrics
from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

__all__ = [
    "STATS",
    "EnrichedSpan",
    "SdkAccessStats",
    "check",
    "fallbacks",
    "observe_fallbacks",
    "on_ending_of",
    "sdk_configurator",
    "use_public",
]

logger = logging.getLogger("spanledger.processor")

EMPTY: Mapping[str, Any] = MappingProxyType({})
_TRACE_ID, _SPAN_ID, _IS_REMOTE = 0, 1, 2  # positions in the SpanContext tuple


@dataclass(slots=True)
class SdkAccessStats:
    """What operators (and tests) read: how many fast paths run on the public API instead."""

    #: accessors switched to their public fallback since start (a failed check, or forced)
    fallbacks: int = 0
    #: self-check runs (one at import, more only when asked)
    checks: int = 0
    #: accessor -> why it runs on the public API (what the check saw)
    reasons: dict[str, str] = field(default_factory=dict)


STATS = SdkAccessStats()
_lock = threading.Lock()
_warned: set[str] = set()
_switches: dict[str, int] = {}


def fallbacks() -> dict[str, str]:
    """Accessors currently on the public API, with the reason (empty: every fast path holds)."""
    return dict(STATS.reasons)


def observe_fallbacks(_options: Any) -> Iterator[metrics.Observation]:
    """Callback of the observable counter: switches to the public API, per accessor."""
    for name, count in list(_switches.items()):
        yield metrics.Observation(count, {"spanledger.accessor": name})


FALLBACK_COUNTER = metrics.get_meter("spanledger.processor").create_observable_counter(
    "spanledger.sdk_access.fallbacks", callbacks=[observe_fallbacks], unit="{accessor}",
    description="fast paths over OpenTelemetry internals switched to the public API "
                "(a new SDK release changed an internal; spans are still priced)")


# --- the accessors: fast implementations (internals) and public fallbacks ----------------
# A fast *builder* reads the private names when the check runs (a renamed name fails there,
# not on a span), and returns the implementation.

def _fast_current_context() -> Callable[[], context_api.Context]:
    return context_api._RUNTIME_CONTEXT._current_context.get  # type: ignore[attr-defined]


def _public_current_context() -> context_api.Context:
    return context_api.get_current()


def _fast_baggage_of() -> Callable[[context_api.Context], Any]:
    from opentelemetry.baggage import _BAGGAGE_KEY

    def baggage_of(ctx: context_api.Context) -> Any:
        return ctx.get(_BAGGAGE_KEY)

    return baggage_of


def _public_baggage_of(ctx: context_api.Context) -> Mapping[str, object]:
    return baggage_api.get_all(ctx)


def _fast_context_span_attributes() -> Callable[[context_api.Context], Any]:
    from opentelemetry.trace.propagation import _SPAN_KEY

    def context_span_attributes(ctx: context_api.Context) -> Mapping[str, Any] | None:
        return getattr(getattr(ctx.get(_SPAN_KEY), "_attributes", None), "_dict", None)

    return context_span_attributes


def _public_context_span_attributes(ctx: context_api.Context) -> Mapping[str, Any] | None:
    return getattr(trace_api.get_current_span(ctx), "attributes", None)


def _fast_local_parent_id() -> Callable[[Any], int | None]:
    def local_parent_id(span: Any) -> int | None:
        parent = span._parent
        return None if parent is None or parent[_IS_REMOTE] else parent[_SPAN_ID]

    return local_parent_id


def _public_local_parent_id(span: Any) -> int | None:
    parent = span.parent
    return None if parent is None or parent.is_remote else parent.span_id


def _fast_trace_id_of() -> Callable[[Any], int]:
    def trace_id_of(span: Any) -> int:
        return span._context[_TRACE_ID]

    return trace_id_of


def _public_trace_id_of(span: Any) -> int:
    return span.context.trace_id


def _fast_span_id_of() -> Callable[[Any], int]:
    def span_id_of(span: Any) -> int:
        return span._context[_SPAN_ID]

    return span_id_of


def _public_span_id_of(span: Any) -> int:
    return span.context.span_id


#: (trace id, the parent's span id when the parent is local else None, start ns, end ns)
SpanFacts = tuple[int, int | None, int, int]


def _fast_span_facts() -> Callable[[Any], SpanFacts]:
    def span_facts(span: Any) -> SpanFacts:
        parent = span._parent
        return (span._context[_TRACE_ID],
                None if parent is None or parent[_IS_REMOTE] else parent[_SPAN_ID],
                span._start_time or 0, span._end_time or 0)

    return span_facts


def _public_span_facts(span: Any) -> SpanFacts:
    parent = span.parent
    return (span.context.trace_id, None if parent is None or parent.is_remote else parent.span_id,
            span.start_time or 0, span.end_time or 0)


def _fast_read_attributes() -> Callable[[Any], Mapping[str, Any]]:
    def read_attributes(span: Any) -> Mapping[str, Any]:
        attrs = span._attributes
        return attrs._dict if type(attrs) is BoundedAttributes else (attrs or EMPTY)

    return read_attributes


def _public_read_attributes(span: Any) -> Mapping[str, Any]:
    return span.attributes or EMPTY


def _fast_add_attributes() -> Callable[[Any, Mapping[str, Any]], int | None]:
    def add_attributes(span: Any, values: Mapping[str, Any]) -> int | None:
        """Values were validated once (strings from baggage): no per-span cleaning."""
        attrs = span._attributes
        if type(attrs) is BoundedAttributes and attrs.max_value_len is None and (
            attrs.maxlen is None or len(attrs._dict) + len(values) <= attrs.maxlen
        ):
            attrs._dict.update(values)
        else:
            span.set_attributes(values)
        parent = span._parent
        return span._context[_TRACE_ID] if parent is None or parent[_IS_REMOTE] else None

    return add_attributes


def _public_add_attributes(span: Any, values: Mapping[str, Any]) -> int | None:
    span.set_attributes(values)
    parent = span.parent
    return span.context.trace_id if parent is None or parent.is_remote else None


class EnrichedSpan(ReadableSpan):
    """A finished span with other attributes, built through ReadableSpan's public surface only.

    The public fallback of :func:`with_attributes`, and the form used for
    ReadableSpan subclasses: every field comes from a public property, and the
    dropped counts (which the constructor cannot take) are those of the original.
    """

    def __init__(self, span: ReadableSpan, attributes: Mapping[str, Any]) -> None:
        super().__init__(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=attributes,
            events=span.events,
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )
        self.spanledger_dropped = (span.dropped_attributes, span.dropped_events,
                                   span.dropped_links)

    @property
    def dropped_attributes(self) -> int:
        return self.spanledger_dropped[0]

    @property
    def dropped_events(self) -> int:
        return self.spanledger_dropped[1]

    @property
    def dropped_links(self) -> int:
        return self.spanledger_dropped[2]


def _fast_with_attributes() -> Callable[[ReadableSpan, dict[str, Any]], ReadableSpan]:
    def with_attributes(span: ReadableSpan, attributes: dict[str, Any]) -> ReadableSpan:
        """A shallow copy with new attributes: no constructor, no Resource, no re-validation."""
        if type(span) is not ReadableSpan:
            return EnrichedSpan(span, attributes)
        old = span._attributes
        merged: Any = attributes
        if type(old) is BoundedAttributes and old.dropped:
            bounded = BoundedAttributes(immutable=False)
            bounded._dict = attributes
            bounded.dropped = old.dropped
            bounded._immutable = True
            merged = bounded
        new = object.__new__(ReadableSpan)
        new.__dict__ = span.__dict__.copy()
        new._attributes = merged
        return new

    return with_attributes


def _public_with_attributes(span: ReadableSpan, attributes: dict[str, Any]) -> ReadableSpan:
    return EnrichedSpan(span, attributes)


def _fast_plain_mapping() -> Callable[[Mapping[str, Any]], Mapping[str, Any]]:
    get_referents = gc.get_referents

    def plain_mapping(attrs: Mapping[str, Any]) -> Mapping[str, Any]:
        """The dict behind ``span.attributes`` (a proxy over BoundedAttributes), read-only.

        Reading usage probes a dozen names, most of them missing; the proxy's
        ``get`` of a missing key raises and catches KeyError inside (~0.5 us each).
        """
        kind = type(attrs)
        if kind is dict:
            return attrs
        if kind is MappingProxyType:
            inner = get_referents(attrs)  # the proxied mapping, without copying
            if len(inner) == 1:
                attrs = inner[0]
                if type(attrs) is dict:
                    return attrs
        plain = getattr(attrs, "_dict", None) if type(attrs) is BoundedAttributes else None
        return plain if type(plain) is dict else attrs

    return plain_mapping


def _public_plain_mapping(attrs: Mapping[str, Any]) -> Mapping[str, Any]:
    return attrs


def _fast_propagator_members() -> Callable[[Any], list[Any]]:
    from opentelemetry.propagators.composite import CompositePropagator

    def propagator_members(propagator: Any) -> list[Any]:
        if type(propagator) is CompositePropagator:
            return list(propagator._propagators)
        return [propagator]

    return propagator_members


def _public_propagator_members(propagator: Any) -> list[Any]:
    return [propagator]


#: the SDK's own on_start bodies, all empty (the check verifies it)
NOOP_HOOK_OWNERS = (SpanProcessor, BatchSpanProcessor, SimpleSpanProcessor)
#: the SDK's private hook, called on processors between span end and on_end
ON_ENDING = "_on_ending"


def _no_on_ending(span: Any) -> None:
    """The hook of a wrapped processor that has none."""


def on_ending_of(processor: SpanProcessor) -> Callable[[Any], None]:
    """What a wrapping processor exposes as its own ``_on_ending`` (the SDK's private hook):
    the wrapped processor's bound hook itself, so the SDK calls it with no forwarding
    frame in between (a Python call per span saved). Should a release rename the hook,
    the SDK calls its new name on the wrapper (the base class no-op) and the wrapped
    processor misses it, exactly as a processor that never had it."""
    return getattr(processor, ON_ENDING, _no_on_ending)


def _fast_forward_hook() -> Callable[[SpanProcessor, str], Any]:
    noop = frozenset(cls.on_start for cls in NOOP_HOOK_OWNERS)

    def forward_hook(processor: SpanProcessor, name: str) -> Any:
        """The bound hook, or None when it is an SDK no-op (a Python call per span saved)."""
        impl = getattr(type(processor), name, None)
        return None if impl is None or impl in noop else getattr(processor, name)

    return forward_hook


def _public_forward_hook(processor: SpanProcessor, name: str) -> Any:
    return getattr(processor, name, None)


def _fast_sdk_configurator() -> Callable[[], type | None]:
    import inspect

    from opentelemetry.sdk import _configuration

    cls = _configuration._OTelSDKConfigurator
    params = inspect.signature(_configuration._initialize_components).parameters
    if "export_span_processor" not in params:
        raise TypeError("_initialize_components() takes no export_span_processor")
    return lambda: cls


def _public_sdk_configurator() -> type | None:
    return None


@dataclass(frozen=True, slots=True)
class Accessor:
    """One fast path: what it reads, how to build it, its fallback."""

    name: str
    internal: str
    fast: Callable[[], Callable[..., Any]]
    public: Callable[..., Any]
    #: checked at first use instead of at import (its import is not paid by every service)
    lazy: bool = False


ACCESSORS: dict[str, Accessor] = {a.name: a for a in (
    Accessor("current_context", "context._RUNTIME_CONTEXT._current_context",
             _fast_current_context, _public_current_context),
    Accessor("baggage_of", "baggage._BAGGAGE_KEY", _fast_baggage_of, _public_baggage_of),
    Accessor("context_span_attributes", "trace.propagation._SPAN_KEY, Span._attributes._dict",
             _fast_context_span_attributes, _public_context_span_attributes),
    Accessor("local_parent_id", "Span._parent, SpanContext tuple positions",
             _fast_local_parent_id, _public_local_parent_id),
    Accessor("trace_id_of", "Span._context, SpanContext tuple position 0",
             _fast_trace_id_of, _public_trace_id_of),
    Accessor("span_id_of", "Span._context, SpanContext tuple position 1",
             _fast_span_id_of, _public_span_id_of),
    Accessor("span_facts", "Span._context, Span._parent, SpanContext tuple positions, "
             "Span._start_time, Span._end_time", _fast_span_facts, _public_span_facts),
    Accessor("read_attributes", "Span._attributes, BoundedAttributes._dict",
             _fast_read_attributes, _public_read_attributes),
    Accessor("add_attributes", "BoundedAttributes._dict / maxlen / max_value_len",
             _fast_add_attributes, _public_add_attributes),
    Accessor("with_attributes", "ReadableSpan.__dict__, BoundedAttributes _dict / dropped / "
             "_immutable", _fast_with_attributes, _public_with_attributes),
    Accessor("plain_mapping", "MappingProxyType referent, BoundedAttributes._dict",
             _fast_plain_mapping, _public_plain_mapping),
    Accessor("propagator_members", "CompositePropagator._propagators",
             _fast_propagator_members, _public_propagator_members),
    Accessor("forward_hook", "empty on_start bodies of the SDK's processors",
             _fast_forward_hook, _public_forward_hook),
    Accessor("sdk_configurator", "sdk._configuration._OTelSDKConfigurator, its "
             "export_span_processor option", _fast_sdk_configurator, _public_sdk_configurator,
             lazy=True),
)}


def _first_use_sdk_configurator() -> type | None:
    check(["sdk_configurator"])
    return sdk_configurator()


# Typed module attributes (rebound by check() below, at import).
current_context: Callable[[], context_api.Context] = _public_current_context
baggage_of: Callable[[context_api.Context], Any] = _public_baggage_of
context_span_attributes: Callable[[context_api.Context], Any] = _public_context_span_attributes
local_parent_id: Callable[[Any], int | None] = _public_local_parent_id
trace_id_of: Callable[[Any], int] = _public_trace_id_of
span_id_of: Callable[[Any], int] = _public_span_id_of
span_facts: Callable[[Any], SpanFacts] = _public_span_facts
read_attributes: Callable[[Any], Mapping[str, Any]] = _public_read_attributes
add_attributes: Callable[[Any, Mapping[str, Any]], int | None] = _public_add_attributes
with_attributes: Callable[[ReadableSpan, dict[str, Any]], ReadableSpan] = _public_with_attributes
plain_mapping: Callable[[Mapping[str, Any]], Mapping[str, Any]] = _public_plain_mapping
propagator_members: Callable[[Any], list[Any]] = _public_propagator_members
forward_hook: Callable[[SpanProcessor, str], Any] = _public_forward_hook
#: the SDK's configurator class (``opentelemetry-instrument``), or None: use ``configure()``
sdk_configurator: Callable[[], type | None] = _first_use_sdk_configurator


def _fall_back(accessor: Accessor, reason: str) -> None:
    """Switch one accessor to the public API: log once, count."""
    globals()[accessor.name] = accessor.public
    with _lock:
        already = accessor.name in STATS.reasons  # counted once per switch, not per check
        STATS.reasons[accessor.name] = reason
        if already:
            return
        STATS.fallbacks += 1
        _switches[accessor.name] = _switches.get(accessor.name, 0) + 1
        first = accessor.name not in _warned
        _warned.add(accessor.name)
    if first and not reason.startswith(_FORCED):
        from importlib.metadata import PackageNotFoundError, version

        try:
            sdk = version("opentelemetry-sdk")
        except PackageNotFoundError:  # pragma: no cover - the SDK is a dependency
            sdk = "?"
        logger.warning(
            "spanledger: opentelemetry-sdk %s changed an internal the cost processor reads "
            "(%s: %s; %s). Using the public API for %s instead: spans are still priced, "
            "slightly slower. Counted in spanledger.sdk_access.fallbacks.",
            sdk, accessor.name, accessor.internal, reason, accessor.name)


def check(names: Iterable[str] | None = None) -> dict[str, str | None]:
    """Run the self-check: each fast path against the public API on real spans.

    Returns accessor -> None (fast path kept) or the reason it fell back. Runs at
    import for every accessor but the lazy ones (checked at first use); tests run
    it again after breaking a fast path on purpose. Accessors forced public by
    ``SPANLEDGER_SDK_PUBLIC`` stay public.
    """
    from spanledger.processor import sdk_check

    wanted = ([n for n, a in ACCESSORS.items() if not a.lazy] if names is None
              else list(names))
    forced = _forced_public()
    results: dict[str, str | None] = {}
    setup_error: str | None = None
    probes: sdk_check.Probes | None = None
    try:
        probes = sdk_check.Probes(tuple(NOOP_HOOK_OWNERS))
    except Exception as exc:  # the fixture itself broke: trust no fast path
        setup_error = f"self-check could not build its spans: {type(exc).__name__}: {exc}"
    with _lock:
        STATS.checks += 1
    for name in wanted:
        accessor = ACCESSORS[name]
        if name in forced or "all" in forced:
            reason: str | None = f"{_FORCED} by {_ENV}"
        elif probes is None:
            reason = setup_error
        else:
            try:
                impl = accessor.fast()
                reason = probes.verify(name, impl)
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
        if reason is None:
            globals()[name] = impl
            with _lock:
                STATS.reasons.pop(name, None)
        else:
            _fall_back(accessor, reason)
        results[name] = reason
    return results


_ENV = "SPANLEDGER_SDK_PUBLIC"
_FORCED = "forced"


def _forced_public() -> set[str]:
    """``SPANLEDGER_SDK_PUBLIC``: ``all`` or accessor names (comma-separated) to keep on the
    public API whatever the check says: for operators who distrust a release, and benchmarks."""
    import os

    return {n.strip() for n in os.environ.get(_ENV, "").split(",") if n.strip()}


def use_public(names: Iterable[str] | None = None) -> None:
    """Force accessors onto the public API (benchmarks, tests; like ``SPANLEDGER_SDK_PUBLIC``)."""
    for name in ACCESSORS if names is None else names:
        _fall_back(ACCESSORS[name], f"{_FORCED} by use_public()")


check()
