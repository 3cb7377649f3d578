"""Per-trace and per-span state of the cost processor, bounded in count and age.

Why it exists, and why it is small: three things need memory across spans:
- attribution fallback to the trace root (a span whose context has neither
  baggage nor a parent span of ours takes its trace root's attribution);
- ``spanledger.step`` and ``spanledger.trace.cost_to_date`` (a running count
  and sum over the trace's priced calls in this process);
- the aggregate rollup: children end before parents, so a priced child adds
  its cost to its parent's pending sum; the parent, at its own end, passes the
  sum on to its parent. Every ancestor thus sees its descendants' sum without
  storing parent links for every span.

- duplicate detection: a provider call traced twice (an SDK's own span and an
  instrumentation's) is counted once; the spans counted recently are indexed by
  response id and by trace (:class:`CallIndex`) so the second can find the first.

Plain spans touch none of it except when they are a local root (one insert),
which is what keeps the processor cheap on the 99% of spans that are not LLM
calls. Memory is bounded: at most ``max_traces`` traces (least recently active
evicted first), traces idle longer than ``max_age_s`` are dropped (spans that
never end, leaked spans), and pending rollups are capped likewise.

Money here is integer pico-dollars (1e-12 USD, the stored scale): sums of them
are exact like sums of quantized Decimals, at a fraction of the cost per span.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from spanledger.pricing.duplicates import CallFacts, same_call

__all__ = ["CallIndex", "PendingRollups", "RootTable", "TraceState", "TraceTable"]

#: attribution of one span: {"spanledger.team": "search", ...}; shared, never mutated
Attribution = dict[str, Any]


class RootTable:
    """trace id -> attribution of its local root span (for the last-resort fallback).

    Written once per local root span, so it is a plain dict (one C-level store,
    no lock, no allocation); beyond ``max_items`` the older half is dropped in
    one pass, which keeps the cost amortized O(1).
    """

    __slots__ = ("_lock", "items", "max_items")

    def __init__(self, max_items: int = 10_000) -> None:
        self.items: dict[int, Attribution] = {}
        self.max_items = max(max_items, 1)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.items)

    def set(self, trace_id: int, attribution: Attribution) -> None:
        items = self.items
        items[trace_id] = attribution
        if len(items) > self.max_items:
            self.trim()

    def get(self, trace_id: int) -> Attribution | None:
        return self.items.get(trace_id)

    def trim(self) -> None:
        """Drop the older half, in place (the processor holds a reference to ``items``)."""
        with self._lock:
            items = self.items
            if len(items) <= self.max_items:
                return
            drop = len(items) - self.max_items // 2
            # resized by another thread meanwhile: RuntimeError, trim next time
            with contextlib.suppress(RuntimeError):
                for key in list(itertools.islice(items, drop)):
                    items.pop(key, None)

    def clear(self) -> None:
        self.items.clear()


class TraceState:
    """What one priced trace needs between its spans (in this process)."""

    __slots__ = ("cost", "last_ns", "step")

    def __init__(self, now_ns: int) -> None:
        self.step = 0
        #: running total in pico-dollars (exact integer sum)
        self.cost = 0
        self.last_ns = now_ns


class TraceTable:
    """trace id -> :class:`TraceState`, least recently active first."""

    __slots__ = ("_lock", "_traces", "evicted", "items", "max_age_ns", "max_traces")

    def __init__(self, max_traces: int = 10_000, max_age_s: float = 3600.0) -> None:
        if max_traces < 1:
            raise ValueError("max_traces must be >= 1")
        self.max_traces = max_traces
        self.max_age_ns = int(max_age_s * 1e9)
        self._traces: OrderedDict[int, TraceState] = OrderedDict()
        #: the same mapping, read directly by the processor's per-span path (no method frame);
        #: writers other than :meth:`touch` go through :meth:`create`
        self.items = self._traces
        self._lock = threading.Lock()
        #: traces dropped by the count or age bound (a counter for operators)
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._traces)

    def get(self, trace_id: int) -> TraceState | None:
        return self._traces.get(trace_id)

    def cost_pico(self, trace_id: int) -> int:
        """Running total (pico-dollars) of the trace's priced calls here; 0 if unseen or evicted.

        Read by the budget guard (``spanledger.guard``) before each LLM call.
        """
        state = self._traces.get(trace_id)
        return 0 if state is None else state.cost

    def touch(self, trace_id: int, state: TraceState, now_ns: int) -> None:
        """Mark a trace active (it moves to the young end of the eviction order)."""
        state.last_ns = now_ns
        try:  # (not contextlib.suppress: this runs per priced span)  # noqa: SIM105
            self._traces.move_to_end(trace_id)
        except KeyError:  # evicted by another thread meanwhile: harmless
            pass

    def create(self, trace_id: int, now_ns: int) -> TraceState:
        """Get or add a trace, evicting the least recently active ones beyond the bounds."""
        with self._lock:
            traces = self._traces
            state = traces.get(trace_id)
            if state is not None:
                return state
            state = TraceState(now_ns)
            traces[trace_id] = state
            if len(traces) > self.max_traces:
                traces.popitem(last=False)
                self.evicted += 1
            # Age bound: the oldest entries are the least recently active ones.
            cutoff = now_ns - self.max_age_ns
            while True:
                oldest = next(iter(traces.values()))
                if oldest.last_ns >= cutoff:
                    break
                traces.popitem(last=False)
                self.evicted += 1
            return state

    def clear(self) -> None:
        with self._lock:
            self._traces.clear()


class PendingRollups:
    """span id -> sum of its ended descendants' cost (pico-dollars), for spans still open.

    An entry disappears when its span ends. Entries whose span never ends (or
    ended before a late child) are capped at ``max_entries``, oldest first.
    """

    __slots__ = ("_lock", "dropped", "items", "max_entries")

    def __init__(self, max_entries: int = 100_000, lock: threading.Lock | None = None) -> None:
        self.items: dict[int, int] = {}
        self.max_entries = max_entries
        #: shared with the processor, which updates ``items`` under it together with step totals
        self._lock = lock or threading.Lock()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self.items)

    def add(self, span_id: int, amount: int) -> None:
        with self._lock:
            items = self.items
            items[span_id] = items.get(span_id, 0) + amount
        if len(self.items) > self.max_entries:
            self.trim()

    def trim(self) -> None:
        """Drop the oldest entries beyond the bound."""
        with self._lock:
            items = self.items
            while len(items) > self.max_entries:
                del items[next(iter(items))]
                self.dropped += 1

    def pop(self, span_id: int) -> int | None:
        return self.items.pop(span_id, None)

    def clear(self) -> None:
        with self._lock:
            self.items.clear()


class CallIndex:
    """Recently counted calls, for finding the second span of a call (pricing/duplicates.py).

    Two buckets per call: its response id (any trace: the anthropic SDK's span and
    OpenLLMetry's may sit in two traces) and its trace. Each bucket keeps its ``per_key``
    most recent calls, newest last, and is scanned newest first until a call that ended
    before this one started: the partner of a span overlaps it in time, so a long agent
    loop costs a look at its last call, not all of them. At most ``max_keys`` buckets per
    kind (the older half dropped beyond that).
    """

    __slots__ = ("_lock", "by_rid", "by_trace", "max_keys", "multi", "per_key", "ring",
                 "ring_size", "scope")

    def __init__(self, max_keys: int = 20_000, per_key: int = 16, ring_size: int = 64) -> None:
        self.by_rid: dict[str, list[CallFacts]] = {}
        self.by_trace: dict[Any, list[CallFacts]] = {}
        self.max_keys = max(max_keys, 2)
        self.per_key = max(per_key, 1)
        self._lock = threading.Lock()
        #: One instrumentation scope so far: no two of its spans are one call (rule 4 of
        #: pricing/duplicates.py), so its calls only go to ``ring`` (the last ``ring_size``
        #: spans themselves), not into the index.
        self.scope: str | None = None
        self.multi = False
        self.ring: deque[Any] = deque(maxlen=max(ring_size, 1))
        self.ring_size = max(ring_size, 1)

    def __len__(self) -> int:
        return len(self.by_rid) + len(self.by_trace)

    def other_scope(self, span: Any, scope: str,
                    to_facts: Callable[[Any, str], CallFacts | None]) -> CallFacts | None:
        """A counted span of a scope other than :attr:`scope` (the first one, or a second).

        The ring keeps the spans themselves (all of :attr:`scope`), turned into
        :class:`CallFacts` by ``to_facts`` only when needed. The first scope is remembered.
        A second switches to the index for good: the ring's calls go in first, so a partner
        that ended just before is found.
        """
        with self._lock:
            if self.scope is None:
                self.scope = scope
                self.ring.append(span)
                return None
            if not self.multi:
                for old in self.ring:
                    f = to_facts(old, self.scope)
                    if f is not None:
                        self.add(f)
                self.ring.clear()
                self.multi = True
        f = to_facts(span, scope)
        if f is None:
            return None
        other = self.check_and_add(f)
        if other is not None:  # remembered too: a third span of the call finds it
            self.add(f._replace(keeper=other.keeper))
        return other

    def check_and_add(self, f: CallFacts) -> CallFacts | None:
        """:meth:`find`, and :meth:`add` when nothing was found: the per-span form, in one
        frame (the processor calls it on every span with usage)."""
        rid = f.response_id
        rid_bucket = self.by_rid.get(rid) if rid is not None else None
        if rid_bucket:
            hit = _scan(rid_bucket, f)
            if hit is not None:
                return hit
        trace_bucket = self.by_trace.get(f.trace_id)
        if trace_bucket:
            hit = _scan(trace_bucket, f)
            if hit is not None:
                return hit
        self._put(self.by_rid, rid, f, rid_bucket)
        self._put(self.by_trace, f.trace_id, f, trace_bucket)
        return None

    def find(self, f: CallFacts) -> CallFacts | None:
        """An earlier counted span describing the same call as ``f``, or None."""
        if f.response_id is not None:
            hit = _scan(self.by_rid.get(f.response_id), f)
            if hit is not None:
                return hit
        return _scan(self.by_trace.get(f.trace_id), f)

    def add(self, f: CallFacts) -> None:
        """Remember a counted call (or a duplicate, whose ``keeper`` names the counted one)."""
        rid = f.response_id
        self._put(self.by_rid, rid, f, self.by_rid.get(rid) if rid is not None else None)
        self._put(self.by_trace, f.trace_id, f, self.by_trace.get(f.trace_id))

    def _put(self, table: dict[Any, list[CallFacts]], key: Any, f: CallFacts,
             bucket: list[CallFacts] | None) -> None:
        if key is None:
            return
        if bucket is None:
            table[key] = [f]
            if len(table) > self.max_keys:
                self._trim(table)
            return
        bucket.append(f)
        if len(bucket) > self.per_key:
            del bucket[0]

    def _trim(self, table: dict[Any, list[CallFacts]]) -> None:
        with self._lock:
            if len(table) <= self.max_keys:
                return
            drop = len(table) - self.max_keys // 2
            with contextlib.suppress(RuntimeError):  # resized meanwhile: trim next time
                for key in list(itertools.islice(table, drop)):
                    table.pop(key, None)

    def clear(self) -> None:
        self.by_rid.clear()
        self.by_trace.clear()
        self.ring.clear()


def _scan(bucket: list[CallFacts] | None, f: CallFacts) -> CallFacts | None:
    if not bucket:
        return None
    start = f.start_ns
    for other in reversed(bucket):
        if other.end_ns < start:
            return None  # ended before f began, and so did every older one
        if other.span_id != f.span_id and same_call(other, f):
            return other
    return None
