"""The collector's pricing enricher: the collector decides every span's cost.

Every GenAI span is priced here, from its usage, with the collector's catalog and
overrides (``processors.pricing.prices``), at the span's start time, through the same
usage readers (every convention of ``pricing/conventions.py``, picked by the span's
instrumentation scope and attributes) and the same
:func:`~spanledger.pricing.span_pricing.price_span_pico` as the in-service processor.
The collector's figure is what is stored (``gen_ai.usage.cost`` and the parts,
``spanledger.cost.status``, ``spanledger.price.source``, the normalized
``spanledger.usage.*``). A figure the span arrived with is kept beside it, never summed:

- a span a service priced (it carries ``spanledger.cost.status``): the service's
  ``gen_ai.usage.cost`` becomes ``spanledger.cost.reported`` with
  ``spanledger.cost.reported_by = service``; everything else spanledger writes
  (parts, source, normalized usage, model, status) is the client's claim and is
  taken off before the span is read;
- another tool's cost (openlit, litellm, logfire): ``spanledger.cost.reported``, by
  the tool's convention name.

A reported figure that differs from ours by more than the tolerance (``trust.
disagreement_tolerance``; a service may legitimately price with another prices file)
gets ``spanledger.cost.disagrees = true`` and is counted (``/metrics``, ``report
disagreements``).

Rules:

- Bounds first (:mod:`~spanledger.collector.bounds`): a cost on the span that is
  negative, not finite or above the ceiling, a token count above the ceiling or
  negative, or our own price above the ceiling: the span is set aside for the
  quarantine, unchanged (:meth:`PricingEnricher.take_set_aside`), never priced.
- Statuses from a client are claims. ``priced`` / ``unpriced`` / ``no_usage`` are
  re-derived (a ``no_usage`` on a span with usage is flagged as a rejected claim);
  ``aggregate`` and ``duplicate`` are taken only with evidence in the span's trace
  (:mod:`~spanledger.collector.claims`); any other status is re-derived and flagged.
  An ``invoke_agent`` / ``invoke_workflow`` span with usage is an aggregate claim too.
  Claims the chunk cannot settle are written as claimed and handed to the writer
  (:meth:`PricingEnricher.take_claims`), which checks the segment and the store.
- Everything else goes through ``price_span_pico``; plain spans leave on a set test.
  Unknown models become ``unpriced`` (no cost, never $0).
- One call, one cost: the spans priced here are remembered until the chunk of the
  spool they came in is converted (:meth:`PricingEnricher.settle`); two that
  describe the same provider call (``pricing/duplicates.py``) keep one cost, the
  other becomes ``duplicate``. The one kept has the most complete usage, then the
  earliest end, then the lowest span id. Spans of one call that reach the collector
  in different chunks are both priced unless the second names the first (a service's
  processor does) and the writer finds it (a ``duplicate`` claim).

Values are written as strings exactly like the contrib exporter writes a
double attribute (:func:`~spanledger.collector.convert.format_double`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from spanledger import semconv
from spanledger.collector.bounds import (
    COST_NAME_SET,
    COST_OUT_OF_BOUNDS,
    USAGE_OUT_OF_BOUNDS,
    Bounds,
    negative_count,
)
from spanledger.collector.claims import AGGREGATE, DUPLICATE, Claim
from spanledger.collector.convert import SpanRef, format_double
from spanledger.pricing.types import PICO_PER_USD

log = logging.getLogger(__name__)

#: how many earlier spans of a trace (or response id) a span is compared with
_NEAR = 64

#: our cost attributes: removed from a span that turns out to be a duplicate
_OUR_COST = (semconv.COST, semconv.COST_INPUT, semconv.COST_OUTPUT, semconv.COST_CACHE_READ,
             semconv.COST_CACHE_WRITE, semconv.PRICE_SOURCE, semconv.COST_AMOUNT,
             semconv.COST_CURRENCY, semconv.PRICE_TIER, semconv.COST_REPORTED,
             semconv.COST_REPORTED_BY, semconv.COST_DISAGREES)

#: what spanledger writes on a span (status, cost parts, what it priced from, verdicts):
#: on an incoming span each is the client's claim, taken off before the span is read
_CLAIMED = (semconv.COST_STATUS, semconv.COST_INPUT, semconv.COST_OUTPUT,
            semconv.COST_CACHE_READ, semconv.COST_CACHE_WRITE, semconv.COST_ROLLUP,
            semconv.PRICE_SOURCE, semconv.COST_REPORTED, semconv.COST_REPORTED_BY,
            semconv.COST_DISAGREES, semconv.CLAIM_REJECTED, semconv.DUPLICATE_OF,
            semconv.USAGE_INPUT, semconv.USAGE_OUTPUT, semconv.USAGE_CACHE_READ,
            semconv.USAGE_CACHE_WRITE, semconv.USAGE_CACHE_WRITE_1H, semconv.USAGE_REASONING,
            semconv.MODEL, semconv.PROVIDER_NORMALIZED, semconv.CONVENTION)
_CLAIMED_SET = frozenset(_CLAIMED)
#: a span spanledger priced also carries its cost under the shared names: the service's
_SERVICE_COST = (semconv.COST, semconv.COST_AMOUNT, semconv.COST_CURRENCY)
_PRICED, _UNPRICED, _NO_USAGE = (semconv.STATUS_PRICED, semconv.STATUS_UNPRICED,
                                 semconv.STATUS_NO_USAGE)
_COUNTED = (_PRICED, _UNPRICED)
_STATUS, _REJECTED = semconv.COST_STATUS, semconv.CLAIM_REJECTED
_COST, _COST_AMOUNT = semconv.COST, semconv.COST_AMOUNT
_COST_REPORTED, _COST_REPORTED_BY = semconv.COST_REPORTED, semconv.COST_REPORTED_BY
_COST_DISAGREES, _BY_SERVICE = semconv.COST_DISAGREES, semconv.REPORTED_BY_SERVICE
_OPERATION, _AGGREGATE_OPERATIONS = semconv.OPERATION, semconv.AGGREGATE_OPERATIONS
_PROCESSOR_STATUSES = semconv.PROCESSOR_STATUSES
_COST_NAMES = COST_NAME_SET
_PICO = PICO_PER_USD
#: a rejected claim's value is cut here (a client may write anything as its status)
_CLAIM_CAP = 64


@dataclass
class PricingCounters:
    priced: int = 0
    unpriced: int = 0
    aggregate: int = 0
    no_usage: int = 0
    #: second spans of a provider call (status ``duplicate``)
    duplicate: int = 0
    #: priced or unpriced spans that came with a cost of their own (a service's or another
    #: tool's), and those whose cost differs from ours by more than the tolerance
    reported: int = 0
    reported_disagreements: int = 0
    #: spans a service priced (re-priced here)
    verified: int = 0
    #: claims rejected in conversion (the writer counts the ones it rejects itself)
    rejected_aggregate: int = 0
    rejected_duplicate: int = 0
    rejected_status: int = 0
    #: spans set aside for the quarantine: out of bounds
    out_of_bounds: int = 0


class _Candidate:
    """A span priced in the current chunk, until :meth:`PricingEnricher.settle`."""

    __slots__ = ("attrs", "facts", "reading", "reported")

    def __init__(self, attrs: dict[str, str], facts: Any, reading: Any,
                 reported: float | None) -> None:
        self.attrs = attrs
        self.facts = facts
        self.reading = reading
        #: the figure the span arrived with (a service's or another tool's), if any
        self.reported = reported


class _Pending:
    """An aggregate or duplicate claim waiting for the chunk's evidence."""

    __slots__ = ("attrs", "keeper", "kind", "rejected", "span", "status", "tokens")

    def __init__(self, kind: str, attrs: dict[str, str], span: SpanRef, tokens: tuple[int, int],
                 rejected: dict[str, str] | None, status: str, keeper: str = "") -> None:
        self.kind = kind
        self.attrs = attrs
        self.span = span
        self.tokens = tokens
        #: the attributes as a call, when the claim is rejected (built when needed)
        self.rejected = rejected
        self.status = status
        self.keeper = keeper


class PricingEnricher:
    """A :class:`~spanledger.collector.convert.Enricher`: adds cost attributes in place."""

    def __init__(self, prices_file: str | None = None, semconv_cost: bool | None = None,
                 bounds: Bounds | None = None) -> None:
        from spanledger.pricing.catalog import PriceCatalog
        from spanledger.pricing.conventions import GENAI, USAGE_KEYS
        from spanledger.pricing.duplicates import completeness, facts, keeps_cost, same_call
        from spanledger.pricing.span_pricing import (
            GENAI_KEYS,
            THEIR_COST_NAMES,
            call_attributes,
            price_span_pico,
            semconv_cost_from_env,
        )
        from spanledger.pricing.usage import read_call

        self.catalog = PriceCatalog(prices_file) if prices_file else PriceCatalog.from_env()
        self.bounds = bounds or Bounds()
        self._max_tokens = self.bounds.max_tokens
        self._max_cost = self.bounds.max_cost_usd
        self._max_pico = self.bounds.max_cost_pico
        self._price = price_span_pico
        self._read = read_call
        self._call_attributes = call_attributes
        self._genai_convention = GENAI
        self._genai_keys = GENAI_KEYS
        self._call_keys = self.catalog.call_keys
        self._usage_keys = USAGE_KEYS
        self._their_cost = THEIR_COST_NAMES
        self._facts, self._same_call, self._keeps_cost = facts, same_call, keeps_cost
        self._completeness = completeness
        self.semconv_cost = semconv_cost_from_env() if semconv_cost is None else semconv_cost
        self.counters = PricingCounters()
        #: token-count names per convention (negative values are looked for there)
        self._count_names: dict[int, frozenset[str]] = {}
        #: spans priced since the last settle(): the candidates for duplicates
        self._pending: list[_Candidate] = []
        self._claimed: list[_Pending] = []
        #: handed to the conversion: spans to quarantine, claims for the writer
        self._aside: list[tuple[str, str, str, str]] = []
        self._claims: list[Claim] = []

    # -- results of a chunk --------------------------------------------------------------
    def take_set_aside(self) -> list[tuple[str, str, str, str]]:
        """(trace id, span id, reason, detail) of the spans to quarantine, since last asked."""
        out, self._aside = self._aside, []
        return out

    def take_claims(self) -> list[Claim]:
        """Claims the chunks since last asked could not settle (for the writer)."""
        out, self._claims = self._claims, []
        return out

    # -- one span -------------------------------------------------------------------------
    def __call__(self, attrs: dict[str, str], start_ns: int, span: SpanRef | None = None) -> None:
        claims: dict[str, str] | None = None
        costs = _COST_NAMES.intersection(attrs) if not _COST_NAMES.isdisjoint(attrs) else None
        if costs is not None:
            why = self._bad_cost(attrs, costs)
            if why is not None:
                self._set_aside(span, COST_OUT_OF_BOUNDS, why)
                return
        if not _CLAIMED_SET.isdisjoint(attrs):
            claims = _take(attrs)
        genai = not self._genai_keys.isdisjoint(attrs)
        if not genai and (not self._call_keys or self._call_keys.isdisjoint(attrs)):
            if claims is not None:
                self._no_call(attrs, claims)
            return  # a plain span
        scope = span.scope if span is not None else None
        try:
            # read once, with everything matching needs (response id, models), then priced
            reading = self._read(attrs, scope) if genai else None
            result = self._price(self.catalog, attrs, start_ns, scope, reading)
        except Exception:  # a pricing bug must not lose the span
            log.exception("pricing a span failed; stored without a cost status")
            return
        if result is None:
            if claims is not None:
                self._no_call(attrs, claims)
            return
        status, parts, source, _, _, counts, _, reading, tier = result
        if counts is None and reading is not None:
            counts = reading.counts
        why = self._out_of_bounds(attrs, counts, parts, reading)
        if why is not None:
            if claims:
                attrs.update(claims)
            self._set_aside(span, *why)
            return
        counters = self.counters
        claimed = claims.get(_STATUS) if claims else None
        reported_text = None
        if claimed is not None:
            counters.verified += 1
            reported_text = claims.get(_COST) or claims.get(_COST_AMOUNT)  # type: ignore[union-attr]
            reported_by = _BY_SERVICE
        elif reading is not None and reading.reported_cost is not None:
            reported_text, reported_by = format_double(reading.reported_cost), \
                reading.convention.name
            for name in self._their_cost:
                attrs.pop(name, None)
        if status != _PRICED:
            parts = None
        values = self._values(status, parts, source, reading, tier)
        reported = None
        if reported_text is not None:
            reported = _amount(reported_text)
            if reported is not None:
                values[_COST_REPORTED] = (reported_text if "e" not in reported_text
                                          and "E" not in reported_text
                                          else format_double(reported))
                values[_COST_REPORTED_BY] = reported_by
                if self.bounds.disagrees(reported, sum(parts) if parts is not None else None):
                    values[_COST_DISAGREES] = "true"
        tokens = (counts[0], counts[1]) if counts is not None else (0, 0)
        if claimed == AGGREGATE or (attrs.get(_OPERATION) in _AGGREGATE_OPERATIONS
                                    and not self._usage_keys.isdisjoint(attrs)):
            self._aggregate(attrs, values, span, status, tokens, claims)
            return
        attrs.update(values)
        if claimed is not None and claimed != status and (
                claimed == _NO_USAGE or claimed not in _PROCESSOR_STATUSES):
            attrs[_REJECTED] = claimed[:_CLAIM_CAP]  # re-derived: a call that hid itself
            counters.rejected_status += 1
        if status == _PRICED:
            counters.priced += 1
        elif status == _UNPRICED:
            counters.unpriced += 1
        else:
            counters.no_usage += 1
            return
        if span is None or reading is None:
            self._count_reported(attrs, reported)
            return
        facts = self._facts(span.trace_id, span.span_id, span.parent_id or None, start_ns,
                            span.end_ns, span.scope, reading, False)
        if facts is None:
            self._count_reported(attrs, reported)
            return
        self._pending.append(_Candidate(attrs, facts, reading, reported))
        if claimed == DUPLICATE:
            keeper = claims.get(semconv.DUPLICATE_OF, "")  # type: ignore[union-attr]
            self._claimed.append(_Pending(DUPLICATE, attrs, span, tokens, None, status, keeper))

    def _bad_cost(self, attrs: dict[str, str], names: set[str]) -> str | None:
        """Why a cost the span carries is out of bounds (None: each is a number in
        bounds, or no number at all: not a cost, as the readers take it)."""
        limit = self._max_cost
        for name in names:
            text = attrs[name]
            try:
                value = float(text)
            except ValueError:
                continue
            if not 0 <= value <= limit:  # NaN fails both
                return self.bounds.bad_cost({name: text})
        return None

    def _values(self, status: str, parts: Any, source: str | None, reading: Any,
                tier: str | None) -> dict[str, str]:
        """The attributes our price adds, as the strings stored (what ``pico_attributes``
        says, written from the exact pico-dollars without a float on the way)."""
        if parts is not None:
            a, b, c, d = parts
            total = _pico_text(a + b + c + d)
            out = {semconv.COST: total, semconv.COST_INPUT: _pico_text(a),
                   semconv.COST_OUTPUT: _pico_text(b),
                   semconv.COST_CACHE_READ: _pico_text(c) if c else "0",
                   semconv.COST_CACHE_WRITE: _pico_text(d) if d else "0",
                   _STATUS: _PRICED, semconv.PRICE_SOURCE: source or ""}
            if self.semconv_cost:
                out[semconv.COST_AMOUNT] = total
                out[semconv.COST_CURRENCY] = "USD"
        else:
            out = {_STATUS: status}
        if reading is not None and (reading.convention is not self._genai_convention
                                    or tier is not None):
            extra: dict[str, Any] = {}
            self._call_attributes(extra, reading, tier)
            extra.pop(semconv.COST_REPORTED, None)
            for key, value in extra.items():
                out[key] = _as_string(value)
        return out

    def _out_of_bounds(self, attrs: dict[str, str], counts: Any, parts: Any,
                       reading: Any) -> tuple[str, str] | None:
        if counts is not None:
            limit = self._max_tokens
            if (counts[0] > limit or counts[1] > limit or counts[2] > limit
                    or counts[3] > limit or counts[4] > limit or counts[5] > limit):
                return USAGE_OUT_OF_BOUNDS, self.bounds.bad_counts(counts) or ""
        if reading is not None:
            names = self._count_names.get(id(reading.convention))
            if names is None:
                c = reading.convention
                names = self._count_names[id(c)] = frozenset((*c.usage_names(), *c.reasoning))
            for name in names.intersection(attrs):  # one C walk; the few present checked
                text = attrs[name]
                if text[:1] == "-":
                    why = negative_count(attrs, (name,))
                    if why is not None:
                        return USAGE_OUT_OF_BOUNDS, why
        if parts is not None and (parts[0] + parts[1] + parts[2] + parts[3]) > self._max_pico:
            return COST_OUT_OF_BOUNDS, self.bounds.bad_price(parts) or ""
        return None

    def _set_aside(self, span: SpanRef | None, reason: str, detail: str) -> None:
        """Leave the span as it came; the conversion takes it out for the quarantine."""
        self.counters.out_of_bounds += 1
        if span is not None:
            self._aside.append((span.trace_id, span.span_id, reason, detail))

    def _no_call(self, attrs: dict[str, str], claims: dict[str, str]) -> None:
        """spanledger's attributes on a span that is no call: kept off, the attempt flagged."""
        claimed = claims.get(_STATUS)
        attrs[_REJECTED] = (claimed or "cost")[:_CLAIM_CAP]
        reported = _amount(claims.get(semconv.COST) or claims.get(semconv.COST_AMOUNT))
        if reported is not None:
            attrs[semconv.COST_REPORTED] = format_double(reported)
            attrs[semconv.COST_REPORTED_BY] = semconv.REPORTED_BY_SERVICE
        self.counters.rejected_status += 1

    def _aggregate(self, attrs: dict[str, str], values: dict[str, str], span: SpanRef | None,
                   status: str, tokens: tuple[int, int], claims: dict[str, str] | None) -> None:
        """An aggregate claim: taken when it hides nothing, else once its trace shows the
        calls that carry its tokens (this chunk, at settle(); else the writer)."""
        as_call = None
        if status != _NO_USAGE and span is not None:
            as_call = dict(attrs)
            as_call.update(values)
            as_call[_REJECTED] = AGGREGATE
        attrs[_STATUS] = AGGREGATE
        rollup = _amount(claims.get(semconv.COST_ROLLUP)) if claims else None
        if rollup is not None and rollup * 1e12 <= self._max_pico:
            attrs[semconv.COST_ROLLUP] = format_double(rollup)
        self.counters.aggregate += 1
        if as_call is not None and span is not None:
            self._claimed.append(_Pending(AGGREGATE, attrs, span, tokens, as_call, status))

    # -- the chunk ------------------------------------------------------------------------
    def settle(self) -> None:
        """Decide the duplicates among the spans priced since the last call (a chunk), then
        the claims the chunk can settle; hand the others on (:meth:`take_claims`)."""
        pending, self._pending = self._pending, []
        grouped: set[int] = set()
        if pending:
            for group in self._groups(pending):
                grouped.update(id(c.attrs) for c in group)
                ranked = [(c, c.facts._replace(completeness=self._completeness(c.reading)))
                          for c in group]
                winner, best = ranked[0]
                for cand, f in ranked[1:]:
                    if self._keeps_cost(f, best):
                        winner, best = cand, f
                for cand in group:
                    if cand is not winner:
                        self._mark_duplicate(cand.attrs, str(winner.facts.span_id))
        claimed, self._claimed = self._claimed, []
        if claimed:
            self._settle_claims(claimed, pending, grouped)
        for cand in pending:
            if cand.attrs.get(_STATUS) in _COUNTED:
                self._count_reported(cand.attrs, cand.reported)

    def _settle_claims(self, claimed: list[_Pending], counted: list[_Candidate],
                       grouped: set[int]) -> None:
        """The chunk's evidence: its counted calls (the candidates still priced or
        unpriced), per trace and per span id. ``grouped``: the attrs (ids) of spans the
        chunk's own same-call rule matched with another (its verdict stands for them)."""
        sums: dict[str, list[int]] = {}
        keepers: dict[str, tuple[int, int]] = {}
        for cand in counted:
            if cand.attrs.get(_STATUS) not in _COUNTED:
                continue  # marked duplicate meanwhile
            f = cand.facts
            trace, span_id, inp, out = f.trace_id, f.span_id, f.input_tokens, f.output_tokens
            total = sums.get(trace)
            if total is None:
                sums[trace] = [inp, out]
            else:
                total[0] += inp
                total[1] += out
            keepers[span_id] = (inp, out)
        for p in claimed:
            if p.kind == AGGREGATE:
                have = sums.get(p.span.trace_id)
                if have is None or have[0] < p.tokens[0] or have[1] < p.tokens[1]:
                    self._hand_on(p)
                continue
            if id(p.attrs) in grouped:
                continue  # matched here with the other span(s) of its call: one keeps the cost
            if p.keeper in keepers:  # its keeper is here, counted, and is not the same call
                p.attrs[_REJECTED] = DUPLICATE
                self.counters.rejected_duplicate += 1
                continue
            # the keeper went before (an earlier chunk): written as claimed, checked later
            as_call = dict(p.attrs)
            as_call[_REJECTED] = DUPLICATE
            p.rejected = as_call
            self._mark_duplicate(p.attrs, p.keeper)
            self._hand_on(p)

    def _hand_on(self, p: _Pending) -> None:
        assert p.rejected is not None
        self._claims.append(Claim(p.kind, p.span.trace_id, p.span.span_id, p.tokens[0],
                                  p.tokens[1], p.keeper, p.rejected, p.status))

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

    def _mark_duplicate(self, attrs: dict[str, str], keeper: str) -> None:
        if attrs.get(_STATUS) == _PRICED:
            self.counters.priced -= 1
        else:
            self.counters.unpriced -= 1
        for name in _OUR_COST:
            attrs.pop(name, None)
        attrs[_STATUS] = DUPLICATE
        attrs[semconv.DUPLICATE_OF] = keeper
        self.counters.duplicate += 1

    def _count_reported(self, attrs: dict[str, str], reported: float | None) -> None:
        """Count a counted span's reported figure (the verdict is on it already)."""
        if reported is None:
            return
        self.counters.reported += 1
        if semconv.COST_DISAGREES in attrs:
            self.counters.reported_disagreements += 1


def _take(attrs: dict[str, str]) -> dict[str, str]:
    """Take spanledger's attributes (and, on a span a service priced, its cost under the
    shared names) off the span: what the client claimed."""
    claims = {name: attrs.pop(name) for name in _CLAIMED_SET.intersection(attrs)}
    if _STATUS in claims:
        for name in _SERVICE_COST:
            if name in attrs:
                claims[name] = attrs.pop(name)
    return claims


def _pico_text(pico: int) -> str:
    """Exact pico-dollars as a decimal USD string without an exponent: the text
    ``format_double(pico / 1e12)`` gives for every amount of up to 15 significant digits
    (below 1,000 USD: every cost the default ceiling lets through), and the exact amount
    beyond (which ``toDecimal128OrZero(..., 12)`` reads exactly)."""
    whole, frac = divmod(pico, _PICO)
    if not frac:
        return str(whole)
    return f"{whole}.{frac:012d}".rstrip("0")


def _amount(text: str | None) -> float | None:
    """A finite, non-negative USD amount (the bounds were checked before)."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _as_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_double(value)
    return str(value)
