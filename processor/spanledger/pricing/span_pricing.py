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
"""

from __future__ import annotations

import datetime as dt
import gc
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from spanledger import semconv
from spanledger.pricing.catalog import PriceCatalog
from spanledger.pricing.types import Cost, TokenUsage
from spanledger.pricing.usage import read_model, read_provider, read_usage

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
    """The plain dict behind SDK attribute wrappers, for fast ``.get``.

    ``ReadableSpan.attributes`` is a MappingProxyType over a BoundedAttributes,
    whose ``get`` of a missing key raises and catches KeyError inside (~0.5 us
    each); reading usage probes a dozen names, most of them missing. Read-only.
    """
    kind = type(attrs)
    if kind is dict:
        return attrs
    if kind is MappingProxyType:
        inner = gc.get_referents(attrs)  # the proxied mapping, without copying
        if len(inner) == 1:
            attrs = inner[0]
            if type(attrs) is dict:
                return attrs
    plain = getattr(attrs, "_dict", None)  # opentelemetry.attributes.BoundedAttributes
    return plain if type(plain) is dict else attrs


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


def _first_text(attrs: Mapping[str, Any], names: tuple[str, ...] | list[str]) -> str | None:
    for name in names:
        value = attrs.get(name)
        if type(value) is str and value:
            return value
    return None


def _price_call(catalog: PriceCatalog, attrs: Mapping[str, Any], start_time_ns: int) -> Cost | None:
    tool = attrs.get(semconv.TOOL_NAME)
    db_system = _first_text(attrs, semconv.DB_SYSTEM)
    return catalog.price_call(
        db_system=db_system, tool=tool if type(tool) is str else None, at=span_time(start_time_ns)
    )


def price_span(
    catalog: PriceCatalog, attrs: Mapping[str, Any], start_time_ns: int
) -> SpanPrice | None:
    """Price a finished span; None = not a GenAI or priceable span (leave it alone)."""
    if not attrs:
        return None
    if GENAI_KEYS.isdisjoint(attrs):
        call_keys = catalog.call_keys
        if not call_keys or call_keys.isdisjoint(attrs):
            return None  # the plain-span fast path
        d = _as_dict(attrs)
        cost = _price_call(catalog, d, start_time_ns)
        if cost is None:
            return None  # e.g. a SQL span of a database without a per-call price
        return SpanPrice(semconv.STATUS_PRICED, cost, None, None, None)
    d = _as_dict(attrs)
    provider, model = read_provider(d), read_model(d)
    usage = read_usage(d)
    if usage is None:
        if catalog.call_keys and not catalog.call_keys.isdisjoint(d):
            cost = _price_call(catalog, d, start_time_ns)
            if cost is not None:
                return SpanPrice(semconv.STATUS_PRICED, cost, provider, model, None)
        return SpanPrice(semconv.STATUS_NO_USAGE, None, provider, model, None)
    cost = catalog.price_tokens(provider, model, usage, span_time(start_time_ns)) if model else None
    if cost is None:
        catalog.note_unpriced(provider, model)
        return SpanPrice(semconv.STATUS_UNPRICED, None, provider, model, usage)
    return SpanPrice(semconv.STATUS_PRICED, cost, provider, model, usage)
