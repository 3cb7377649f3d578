"""Price one finished span: the single entry point of the processor and the collector.

:func:`price_span` runs on EVERY span end in an instrumented service, and
nearly all spans are plain (HTTP, SQL, ...). So the first step is one C-level
set test over the span's attribute names; a plain span leaves in a few hundred
nanoseconds without a dict lookup per GenAI name, a regex or an allocation.

Statuses (DESIGN.md): ``priced`` (cost attached), ``unpriced`` (usage but no
price: no cost attribute, never a silent $0; counted and warned once per
model), ``no_usage`` (a GenAI span without usage: streaming without
``include_usage``, a failed call, an agent/tool span without a per-call
price). The caller decides ``aggregate``.

Per-call prices (vector databases by ``db.system.name``, tools by
``gen_ai.tool.name``) put the whole cost in the ``input`` part.

Two forms of one decision: :func:`price_span_pico` (money as exact integer
pico-dollars, plain tuples; the in-service processor's per-span path, which
never needs a Decimal) and :func:`price_span` (the documented SpanPrice with
Decimal Cost, built from the former), so both always agree.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from spanledger import semconv
from spanledger.pricing.catalog import DYNAMIC, PriceCatalog
from spanledger.pricing.rates import cost_from_pico, cost_to_pico
from spanledger.pricing.types import Cost, TokenUsage
from spanledger.pricing.usage import first_text, read_counts, read_provider_model

#: any of these makes a span a GenAI span
GENAI_KEYS: frozenset[str] = frozenset(
    {
        semconv.OPERATION,
        semconv.REQUEST_MODEL,
        semconv.RESPONSE_MODEL,
        *semconv.PROVIDER,
        *semconv.INPUT_TOKENS,
        *semconv.OUTPUT_TOKENS,
        *semconv.CACHE_READ_TOKENS,
        *semconv.CACHE_WRITE_TOKENS,
        *semconv.TOTAL_TOKENS,
    }
)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class SpanPrice(NamedTuple):
    """The pricing outcome of one span (a NamedTuple: immutable and cheap to build)."""

    status: str  # semconv.STATUS_PRICED | STATUS_UNPRICED | STATUS_NO_USAGE
    cost: Cost | None
    provider: str | None
    model: str | None
    usage: TokenUsage | None

    def attributes(self) -> dict[str, Any]:
        """Span attributes to add: cost parts (floats of 1e-12-quantized Decimals) on priced
        spans, only the status otherwise (an unpriced span never carries a cost)."""
        cost = self.cost
        if self.status != semconv.STATUS_PRICED or cost is None:
            return {semconv.COST_STATUS: self.status}
        return {
            semconv.COST: float(cost.total),
            semconv.COST_INPUT: float(cost.input),
            semconv.COST_OUTPUT: float(cost.output),
            semconv.COST_CACHE_READ: float(cost.cache_read),
            semconv.COST_CACHE_WRITE: float(cost.cache_write),
            semconv.COST_STATUS: semconv.STATUS_PRICED,
            semconv.PRICE_SOURCE: cost.source,
        }


def _as_dict(attrs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The mapping to read usage from: plain dicts as they are, anything else copied once.

    The processor and the collector pass plain dicts (the processor unwraps the
    SDK's attribute proxy through ``processor.sdk_access``, which pricing, a lower
    layer, must not import). A caller passing ``span.attributes`` directly pays
    one copy instead of a dozen proxied misses.
    """
    return attrs if type(attrs) is dict else dict(attrs)


_last_time: tuple[int, dt.datetime] = (-1, _EPOCH)


def span_time(start_time_ns: int) -> dt.datetime:
    """UTC datetime of a span's start, to the second (the time its price is taken at).

    Prices change by day (or hour of day): seconds are plenty, and spans ending
    together share one datetime (a one-entry cache; a race only recomputes).
    """
    global _last_time
    second = (start_time_ns or time.time_ns()) // 1_000_000_000  # unset start: now
    cached = _last_time
    if cached[0] == second:
        return cached[1]
    at = _EPOCH + dt.timedelta(seconds=second)
    _last_time = (second, at)
    return at


def _price_call(catalog: PriceCatalog, attrs: Mapping[str, Any], start_time_ns: int) -> Cost | None:
    tool = attrs.get(semconv.TOOL_NAME)
    db_system = first_text(attrs, semconv.DB_SYSTEM)
    return catalog.price_call(
        db_system=db_system, tool=tool if type(tool) is str else None, at=span_time(start_time_ns)
    )


#: (status, pico parts [input, output, cache_read, cache_write] or None, price source or
#: None, provider, model, usage counts or None, the Cost when one was built on the way)
PicoPrice = tuple[
    str,
    "list[int] | tuple[int, ...] | None",
    "str | None",
    "str | None",
    "str | None",
    "tuple[int, int, int, int, int] | None",
    "Cost | None",
]

_PRICED, _UNPRICED, _NO_USAGE = (
    semconv.STATUS_PRICED, semconv.STATUS_UNPRICED, semconv.STATUS_NO_USAGE)
_MISSING: Any = object()


def _priced_call(cost: Cost, provider: str | None, model: str | None) -> PicoPrice:
    return (_PRICED, cost_to_pico(cost), cost.source, provider, model, None, cost)


def price_span_pico(
    catalog: PriceCatalog, attrs: Mapping[str, Any], start_time_ns: int
) -> PicoPrice | None:
    """:func:`price_span` with money as exact integer pico-dollars; None = not priceable."""
    if not attrs:
        return None
    if GENAI_KEYS.isdisjoint(attrs):
        call_keys = catalog.call_keys
        if not call_keys or call_keys.isdisjoint(attrs):
            return None  # the plain-span fast path
        d = attrs if type(attrs) is dict else _as_dict(attrs)
        cost = _price_call(catalog, d, start_time_ns)
        if cost is None:
            return None  # e.g. a SQL span of a database without a per-call price
        return _priced_call(cost, None, None)
    d = attrs if type(attrs) is dict else _as_dict(attrs)
    provider, model = read_provider_model(d)
    counts = read_counts(d)
    if counts is None:
        if catalog.call_keys and not catalog.call_keys.isdisjoint(d):
            cost = _price_call(catalog, d, start_time_ns)
            if cost is not None:
                return _priced_call(cost, provider, model)
        return (_NO_USAGE, None, None, provider, model, None, None)
    if model:
        entry = catalog.fixed_cards.get((provider, model), _MISSING)
        if entry is _MISSING:
            entry = catalog.fixed_card(provider, model)
    else:
        entry = None
    if entry is not None:
        if entry is not DYNAMIC:  # the common case: no datetime, no Decimal
            return (_PRICED, entry[0].pico(counts), entry[1], provider, model, counts, None)
        assert model is not None
        priced = catalog.dynamic_pico(provider, model, counts, span_time(start_time_ns))
        if priced is not None:
            return (_PRICED, priced[0], priced[1], provider, model, counts, None)
    catalog.note_unpriced(provider, model)
    return (_UNPRICED, None, None, provider, model, counts, None)


def price_span(
    catalog: PriceCatalog, attrs: Mapping[str, Any], start_time_ns: int
) -> SpanPrice | None:
    """Price a finished span; None = not a GenAI or priceable span (leave it alone)."""
    if not attrs or (GENAI_KEYS.isdisjoint(attrs)
                     and (not catalog.call_keys or catalog.call_keys.isdisjoint(attrs))):
        return None  # the plain-span fast path, without the extra frame below
    result = price_span_pico(catalog, attrs, start_time_ns)
    if result is None:
        return None
    status, parts, source, provider, model, counts, cost = result
    if cost is None and parts is not None:
        cost = cost_from_pico(parts, source or "")
    return SpanPrice(
        status, cost, provider, model, None if counts is None else TokenUsage(*counts)
    )
