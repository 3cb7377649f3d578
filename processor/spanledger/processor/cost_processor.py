"""CostSpanProcessor: attribution on every span, cost on GenAI spans, per-trace totals.

It WRAPS the processor that exports (usually a BatchSpanProcessor) instead of
sitting beside it, because since opentelemetry-sdk 1.43 a span's attributes
are frozen before ``on_end``: the only way to add the cost is to hand the
wrapped processor an enriched copy (a new ``ReadableSpan`` with merged
attributes). Plain spans pass through untouched (no copy).

- ``on_start``: copy attribution from W3C baggage in the span's parent context
  to ``spanledger.<key>`` attributes. A span whose context carries no
  attribution baggage (a thread pool, a callback, a framework that hands over
  only the span) inherits the ``spanledger.*`` attributes of the parent span in
  its context, else those of its trace's local root (when the context holds only
  a SpanContext). Baggage that is present wins as is (no merging).
- ``on_end``: price the span (``spanledger.pricing.price_span``), number the
  priced calls of the trace (``spanledger.step``), keep the running total
  (``spanledger.trace.cost_to_date``), and mark spans whose descendants carry
  priced usage as ``aggregate`` (no cost of their own, ``spanledger.cost.rollup``
  = their descendants' sum) so nothing is counted twice.

Aggregate rule (documented decision): a span is ``aggregate`` when it is a
GenAI span (it has ``gen_ai.operation.name`` or priceable usage) and some
descendant ended here priced, OR when its operation is ``invoke_agent`` /
``invoke_workflow`` whatever its children. The latter covers agents whose steps
ran in another process: their usage is by definition the sum of steps that are
(or should be) priced where they ran, so counting it would double the trace.

Cost on the hot path: a plain span costs a cached baggage lookup and one dict
update at start, and a set-disjointness test at end (no copy, no lock); only
local roots write one entry (the fallback table). See bench/bench_processor.py.

Safety: any exception while enriching is caught, logged once and counted in
:attr:`CostSpanProcessor.stats`, and the ORIGINAL span is exported.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import metrics
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.baggage import _BAGGAGE_KEY
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace.propagation import _SPAN_KEY

from spanledger import semconv as sc
from spanledger.pricing.types import PICO_PER_USD, USD_SCALE, ZERO

__all__ = ["CostSpanProcessor", "ProcessorStats"]

logger = logging.getLogger("spanledger.processor")

_EMPTY: dict[str, Any] = {}
# The current context, one C call away (the API function adds two Python frames).
_runtime = getattr(context_api, "_RUNTIME_CONTEXT", None)
_current_context = getattr(getattr(_runtime, "_current_context", None), "get", None) or (
    context_api.get_current)
_BAG_CACHE_MAX = 512
_TRACE_ID, _SPAN_ID, _IS_REMOTE = 0, 1, 2  # positions in the SpanContext tuple
# semconv names and values bound once: module globals, not two attribute loads per use
_OPERATION, _AGGREGATE_OPS = sc.OPERATION, sc.AGGREGATE_OPERATIONS
_COST, _COST_INPUT, _COST_OUTPUT = sc.COST, sc.COST_INPUT, sc.COST_OUTPUT
_COST_CACHE_READ, _COST_CACHE_WRITE = sc.COST_CACHE_READ, sc.COST_CACHE_WRITE
_COST_STATUS, _COST_ROLLUP, _PRICE_SOURCE = sc.COST_STATUS, sc.COST_ROLLUP, sc.PRICE_SOURCE
_STEP, _TO_DATE = sc.STEP, sc.TRACE_COST_TO_DATE
_PRICED, _UNPRICED, _AGGREGATE = sc.STATUS_PRICED, sc.STATUS_UNPRICED, sc.STATUS_AGGREGATE

# OpenTelemetry counters (no-ops until the application installs a MeterProvider),
# mirroring ProcessorStats for dashboards and alerts.
_meter = metrics.get_meter("spanledger.processor")
ERRORS_COUNTER = _meter.create_counter(
    "spanledger.processor.errors", unit="{error}",
    description="exceptions caught while enriching spans (the span was exported as is)")
UNATTRIBUTED_CALLS = _meter.create_counter(
    "spanledger.unattributed.calls", unit="{call}",
    description="LLM calls missing an attribution key listed in `require`")
UNATTRIBUTED_COST = _meter.create_counter(
    "spanledger.unattributed.cost", unit="USD",
    description="priced spend of LLM calls missing a required attribution key")


#: the SDK's own on_start / _on_ending bodies, all ``pass``: a wrapped processor that keeps
#: one of them is not called for it (a Python call per span saved, nothing else changes)
_NOOP_HOOKS = frozenset(
    getattr(cls, name)
    for cls in (SpanProcessor, BatchSpanProcessor, SimpleSpanProcessor)
    for name in ("on_start", "_on_ending")
)


def _hook(processor: SpanProcessor, name: str) -> Any:
    """The bound ``name`` hook of ``processor``, or None when it is one of the SDK no-ops."""
    impl = getattr(type(processor), name, None)
    return None if impl is None or impl in _NOOP_HOOKS else getattr(processor, name)


def _keyset(*groups: str | Iterable[str]) -> frozenset[str]:
    out: set[str] = set()
    for g in groups:
        out.update((g,) if isinstance(g, str) else g)
    return frozenset(out)


#: any of these on a span means "ask the pricing module" (plain spans skip it); the
#: catalog's per-call keys (db.system.name, gen_ai.tool.name) are added when it has such prices
_GENAI_TRIGGERS = _keyset(
    sc.OPERATION, sc.PROVIDER, sc.REQUEST_MODEL, sc.RESPONSE_MODEL, sc.INPUT_TOKENS,
    sc.OUTPUT_TOKENS, sc.CACHE_READ_TOKENS, sc.CACHE_WRITE_TOKENS, sc.REASONING_TOKENS,
    sc.TOTAL_TOKENS,
)


@dataclass(slots=True)
class ProcessorStats:
    """Counters an operator can read (and tests assert on)."""

    #: exceptions caught inside on_start/on_end (the span still went out)
    errors: int = 0
    #: priced or unpriced calls that missed a key listed in ``require``
    unattributed_calls: int = 0
    #: USD of those calls that were priced
    unattributed_cost: Decimal = ZERO
    #: spans handed on as an enriched copy
    enriched: int = 0


class CostSpanProcessor(SpanProcessor):
    """Wrap ``next_processor`` (e.g. ``BatchSpanProcessor(exporter)``) with attribution and cost.

    Args:
        next_processor: receives every span; GenAI spans as an enriched copy.
        catalog: a ``spanledger.pricing.catalog.PriceCatalog``; default: built
            from ``prices`` (an overrides YAML path) or ``SPANLEDGER_PRICES_FILE``.
        attribution_keys: baggage keys copied to ``spanledger.<key>``
            (default team, feature, customer, user, cost_center).
        require: keys every priced call should carry; a call without them is
            logged (once per missing set) and counted, never dropped.
        max_traces / max_age_s: bounds of the per-trace state.
    """

    def __init__(
        self,
        next_processor: SpanProcessor,
        *,
        catalog: Any = None,
        prices: str | None = None,
        attribution_keys: Iterable[str] | None = None,
        require: Iterable[str] | None = None,
        max_traces: int = 10_000,
        max_age_s: float = 3600.0,
    ) -> None:
        # the pricing module's one decision, in its integer pico-dollar form (no Decimals per span)
        from spanledger.pricing.span_pricing import price_span_pico

        from .state import PendingRollups, RootTable, TraceTable

        if catalog is None:
            from spanledger.pricing.catalog import PriceCatalog

            catalog = PriceCatalog(prices) if prices else PriceCatalog.from_env()
        self._next = next_processor
        self._next_on_end = next_processor.on_end
        # skip the calls when the wrapped processor keeps the SDK's no-op hooks
        self._next_on_start = _hook(next_processor, "on_start")
        self._next_on_ending = _hook(next_processor, "_on_ending")
        self.catalog = catalog
        self._price_span = price_span_pico
        self._triggers = _GENAI_TRIGGERS | frozenset(getattr(catalog, "call_keys", None) or ())
        keys = tuple(attribution_keys) if attribution_keys is not None else (
            sc.DEFAULT_ATTRIBUTION_KEYS)
        #: (baggage key, span attribute) pairs
        self._keys: tuple[tuple[str, str], ...] = tuple((k, sc.attribution_attr(k)) for k in keys)
        self._nkeys = len(self._keys)
        self.attribution_keys = keys
        self.require: tuple[str, ...] = tuple(require or ())
        self._require_attrs = tuple(sc.attribution_attr(k) for k in self.require)
        self.traces = TraceTable(max_traces=max_traces, max_age_s=max_age_s)
        self._trace_items = self.traces.items
        self.roots = RootTable(max_items=max_traces)
        self._roots_items = self.roots.items
        self._max_roots = self.roots.max_items
        self._lock = threading.Lock()
        self._pending = PendingRollups(max_entries=max(10 * max_traces, 1000), lock=self._lock)
        self._pending_items = self._pending.items
        self._max_pending = self._pending.max_entries
        self._last_bag: tuple[object, dict[str, Any]] = (object(), _EMPTY)
        self.stats = ProcessorStats()
        self._bag_cache: dict[int, tuple[object, dict[str, Any]]] = {}
        self._logged: set[object] = set()

    # --- start: attribution -------------------------------------------------
    # on_start/on_end run for EVERY span of the service: one frame each, locals only,
    # no allocation on the common path (the baggage -> attributes dict is cached).
    def on_start(self, span: Span, parent_context: context_api.Context | None = None) -> None:
        try:
            ctx = parent_context if parent_context is not None else _current_context()
            bag = ctx.get(_BAGGAGE_KEY)
            if bag:
                last = self._last_bag  # (baggage dict, its attribution): a one-entry cache
                if last[0] is bag:
                    own = last[1]
                else:
                    hit = self._bag_cache.get(id(bag))
                    own = hit[1] if hit is not None and hit[0] is bag else self._from_baggage(bag)
                    self._last_bag = (bag, own)
            else:
                own = _EMPTY
            if not own:
                own = self._inherit(ctx, span)
            if own:
                parent = span._parent
                # SpanContext is a tuple (trace_id, span_id, is_remote, ...): index, not properties
                if parent is None or parent[_IS_REMOTE]:  # a local root: remember for fallback
                    roots = self._roots_items
                    roots[span._context[_TRACE_ID]] = own
                    if len(roots) > self._max_roots:
                        self.roots.trim()
                attrs = span._attributes
                if type(attrs) is BoundedAttributes and attrs.max_value_len is None and (
                    attrs.maxlen is None or len(attrs._dict) + len(own) <= attrs.maxlen
                ):
                    # Values were validated once when the baggage was read: no per-span cleaning.
                    attrs._dict.update(own)
                else:
                    span.set_attributes(own)
        except Exception:  # never break the caller's span
            self._failed("on_start")
        next_on_start = self._next_on_start
        if next_on_start is not None:
            next_on_start(span, parent_context=parent_context)

    def _inherit(self, ctx: context_api.Context, span: Span) -> dict[str, Any]:
        """Attribution for a span whose context carries no attribution baggage.

        First the parent span in the context (a thread pool or callback handed
        the span over but not the context): its ``spanledger.*`` attributes.
        Then the trace's local root, for contexts that carry only a SpanContext.
        """
        parent_attrs = getattr(getattr(ctx.get(_SPAN_KEY), "_attributes", None), "_dict", None)
        if parent_attrs:
            inherited = {attr: parent_attrs[attr] for _, attr in self._keys if attr in parent_attrs}
            if inherited:
                return inherited
        parent = span._parent
        if parent is not None and not parent.is_remote:
            root = self.roots.get(span._context.trace_id)
            if root is not None:
                return root
        return _EMPTY

    def _from_baggage(self, bag: Any) -> dict[str, Any]:
        own: dict[str, Any] = {}
        for key, attr in self._keys:
            value = bag.get(key)
            if value is not None and value != "":
                own[attr] = value if isinstance(value, str) else str(value)
        if not own:
            own = _EMPTY
        cache = self._bag_cache
        if len(cache) >= _BAG_CACHE_MAX:
            cache.clear()
        cache[id(bag)] = (bag, own)
        return own

    def _on_ending(self, span: Span) -> None:
        if self._next_on_ending is not None:
            self._next_on_ending(span)

    # --- end: cost ----------------------------------------------------------
    def on_end(self, span: ReadableSpan) -> None:
        out = span
        try:
            pending_items = self._pending_items
            pending = pending_items.pop(span._context[_SPAN_ID], None) if pending_items else None
            attrs = span._attributes
            raw = attrs._dict if type(attrs) is BoundedAttributes else (attrs or _EMPTY)
            # (frozenset.isdisjoint(dict) walks the span's keys: a GenAI span hits on its first)
            if pending is not None or not self._triggers.isdisjoint(raw):
                out = self._enrich(span, raw, pending)
            # else: a plain span, exported as is (its attribution was set at start)
        except Exception:
            self._failed("on_end")
            out = span
        self._next_on_end(out)

    def _enrich(self, span: ReadableSpan, raw: Any, pending: int | None) -> ReadableSpan:
        """Price, number and roll up one span; money stays integer pico-dollars throughout.

        Sums of pico-dollar ints are exact, and ``pico / PICO_PER_USD`` (int / int) is
        the correctly rounded float of the exact amount, i.e. the same float as
        ``float()`` of the 1e-12-quantized Decimal: the attributes are those of
        ``SpanPrice.attributes()`` without building a Decimal per span.
        """
        op = raw.get(_OPERATION)
        price = self._price_span(self.catalog, raw, span._start_time or 0)
        parent = span._parent
        if pending is not None or op in _AGGREGATE_OPS:
            if pending is not None and parent is not None and not parent[_IS_REMOTE]:
                self._pending.add(parent[_SPAN_ID], pending)
            if op is None and price is None:
                return span  # a plain span between a priced call and its GenAI ancestor
            merged = raw.copy()
            merged[_COST_STATUS] = _AGGREGATE
            merged[_COST_ROLLUP] = pending / PICO_PER_USD if pending is not None else 0.0
            return self._copy(span, merged)
        if price is None:
            return span
        status, parts, source = price[0], price[1], price[2]
        merged = raw.copy()
        if status == _PRICED and parts is not None:
            a, b, c, d = parts
            total = a + b + c + d
            # the keys and order of SpanPrice.attributes()
            merged[_COST] = total / PICO_PER_USD
            merged[_COST_INPUT] = a / PICO_PER_USD
            merged[_COST_OUTPUT] = b / PICO_PER_USD
            merged[_COST_CACHE_READ] = c / PICO_PER_USD
            merged[_COST_CACHE_WRITE] = d / PICO_PER_USD
            merged[_COST_STATUS] = _PRICED
            merged[_PRICE_SOURCE] = source
            trace_id = span._context[_TRACE_ID]
            end_ns = span._end_time or 0
            traces = self._trace_items
            state = traces.get(trace_id)
            if state is None:  # the trace's first priced call here (or evicted)
                state = self.traces.create(trace_id, end_ns)
            local_parent = parent is not None and not parent[_IS_REMOTE]
            pending_items = self._pending_items
            lock = self._lock  # one lock for the running total and the parent's rollup
            lock.acquire()  # (acquire/release: half the cost of ``with`` on this path)
            try:
                state.step = step = state.step + 1
                state.cost = to_date = state.cost + total
                if local_parent:
                    parent_id = parent[_SPAN_ID]
                    pending_items[parent_id] = pending_items.get(parent_id, 0) + total
            finally:
                lock.release()
            state.last_ns = end_ns  # = TraceTable.touch, inlined
            try:  # noqa: SIM105 (contextlib.suppress costs a frame per span)
                traces.move_to_end(trace_id)
            except KeyError:  # evicted by another thread meanwhile: harmless
                pass
            merged[_STEP] = step
            merged[_TO_DATE] = to_date / PICO_PER_USD
            if local_parent and len(pending_items) > self._max_pending:
                self._pending.trim()
            if self._require_attrs:
                self._check_required(raw, total, span)
        else:
            merged[_COST_STATUS] = status
            if self._require_attrs and status == _UNPRICED:
                self._check_required(raw, None, span)
        return self._copy(span, merged)

    def _check_required(self, raw: Any, total_pico: int | None, span: ReadableSpan) -> None:
        total = None if total_pico is None else Decimal(total_pico).scaleb(-USD_SCALE)
        missing = tuple(k for k, a in zip(self.require, self._require_attrs, strict=True)
                        if not raw.get(a))
        if not missing:
            return
        with self._lock:
            self.stats.unattributed_calls += 1
            if total is not None:
                self.stats.unattributed_cost += total
        labels = {"spanledger.missing": ",".join(missing)}
        UNATTRIBUTED_CALLS.add(1, labels)
        if total is not None:
            UNATTRIBUTED_COST.add(float(total), labels)  # = total_pico / PICO_PER_USD
        key = ("require", missing)
        if key not in self._logged:
            self._logged.add(key)
            logger.warning(
                "LLM call %r has no %s attribution (required); it is exported and counted as "
                "unattributed spend. Wrap the caller in spanledger.attribute(%s=...).",
                span.name, ", ".join(missing), missing[0],
            )

    def _copy(self, span: ReadableSpan, merged: Any) -> ReadableSpan:
        """A new ReadableSpan with ``merged`` attributes (the original's are frozen)."""
        old = span._attributes
        if type(old) is BoundedAttributes and old.dropped:
            bounded = BoundedAttributes(immutable=False)
            bounded._dict = merged
            bounded.dropped = old.dropped
            bounded._immutable = True
            merged = bounded
        self.stats.enriched += 1
        if type(span) is ReadableSpan:
            new = object.__new__(ReadableSpan)
            new.__dict__ = span.__dict__.copy()
            new._attributes = merged
            return new
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=merged,
            events=span.events,
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    # --- plumbing -----------------------------------------------------------
    def _failed(self, where: str) -> None:
        with self._lock:
            self.stats.errors += 1
        ERRORS_COUNTER.add(1, {"spanledger.hook": where})
        if where not in self._logged:
            self._logged.add(where)
            logger.exception("spanledger: error in CostSpanProcessor.%s; the span is exported "
                             "without enrichment (logged once, counted in stats.errors)", where)

    def shutdown(self) -> None:
        self._next.shutdown()
        self.traces.clear()
        self.roots.clear()
        self._pending.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._next.force_flush(timeout_millis)

    @property
    def next_processor(self) -> SpanProcessor:
        return self._next
