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
  a SpanContext). Baggage that is present wins as is (no merging). Values that
  are invalid (length, characters, a team outside a closed list) are dropped and
  counted; attribution that came with a request from outside is checked where it
  arrived (:mod:`.baggage_trust`), and by the processor itself for a span whose
  parent is remote when the check was not in the path.
- ``on_end``: price the span (``spanledger.pricing.price_span``), number the
  priced calls of the trace (``spanledger.step``), keep the running total
  (``spanledger.trace.cost_to_date``), and mark spans whose descendants carry
  priced usage as ``aggregate`` (no cost of their own, ``spanledger.cost.rollup``
  = their descendants' sum) so nothing is counted twice; mark the second span of a
  provider call that another span already counts (an SDK's own span beside an
  instrumentation's) as ``duplicate`` (rule: ``spanledger.pricing.duplicates``).

Aggregate rule (documented decision): a span is ``aggregate`` when it is a
GenAI span (it has ``gen_ai.operation.name`` or priceable usage) and some
descendant ended here priced, OR when its operation is ``invoke_agent`` /
``invoke_workflow`` whatever its children. The latter covers agents whose steps
ran in another process: their usage is by definition the sum of steps that are
(or should be) priced where they ran, so counting it would double the trace.

Other tools' costs: a span that arrives with a cost of its own (openlit, litellm,
logfire write one) keeps it as ``spanledger.cost.reported`` beside ours, never summed;
a disagreement beyond 1 ppm is counted (``stats.reported_disagreements`` and the
``spanledger.cost.reported.disagreements`` counter). With ``semconv_cost`` (or
``SPANLEDGER_SEMCONV_COST=1``) the cost is also written as ``gen_ai.usage.cost.amount``
/ ``gen_ai.usage.cost.currency``.

Cost on the hot path: a plain span costs a cached baggage lookup and one dict
update at start, and a set-disjointness test at end (no copy, no lock); only
local roots write one entry (the fallback table). See bench/bench_processor.py.

Safety: any exception while enriching is caught, logged once and counted in
:attr:`CostSpanProcessor.stats`, and the ORIGINAL span is exported. Every read
of an OpenTelemetry internal goes through :mod:`spanledger.processor.sdk_access`,
whose start-up self-check puts a fast path that a new SDK release broke back on
the public API (logged, counted), so spans keep their cost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import metrics
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from spanledger import semconv as sc
from spanledger.pricing.conventions import CALL_KEYS, GENAI, is_special_scope
from spanledger.pricing.duplicates import facts as call_facts
from spanledger.pricing.span_pricing import (
    THEIR_COST_NAMES,
    call_attributes,
    reported_disagrees,
    semconv_cost_from_env,
)
from spanledger.pricing.types import PICO_PER_USD, USD_SCALE, ZERO
from spanledger.pricing.usage import read_call

from . import baggage_trust, sdk_access

__all__ = ["CostSpanProcessor", "ProcessorStats"]

logger = logging.getLogger("spanledger.processor")

_EMPTY: dict[str, Any] = {}
_BAG_CACHE_MAX = 512
# semconv names and values bound once: module globals, not two attribute loads per use
_OPERATION, _AGGREGATE_OPS = sc.OPERATION, sc.AGGREGATE_OPERATIONS
_COST, _COST_INPUT, _COST_OUTPUT = sc.COST, sc.COST_INPUT, sc.COST_OUTPUT
_COST_CACHE_READ, _COST_CACHE_WRITE = sc.COST_CACHE_READ, sc.COST_CACHE_WRITE
_COST_STATUS, _COST_ROLLUP, _PRICE_SOURCE = sc.COST_STATUS, sc.COST_ROLLUP, sc.PRICE_SOURCE
_STEP, _TO_DATE = sc.STEP, sc.TRACE_COST_TO_DATE
_PRICED, _UNPRICED, _AGGREGATE = sc.STATUS_PRICED, sc.STATUS_UNPRICED, sc.STATUS_AGGREGATE
_NO_USAGE = sc.STATUS_NO_USAGE
_DUPLICATE, _DUPLICATE_OF = sc.STATUS_DUPLICATE, sc.DUPLICATE_OF
_COST_AMOUNT, _COST_CURRENCY, _COST_REPORTED = sc.COST_AMOUNT, sc.COST_CURRENCY, sc.COST_REPORTED
_GENAI = GENAI

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
DUPLICATES_COUNTER = _meter.create_counter(
    "spanledger.spans.duplicate", unit="{span}",
    description="second spans of a provider call another span already counts (not priced)")
DISAGREEMENTS_COUNTER = _meter.create_counter(
    "spanledger.cost.reported.disagreements", unit="{span}",
    description="priced spans whose cost reported by another tool differs from ours")


def _keyset(*groups: str | Iterable[str]) -> frozenset[str]:
    out: set[str] = set()
    for g in groups:
        out.update((g,) if isinstance(g, str) else g)
    return frozenset(out)


#: any of these on a span means "ask the pricing module" (plain spans skip it): every
#: usage convention's names; the catalog's per-call keys (db.system.name, gen_ai.tool.name)
#: are added when it has such prices
_GENAI_TRIGGERS = _keyset(CALL_KEYS, sc.REASONING_TOKENS)



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
    #: second spans of a call another span already counted (status ``duplicate``)
    duplicates: int = 0
    #: priced spans that arrived with another tool's cost
    reported: int = 0
    #: ... whose cost differs from ours by more than 1 ppm
    reported_disagreements: int = 0


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
        semconv_cost: also write the cost as ``gen_ai.usage.cost.amount`` (USD) and
            ``gen_ai.usage.cost.currency``; default: ``SPANLEDGER_SEMCONV_COST``.
        trust_baggage: which attribution arriving in baggage from outside is taken:
            ``signed`` (default; nothing without a key), ``all`` or ``none``; default
            ``SPANLEDGER_TRUST_BAGGAGE`` (see :mod:`.baggage_trust`).
        baggage_keys: keys that sign (``attribute()``) and verify attribution baggage:
            ``"secret"`` or ``"id:secret,id2:secret2"`` (the first signs); default
            ``SPANLEDGER_BAGGAGE_KEYS``.
        teams: the closed list of teams a span may name; default ``SPANLEDGER_TEAMS``.
        The three are process-wide (baggage is): given here they replace the settings a
        processor or ``configure()`` installed before; all None keeps those.
    """

    # Slots: the per-span hooks read a dozen of these per span, and a slot read is a fixed
    # offset, where an instance with this many attributes falls back to dict lookups.
    __slots__ = ("_add_attributes", "_bag_cache", "_baggage_of", "_calls", "_check_call",
                 "_context_span_attributes",
                 "_current_context", "_keys", "_last_bag", "_last_ctx", "_last_scope",
                 "_local_parent_id",
                 "_lock", "_logged", "_max_pending", "_max_roots", "_next", "_next_on_end",
                 "_next_on_start", "_pending", "_pending_items", "_price_span",
                 "_read_attributes", "_require_attrs", "_roots_items", "_span_facts",
                 "_span_id_of", "_trace_id_of", "_trace_items", "_triggers", "_with_attributes",
                 "attribution_keys", "catalog", "require", "roots", "semconv_cost", "stats",
                 "traces",
                 sdk_access.ON_ENDING)

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
        semconv_cost: bool | None = None,
        trust_baggage: str | None = None,
        baggage_keys: str | Mapping[str, str] | None = None,
        teams: Iterable[str] | None = None,
    ) -> None:
        # the pricing module's one decision, in its integer pico-dollar form (no Decimals per span)
        from spanledger.pricing.span_pricing import price_span_pico

        from .state import CallIndex, PendingRollups, RootTable, TraceTable

        if catalog is None:
            from spanledger.pricing.catalog import PriceCatalog

            catalog = PriceCatalog(prices) if prices else PriceCatalog.from_env()
        self._next = next_processor
        self._next_on_end = next_processor.on_end
        # skip the calls when the wrapped processor keeps the SDK's no-op hooks
        self._next_on_start = sdk_access.forward_hook(next_processor, "on_start")
        # the SDK's private between-end-and-on_end hook: the wrapped processor's own, exposed
        setattr(self, sdk_access.ON_ENDING, sdk_access.on_ending_of(next_processor))
        # the SDK accessors the self-check chose (fast, or public after an SDK change)
        self._current_context = sdk_access.current_context
        self._baggage_of = sdk_access.baggage_of
        self._context_span_attributes = sdk_access.context_span_attributes
        self._local_parent_id = sdk_access.local_parent_id
        self._trace_id_of = sdk_access.trace_id_of
        self._span_id_of = sdk_access.span_id_of
        self._span_facts = sdk_access.span_facts
        self._read_attributes = sdk_access.read_attributes
        self._add_attributes = sdk_access.add_attributes
        self._with_attributes = sdk_access.with_attributes
        self.catalog = catalog
        self._price_span = price_span_pico
        self._triggers = _GENAI_TRIGGERS | frozenset(getattr(catalog, "call_keys", None) or ())
        keys = tuple(attribution_keys) if attribution_keys is not None else (
            sc.DEFAULT_ATTRIBUTION_KEYS)
        #: (baggage key, span attribute) pairs
        self._keys: tuple[tuple[str, str], ...] = tuple((k, sc.attribution_attr(k)) for k in keys)
        self.attribution_keys = keys
        given = (trust_baggage, baggage_keys, teams) != (None, None, None)
        baggage_trust.install(baggage_trust.BaggageTrust.of(
            trust_baggage=trust_baggage, baggage_keys=baggage_keys, teams=teams,
            attribution_keys=keys) if given else None, keys)
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
        #: recently counted calls, to find the second span of one (bounded like the traces)
        self._calls = CallIndex(max_keys=2048)
        self._check_call = self._calls.check_and_add
        self.semconv_cost = semconv_cost_from_env() if semconv_cost is None else semconv_cost
        self._last_bag: tuple[object, dict[str, Any]] = (object(), _EMPTY)
        self._last_ctx: tuple[object, dict[str, Any]] = (object(), _EMPTY)
        self._last_scope: tuple[object, str, str | None] = (object(), "", None)
        self.stats = ProcessorStats()
        self._bag_cache: dict[int, tuple[object, dict[str, Any]]] = {}
        self._logged: set[object] = set()

    # --- start: attribution -------------------------------------------------
    # on_start/on_end run for EVERY span of the service: one frame each, locals only,
    # no allocation on the common path (the baggage -> attributes dict is cached).
    def on_start(self, span: Span, parent_context: context_api.Context | None = None) -> None:
        try:
            ctx = parent_context if parent_context is not None else self._current_context()
            last = self._last_ctx  # (context, attribution of its baggage): siblings share one
            if last[0] is ctx:
                own = last[1]
            else:
                own = self._own(ctx)
                self._last_ctx = (ctx, own)  # one tuple: other threads never see a torn pair
            if not own:
                own = self._inherit(ctx, span)
            if own:
                root_trace = self._add_attributes(span, own)
                if root_trace is not None:  # a local root: remember for fallback
                    roots = self._roots_items
                    roots[root_trace] = own
                    if len(roots) > self._max_roots:
                        self.roots.trim()
        except Exception:  # never break the caller's span
            self._failed("on_start")
        next_on_start = self._next_on_start
        if next_on_start is not None:
            next_on_start(span, parent_context=parent_context)

    def _own(self, ctx: context_api.Context) -> dict[str, Any]:
        """The attribution in ``ctx``'s baggage (cached per baggage object), or _EMPTY."""
        bag = self._baggage_of(ctx)
        if not bag:
            return _EMPTY
        last = self._last_bag  # (baggage dict, its attribution): a one-entry cache
        if last[0] is bag:
            return last[1]
        hit = self._bag_cache.get(id(bag))
        own = hit[1] if hit is not None and hit[0] is bag else self._from_baggage(bag, ctx)
        self._last_bag = (bag, own)
        return own

    def _inherit(self, ctx: context_api.Context, span: Span) -> dict[str, Any]:
        """Attribution for a span whose context carries no attribution baggage.

        First the parent span in the context (a thread pool or callback handed
        the span over but not the context): its ``spanledger.*`` attributes.
        Then the trace's local root, for contexts that carry only a SpanContext.
        """
        parent_attrs = self._context_span_attributes(ctx)
        if parent_attrs:
            inherited = {attr: parent_attrs[attr] for _, attr in self._keys if attr in parent_attrs}
            if inherited:
                return inherited
        if self._local_parent_id(span) is not None:
            root = self.roots.get(self._trace_id_of(span))
            if root is not None:
                return root
        else:  # a local root without attribution: its trace id came from outside (it is in
            # every request's header), so its spans must not fall back to the attribution of
            # an earlier local root of that trace (another caller's request)
            self._roots_items.pop(self._trace_id_of(span), None)
        return _EMPTY

    def _from_baggage(self, bag: Any, ctx: context_api.Context) -> dict[str, Any]:
        own: dict[str, Any] = {}
        for key, attr in self._keys:
            value = bag.get(key)
            if value is not None and value != "":
                own[attr] = value if isinstance(value, str) else str(value)
        if own:  # invalid values, and inbound ones nothing vouches for, are never copied
            own = baggage_trust.checked(own, self._keys, bag, ctx)
        if not own:
            own = _EMPTY
        cache = self._bag_cache
        if len(cache) >= _BAG_CACHE_MAX:
            cache.clear()
        cache[id(bag)] = (bag, own)
        return own

    # --- end: cost ----------------------------------------------------------
    def on_end(self, span: ReadableSpan) -> None:
        out = span
        try:
            pending_items = self._pending_items
            pending = (pending_items.pop(self._span_id_of(span), None) if pending_items
                       else None)
            raw = self._read_attributes(span)
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
        # the copy handed on, made first: pricing then reads a plain dict even when the SDK
        # accessors are on the public API (``raw`` a read-only proxy)
        merged = dict(raw)
        op = merged.get(_OPERATION)
        trace_id, parent_id, start_ns, end_ns = self._span_facts(span)
        scope_info = span.instrumentation_scope
        # (scope object, its name, the name if it picks a convention else None): spans of
        # one tracer share one scope object, so this is computed once per tracer in a row
        last = self._last_scope
        if last[0] is not scope_info:
            name = scope_info.name if scope_info is not None else ""
            last = self._last_scope = (scope_info, name, name if is_special_scope(name) else None)
        scope = last[1]
        price = self._price_span(self.catalog, merged, start_ns, last[2])
        if op in _AGGREGATE_OPS:
            return self._aggregate(span, merged, pending, parent_id)
        if price is None:
            if pending is not None:
                return self._aggregate(span, merged, pending, parent_id, op is None)
            return span
        status, parts, source, _, _, counts, _, reading, tier = price
        if counts is not None and status != _NO_USAGE:  # a call with usage, priced or not
            calls = self._calls
            if calls.multi:  # two instrumentations here: an earlier span of this call?
                other = self._same_call(span, merged, reading, scope, trace_id, parent_id,
                                        start_ns, end_ns)
            elif scope == calls.scope:  # the one instrumentation so far: just remember it
                # (the span alone, all of this one scope: keeping anything new alive, such as
                # a tuple or the attribute copy, costs every span a garbage-collector
                # promotion; a deque, so the oldest drops out)
                calls.ring.append(span)
                other = None
            else:
                other = calls.other_scope(span, scope, self._ring_facts)
            if other is not None:
                return self._duplicate(span, merged, pending, parent_id, reading, scope, other)
        if pending is not None:
            return self._aggregate(span, merged, pending, parent_id)
        if reading is not None and reading[7] is not None:  # another tool's cost: ours replaces
            for name in THEIR_COST_NAMES:
                merged.pop(name, None)
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
            if self.semconv_cost:
                merged[_COST_AMOUNT] = total / PICO_PER_USD
                merged[_COST_CURRENCY] = "USD"
            traces = self._trace_items
            state = traces.get(trace_id)
            if state is None:  # the trace's first priced call here (or evicted)
                state = self.traces.create(trace_id, end_ns)
            pending_items = self._pending_items
            lock = self._lock  # one lock for the running total and the parent's rollup
            lock.acquire()  # (acquire/release: half the cost of ``with`` on this path)
            try:
                state.step = step = state.step + 1
                state.cost = to_date = state.cost + total
                if parent_id is not None:
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
            if parent_id is not None and len(pending_items) > self._max_pending:
                self._pending.trim()
            if self._require_attrs:
                self._check_required(raw, total, span)
        else:
            total = None
            merged[_COST_STATUS] = status
            if self._require_attrs and status == _UNPRICED:
                self._check_required(raw, None, span)
        if reading is not None and (reading[0] is not _GENAI or reading[5] is not None
                                    or reading[7] is not None):  # convention, tier, reported
            call_attributes(merged, reading, tier)
            if reading.reported_cost is not None and total is not None:
                self._compare_reported(reading.reported_cost, total)
        self.stats.enriched += 1  # handed on as a copy: the original's attributes are frozen
        return self._with_attributes(span, merged)

    def _aggregate(self, span: ReadableSpan, merged: dict[str, Any], pending: int | None,
                   parent_id: int | None, plain: bool = False) -> ReadableSpan:
        """A span whose descendants carry the cost: marked, rolled up, never counted."""
        if pending is not None and parent_id is not None:
            self._pending.add(parent_id, pending)
        if plain:
            return span  # a plain span between a priced call and its GenAI ancestor
        merged[_COST_STATUS] = _AGGREGATE
        merged[_COST_ROLLUP] = pending / PICO_PER_USD if pending is not None else 0.0
        self.stats.enriched += 1
        return self._with_attributes(span, merged)

    def _same_call(self, span: ReadableSpan, merged: dict[str, Any], reading: Any, scope: str,
                   trace_id: int, parent_id: int | None, start_ns: int, end_ns: int) -> Any:
        """The counted span this one duplicates (None: it is the first of its call, and is
        remembered); a duplicate is remembered too, so a third span of the call finds it."""
        if reading is None:  # a plain GenAI span was priced without a reading: read it now
            reading = read_call(merged, scope)
        found = call_facts(trace_id, self._span_id_of(span), parent_id, start_ns, end_ns, scope,
                           reading, False)
        if found is None:
            return None
        other = self._check_call(found)
        if other is not None:
            self._calls.add(found._replace(keeper=other.keeper))
        return other

    def _ring_facts(self, span: ReadableSpan, scope: str) -> Any:
        """The matching facts of a call the ring remembered: read again from the span's own
        attributes (rare: when a second instrumentation shows up)."""
        trace_id, parent_id, start_ns, end_ns = self._span_facts(span)
        return call_facts(trace_id, self._span_id_of(span), parent_id, start_ns, end_ns, scope,
                          read_call(dict(self._read_attributes(span)), scope), False)

    def _duplicate(self, span: ReadableSpan, merged: dict[str, Any], pending: int | None,
                   parent_id: int | None, reading: Any, scope: str, other: Any) -> ReadableSpan:
        """The second span of a call another span already counts: no cost, marked, counted."""
        if pending is not None and parent_id is not None:
            self._pending.add(parent_id, pending)  # its priced descendants still roll up
        if reading is None:
            reading = read_call(merged, scope)
        if reading.reported_cost is not None:
            for name in THEIR_COST_NAMES:
                merged.pop(name, None)
        merged[_COST_STATUS] = _DUPLICATE
        merged[_DUPLICATE_OF] = f"{other.keeper:016x}"
        call_attributes(merged, reading, None)
        with self._lock:
            self.stats.duplicates += 1
        DUPLICATES_COUNTER.add(1)
        self.stats.enriched += 1
        return self._with_attributes(span, merged)

    def _compare_reported(self, reported: float, total_pico: int) -> None:
        """Count a cost another tool reported for a span we priced, and whether it differs."""
        disagrees = reported_disagrees(reported, total_pico)
        with self._lock:
            self.stats.reported += 1
            if disagrees:
                self.stats.reported_disagreements += 1
        if disagrees:
            DISAGREEMENTS_COUNTER.add(1)

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
        self._calls.clear()
        self.traces.clear()
        self.roots.clear()
        self._pending.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._next.force_flush(timeout_millis)

    @property
    def next_processor(self) -> SpanProcessor:
        return self._next
