"""Price one finished span: the single entry point of the processor and the collector.

:func:`price_span` runs on EVERY span end in an instrumented service, and
nearly all spans are plain (HTTP, SQL, ...). So the first step is one C-level
set test over the span's attribute names; a plain span leaves in a few hundred
nanoseconds without a dict lookup per GenAI name, a regex or an allocation.

Statuses (ARCHITECTURE.md): ``priced`` (cost attached), ``unpriced`` (usage but no
price: no cost attribute, never a silent $0; counted and warned once per
model), ``no_usage`` (a GenAI span without usage, or whose every count is zero:
streaming without ``include_usage``, a failed call, an agent/tool span without a
per-call price). The caller decides ``aggregate`` and ``duplicate``.

Usage, model, provider, tier and a cost another tool reported are read through
the span's convention (:func:`spanledger.pricing.usage.read_call`). A call served
at another service tier (``flex``, ``priority``) or in batch is priced with the
catalog's price variant for it. Per-call prices (vector databases by
``db.system.name``, tools by ``gen_ai.tool.name``) put the whole cost in the
``input`` part.

Two forms of one decision: :func:`price_span_pico` (money as exact integer
pico-dollars, plain tuples; the in-service processor's per-span path, which
never needs a Decimal) and :func:`price_span` (the documented SpanPrice with
Decimal Cost, built from the former), so both always agree. :func:`call_attributes`
is the one list of attributes both write.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from spanledger import semconv
from spanledger.pricing import conventions
from spanledger.pricing.catalog import DYNAMIC, PriceCatalog, tier_context
from spanledger.pricing.rates import cost_from_pico, cost_to_pico
from spanledger.pricing.types import PICO_PER_USD, Cost, TokenUsage
from spanledger.pricing.usage import CallReading, first_text, read_call, read_fast

#: any of these makes a span a GenAI span (every convention's usage, model, provider names)
GENAI_KEYS: frozenset[str] = conventions.CALL_KEYS

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: cost attributes another tool may have put on a span; ours replace them (theirs is kept
#: as ``spanledger.cost.reported``)
THEIR_COST_NAMES = (semconv.COST, semconv.COST_AMOUNT, semconv.COST_CURRENCY)


class SpanPrice(NamedTuple):
    """The pricing outcome of one span (a NamedTuple: immutable and cheap to build)."""

    status: str  # semconv.STATUS_PRICED | STATUS_UNPRICED | STATUS_NO_USAGE
    cost: Cost | None
    provider: str | None
    model: str | None
    usage: TokenUsage | None
    #: how the span was read (None: a span priced per call)
    reading: CallReading | None = None
    #: the tier whose price variant priced the call (None: the standard price)
    tier: str | None = None

    def attributes(self, semconv_cost: bool = False) -> dict[str, Any]:
        """Span attributes to add: cost parts (floats of 1e-12-quantized Decimals) on priced
        spans, only the status otherwise (an unpriced span never carries a cost), plus what
        :func:`call_attributes` adds. ``semconv_cost``: also ``gen_ai.usage.cost.amount``."""
        cost = self.cost
        if self.status != semconv.STATUS_PRICED or cost is None:
            out: dict[str, Any] = {semconv.COST_STATUS: self.status}
        else:
            out = {
                semconv.COST: float(cost.total),
                semconv.COST_INPUT: float(cost.input),
                semconv.COST_OUTPUT: float(cost.output),
                semconv.COST_CACHE_READ: float(cost.cache_read),
                semconv.COST_CACHE_WRITE: float(cost.cache_write),
                semconv.COST_STATUS: semconv.STATUS_PRICED,
                semconv.PRICE_SOURCE: cost.source,
            }
            if semconv_cost:
                out[semconv.COST_AMOUNT] = out[semconv.COST]
                out[semconv.COST_CURRENCY] = "USD"
        if self.reading is not None:
            call_attributes(out, self.reading, self.tier)
        return out


def pico_attributes(status: str, parts: Any, source: str | None, reading: CallReading | None,
                    tier: str | None, semconv_cost: bool = False) -> dict[str, Any]:
    """:meth:`SpanPrice.attributes` from :func:`price_span_pico`'s result, without Decimals.

    ``pico / PICO_PER_USD`` (int / int) is the correctly rounded float of the exact amount,
    the same float as ``float()`` of the 1e-12-quantized Decimal (tests/test_pricing_pico.py).
    """
    if status != _PRICED or parts is None:
        out: dict[str, Any] = {semconv.COST_STATUS: status}
    else:
        a, b, c, d = parts
        total = (a + b + c + d) / PICO_PER_USD
        out = {semconv.COST: total, semconv.COST_INPUT: a / PICO_PER_USD,
               semconv.COST_OUTPUT: b / PICO_PER_USD, semconv.COST_CACHE_READ: c / PICO_PER_USD,
               semconv.COST_CACHE_WRITE: d / PICO_PER_USD, semconv.COST_STATUS: _PRICED,
               semconv.PRICE_SOURCE: source}
        if semconv_cost:
            out[semconv.COST_AMOUNT] = total
            out[semconv.COST_CURRENCY] = "USD"
    if reading is not None:
        call_attributes(out, reading, tier)
    return out


def call_attributes(out: dict[str, Any], reading: CallReading, tier: str | None) -> None:
    """Add what a priced, unpriced or duplicate span records beside its status.

    - ``spanledger.cost.reported``: a cost another tool put on the span (never summed);
    - ``spanledger.price.tier``: the service tier or batch price variant applied;
    - for every convention but plain GenAI semconv, the normalized usage, model and
      provider the price was computed from (``spanledger.usage.*``, ``spanledger.model``,
      ``spanledger.provider``, ``spanledger.convention``), which the ``llm_calls`` view
      prefers: the GenAI names it reads itself say the same for semconv spans.
    """
    if reading.reported_cost is not None:
        out[semconv.COST_REPORTED] = reading.reported_cost
    if tier is not None:
        out[semconv.PRICE_TIER] = tier
    if reading.convention is conventions.GENAI:
        return
    out[semconv.CONVENTION] = reading.convention.name
    if reading.model:
        out[semconv.MODEL] = reading.model
    if reading.provider:
        out[semconv.PROVIDER_NORMALIZED] = reading.provider
    counts = reading.counts
    if counts is not None:
        out[semconv.USAGE_INPUT] = counts[0]
        out[semconv.USAGE_OUTPUT] = counts[1]
        out[semconv.USAGE_CACHE_READ] = counts[2]
        out[semconv.USAGE_CACHE_WRITE] = counts[3]
        out[semconv.USAGE_REASONING] = counts[4]
        out[semconv.USAGE_CACHE_WRITE_1H] = counts[5]


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
#: None, provider, model, usage counts or None, the Cost when one was built on the way,
#: the reading (None for per-call prices and for plain GenAI semconv spans, which
#: :func:`read_call` reads again when needed), the tier whose price variant applied)
PicoPrice = tuple[
    str,
    "list[int] | tuple[int, ...] | None",
    "str | None",
    "str | None",
    "str | None",
    "tuple[int, int, int, int, int, int] | None",
    "Cost | None",
    "CallReading | None",
    "str | None",
]

_PRICED, _UNPRICED, _NO_USAGE = (
    semconv.STATUS_PRICED, semconv.STATUS_UNPRICED, semconv.STATUS_NO_USAGE)
_MISSING: Any = object()


def _priced_call(cost: Cost, reading: CallReading | None) -> PicoPrice:
    provider = reading.provider if reading is not None else None
    model = reading.model if reading is not None else None
    return (_PRICED, cost_to_pico(cost), cost.source, provider, model, None, cost, reading, None)


def price_span_pico(
    catalog: PriceCatalog, attrs: Mapping[str, Any], start_time_ns: int,
    scope: str | None = None, reading: CallReading | None = None,
) -> PicoPrice | None:
    """:func:`price_span` with money as exact integer pico-dollars; None = not priceable.

    ``scope``: the span's instrumentation scope name, when known (it picks the convention).
    ``reading``: the span already read with :func:`read_call` (else it is read here).
    """
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
        return _priced_call(cost, None)
    d = attrs if type(attrs) is dict else _as_dict(attrs)
    fast = read_fast(d, scope) if reading is None else None
    if fast is not None:  # plain GenAI semconv: no reading built (read_call reads the same)
        provider, model, counts = fast
        tier = None
    else:
        if reading is None:
            reading = read_call(d, scope)
        _, provider, model, _, counts, tier, _, _ = reading  # unpacked: no attribute lookups
    if counts is None or not (counts[0] or counts[1] or counts[2] or counts[3]):
        if catalog.call_keys and not catalog.call_keys.isdisjoint(d):
            cost = _price_call(catalog, d, start_time_ns)
            if cost is not None:
                return _priced_call(cost, reading)
        # no usage, or a usage of all zeros (a stream without its usage chunk): not $0
        return (_NO_USAGE, None, None, provider, model, counts, None, reading, None)
    if tier is not None and tier_context(tier) is None:
        tier = None  # the standard tier: the common, cached path
    if model and tier is None:
        entry = catalog.fixed_cards.get((provider, model), _MISSING)
        if entry is _MISSING:
            entry = catalog.fixed_card(provider, model)
        if entry is not None:
            if entry is not DYNAMIC:  # the common case: no datetime, no Decimal
                return (_PRICED, entry[2](counts), entry[1], provider, model, counts, None,
                        reading, None)
            priced = catalog.dynamic_pico(provider, model, counts, span_time(start_time_ns))
            if priced is not None:
                return (_PRICED, priced[0], priced[1], provider, model, counts, None, reading,
                        None)
    elif model:
        priced = catalog.dynamic_pico(provider, model, counts, span_time(start_time_ns), tier)
        if priced is not None:
            return (_PRICED, priced[0], priced[1], provider, model, counts, None, reading, tier)
    catalog.note_unpriced(provider, model)
    return (_UNPRICED, None, None, provider, model, counts, None, reading, None)


def price_span(
    catalog: PriceCatalog, attrs: Mapping[str, Any], start_time_ns: int,
    scope: str | None = None,
) -> SpanPrice | None:
    """Price a finished span; None = not a GenAI or priceable span (leave it alone)."""
    if not attrs or (GENAI_KEYS.isdisjoint(attrs)
                     and (not catalog.call_keys or catalog.call_keys.isdisjoint(attrs))):
        return None  # the plain-span fast path, without the extra frame below
    d = attrs if type(attrs) is dict else _as_dict(attrs)
    read = read_call(d, scope) if not GENAI_KEYS.isdisjoint(d) else None
    result = price_span_pico(catalog, d, start_time_ns, scope, read)
    if result is None:
        return None
    status, parts, source, provider, model, counts, cost, reading, tier = result
    if cost is None and parts is not None:
        cost = cost_from_pico(parts, source or "")
    return SpanPrice(
        status, cost, provider, model, None if counts is None else TokenUsage(*counts),
        reading, tier,
    )


def reported_disagrees(reported: float, ours_pico: int | None) -> bool:
    """Does a cost another tool reported differ from ours (None: we have none)?

    Theirs is a float of their own arithmetic on their own price list: a difference
    beyond 1 ppm (or a pico-dollar) is a real disagreement (a missed cache discount,
    an old price, a $0 for a model they do not know), never a rounding artefact.
    """
    if ours_pico is None:
        return reported > 0
    ours = ours_pico / PICO_PER_USD
    return abs(reported - ours) > max(1e-12, 1e-6 * max(abs(reported), abs(ours)))


_TRUE = frozenset({"1", "true", "yes", "on"})


def semconv_cost_from_env() -> bool:
    """``SPANLEDGER_SEMCONV_COST`` set to 1 / true / yes / on: also write the cost as
    ``gen_ai.usage.cost.amount`` / ``.currency`` (the processor's and the collector's default)."""
    return os.environ.get(semconv.SEMCONV_COST_ENV, "").strip().lower() in _TRUE
