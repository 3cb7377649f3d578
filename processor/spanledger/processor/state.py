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
from collections import OrderedDict
from typing import Any

__all__ = ["PendingRollups", "RootTable", "TraceState", "TraceTable"]

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
