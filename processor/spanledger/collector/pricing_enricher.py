"""The collector's pricing enricher: price spans that arrive without a cost status.

Services in other languages, or without the in-service processor, send GenAI
spans with usage but no cost. The collector prices them with the same catalog,
the same usage readers (every convention of ``pricing/conventions.py``, picked by
the span's instrumentation scope and attributes) and the same
:func:`~spanledger.pricing.span_pricing.price_span`, so they get the same
attributes (``spanledger.cost.status``, ``gen_ai.usage.cost`` and the parts,
``spanledger.price.source``, the normalized ``spanledger.usage.*``) and land in
the rollups like any other.

Rules:

- A span that already carries ``spanledger.cost.status`` is never re-priced
  (its service priced it at the call's own time, maybe with other overrides).
- An ``invoke_agent`` / ``invoke_workflow`` span that carries usage is the sum
  of its children's calls: it is marked ``aggregate`` and gets no cost, so a
  trace's total is not doubled (a known mistake of other tools: Langfuse counted it).
- Everything else goes through ``price_span``; plain spans leave on its fast
  path untouched. Unknown models become ``unpriced`` (no cost, never $0).
- One call, one cost: the spans priced here are remembered until the chunk of the
  spool they came in is converted (:meth:`PricingEnricher.settle`); two that
  describe the same provider call (``pricing/duplicates.py``) keep one cost, the
  other becomes ``duplicate``. The one kept has the most complete usage, then the
  earliest end, then the lowest span id. Spans of one call that reach the collector
  in different chunks (rare: one service sends them within milliseconds) are both
  priced; the in-service processor does not have that limit.
- A cost another tool put on the span (openlit, litellm, logfire) is kept as
  ``spanledger.cost.reported``; a priced span whose reported cost differs from ours
  by more than 1 ppm counts as a disagreement (``/metrics``).

Values are written as strings exactly like the contrib exporter writes a
double attribute (:func:`~spanledger.collector.convert.format_double`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from spanledger import semconv
from spanledger.collector.convert import SpanRef, format_double

log = logging.getLogger(__name__)

#: how many earlier spans of a trace (or response id) a span is compared with
_NEAR = 64

#: our cost attributes: removed from a span that turns out to be a duplicate
_OUR_COST = (semconv.COST, semconv.COST_INPUT, semconv.COST_OUTPUT, semconv.COST_CACHE_READ,
             semconv.COST_CACHE_WRITE, semconv.PRICE_SOURCE, semconv.COST_AMOUNT,
             semconv.COST_CURRENCY, semconv.PRICE_TIER)


@dataclass
class PricingCounters:
    priced: int = 0
    unpriced: int = 0
    aggregate: int = 0
    no_usage: int = 0
    #: second spans of a provider call (status ``duplicate``)
    duplicate: int = 0
    #: priced spans that came with another tool's cost, and those whose cost differs from ours
    reported: int = 0
    reported_disagreements: int = 0


class _Candidate:
    """A span priced in the current chunk, until :meth:`PricingEnricher.settle`."""

    __slots__ = ("attrs", "facts", "parts", "reading")

    def __init__(self, attrs: dict[str, str], facts: Any, reading: Any,
                 parts: Any) -> None:
        self.attrs = attrs
        self.facts = facts
        self.reading = reading
        #: pico-dollar cost parts when priced (None: unpriced)
        self.parts = parts


class PricingEnricher:
    """A :class:`~spanledger.collector.convert.Enricher`: adds cost attributes in place."""

    def __init__(self, prices_file: str | None = None, semconv_cost: bool | None = None) -> None:
        from spanledger.pricing.catalog import PriceCatalog
        from spanledger.pricing.conventions import USAGE_KEYS
        from spanledger.pricing.duplicates import completeness, facts, keeps_cost, same_call
        from spanledger.pricing.span_pricing import (
            GENAI_KEYS,
            THEIR_COST_NAMES,
            pico_attributes,
            price_span_pico,
            reported_disagrees,
            semconv_cost_from_env,
        )
        from spanledger.pricing.usage import read_call

        self.catalog = PriceCatalog(prices_file) if prices_file else PriceCatalog.from_env()
        self._price = price_span_pico
        self._read = read_call
        self._pico_attributes = pico_attributes
        self._genai_keys = GENAI_KEYS
        self._call_keys = self.catalog.call_keys
        self._usage_keys = USAGE_KEYS
        self._their_cost = THEIR_COST_NAMES
        self._facts, self._same_call, self._keeps_cost = facts, same_call, keeps_cost
        self._completeness, self._disagrees = completeness, reported_disagrees
        self.semconv_cost = semconv_cost_from_env() if semconv_cost is None else semconv_cost
        self.counters = PricingCounters()
        #: spans priced since the last settle(): the candidates for duplicates
        self._pending: list[_Candidate] = []

    def __call__(self, attrs: dict[str, str], start_ns: int, span: SpanRef | None = None) -> None:
        if semconv.COST_STATUS in attrs:
            return  # priced where it happened: never re-price
        genai = not self._genai_keys.isdisjoint(attrs)
        if not genai and (not self._call_keys or self._call_keys.isdisjoint(attrs)):
            return  # a plain span
        if (attrs.get(semconv.OPERATION) in semconv.AGGREGATE_OPERATIONS
                and not self._usage_keys.isdisjoint(attrs)):
            attrs[semconv.COST_STATUS] = semconv.STATUS_AGGREGATE
            self.counters.aggregate += 1
            return
        scope = span.scope if span is not None else None
        try:
            # read once, with everything matching needs (response id, models), then priced
            reading = self._read(attrs, scope) if genai else None
            result = self._price(self.catalog, attrs, start_ns, scope, reading)
        except Exception:  # a pricing bug must not lose the span
            log.exception("pricing a span failed; stored without a cost status")
            return
        if result is None:
            return
        status, parts, source, reading, tier = result[0], result[1], result[2], result[7], result[8]
        if reading is not None and reading.reported_cost is not None:
            for name in self._their_cost:
                attrs.pop(name, None)
        for key, value in self._pico_attributes(status, parts, source, reading, tier,
                                                self.semconv_cost).items():
            attrs[key] = _as_string(value)
        if status == semconv.STATUS_PRICED:
            self.counters.priced += 1
        elif status == semconv.STATUS_UNPRICED:
            self.counters.unpriced += 1
        else:
            self.counters.no_usage += 1
            return
        if status != semconv.STATUS_PRICED:
            parts = None
        facts = None
        if span is not None and reading is not None:
            facts = self._facts(span.trace_id, span.span_id, span.parent_id or None, start_ns,
                                span.end_ns, span.scope, reading, False)
        if facts is None:
            self._count_reported(reading, parts)
            return
        self._pending.append(_Candidate(attrs, facts, reading, parts))

    def settle(self) -> None:
        """Decide the duplicates among the spans priced since the last call (a chunk)."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        for group in self._groups(pending):
            ranked = [(c, c.facts._replace(completeness=self._completeness(c.reading)))
                      for c in group]
            winner, best = ranked[0]
            for cand, f in ranked[1:]:
                if self._keeps_cost(f, best):
                    winner, best = cand, f
            for cand in group:
                if cand is not winner:
                    self._mark_duplicate(cand, winner)
        for cand in pending:
            if cand.parts is not None and cand.attrs.get(
                    semconv.COST_STATUS) == semconv.STATUS_PRICED:
                self._count_reported(cand.reading, cand.parts)

    def _groups(self, pending: list[_Candidate]) -> list[list[_Candidate]]:
        """Spans of one call together (transitively: three instrumentations of one call).

        A span can only be the second of a call if another span of the chunk shares its
        trace or its response id: one counting pass finds those few, and only they are
        compared.
        """
        seen: dict[Any, int] = {}
        for cand in pending:
            f = cand.facts
            seen[f.trace_id] = seen.get(f.trace_id, 0) + 1
            if f.response_id:
                seen[f.response_id] = seen.get(f.response_id, 0) + 1
        shared = [i for i, c in enumerate(pending)
                  if seen[c.facts.trace_id] > 1 or (c.facts.response_id
                                                    and seen[c.facts.response_id] > 1)]
        if not shared:
            return []
        parent = {i: i for i in shared}

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        # a span finds the earlier spans of its call among those of its trace, or of
        # another trace with its response id
        buckets: dict[Any, list[int]] = {}
        for i in shared:
            f = pending[i].facts
            keys = [("t", f.trace_id)]
            if f.response_id:
                keys.append(("r", f.response_id))
            for key in keys:
                bucket = buckets.setdefault(key, [])
                # an export request lists spans in end order: the partner is near (a trace of
                # thousands of calls in one chunk costs 64 comparisons per span, not thousands)
                for j in bucket[-_NEAR:]:
                    if root(i) != root(j) and self._same_call(pending[j].facts, f):
                        parent[root(i)] = root(j)
                bucket.append(i)
        grouped: dict[int, list[_Candidate]] = {}
        for i in shared:
            grouped.setdefault(root(i), []).append(pending[i])
        return [g for g in grouped.values() if len(g) > 1]

    def _mark_duplicate(self, cand: _Candidate, winner: _Candidate) -> None:
        attrs = cand.attrs
        if attrs.get(semconv.COST_STATUS) == semconv.STATUS_PRICED:
            self.counters.priced -= 1
        else:
            self.counters.unpriced -= 1
        for name in _OUR_COST:
            attrs.pop(name, None)
        attrs[semconv.COST_STATUS] = semconv.STATUS_DUPLICATE
        attrs[semconv.DUPLICATE_OF] = str(winner.facts.span_id)
        self.counters.duplicate += 1

    def _count_reported(self, reading: Any, parts: Any) -> None:
        if reading is None or reading.reported_cost is None or parts is None:
            return
        self.counters.reported += 1
        if self._disagrees(reading.reported_cost, sum(parts)):
            self.counters.reported_disagreements += 1


def _as_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_double(value)
    return str(value)
