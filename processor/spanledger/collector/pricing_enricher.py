"""The collector's pricing enricher: price spans that arrive without a cost status.

Services in other languages, or without the in-service processor, send GenAI
spans with usage but no cost. The collector prices them with the same catalog
and the same :func:`~spanledger.pricing.span_pricing.price_span`, so they get
the same attributes (``spanledger.cost.status``, ``gen_ai.usage.cost`` and the
parts, ``spanledger.price.source``) and land in the rollups like any other.

Rules:

- A span that already carries ``spanledger.cost.status`` is never re-priced
  (its service priced it at the call's own time, maybe with other overrides).
- An ``invoke_agent`` / ``invoke_workflow`` span that carries usage is the sum
  of its children's calls: it is marked ``aggregate`` and gets no cost, so a
  trace's total is not doubled (a known mistake of other tools: Langfuse counted it).
- Everything else goes through ``price_span``; plain spans leave on its fast
  path untouched. Unknown models become ``unpriced`` (no cost, never $0).

Values are written as strings exactly like the contrib exporter writes a
double attribute (:func:`~spanledger.collector.convert.format_double`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from spanledger import semconv
from spanledger.collector.convert import format_double

log = logging.getLogger(__name__)


@dataclass
class PricingCounters:
    priced: int = 0
    unpriced: int = 0
    aggregate: int = 0
    no_usage: int = 0


class PricingEnricher:
    """An :data:`~spanledger.collector.convert.Enricher`: adds cost attributes in place."""

    def __init__(self, prices_file: str | None = None) -> None:
        from spanledger.pricing.catalog import PriceCatalog
        from spanledger.pricing.span_pricing import GENAI_KEYS, price_span

        self.catalog = PriceCatalog(prices_file) if prices_file else PriceCatalog.from_env()
        self._price_span = price_span
        self._genai_keys = GENAI_KEYS
        self._call_keys = self.catalog.call_keys
        self._usage_keys = frozenset(semconv.INPUT_TOKENS + semconv.OUTPUT_TOKENS
                                     + semconv.CACHE_READ_TOKENS + semconv.CACHE_WRITE_TOKENS)
        self.counters = PricingCounters()

    def __call__(self, attrs: dict[str, str], start_ns: int) -> None:
        if semconv.COST_STATUS in attrs:
            return  # priced where it happened: never re-price
        if self._genai_keys.isdisjoint(attrs) and (
            not self._call_keys or self._call_keys.isdisjoint(attrs)
        ):
            return  # a plain span
        if (attrs.get(semconv.OPERATION) in semconv.AGGREGATE_OPERATIONS
                and not self._usage_keys.isdisjoint(attrs)):
            attrs[semconv.COST_STATUS] = semconv.STATUS_AGGREGATE
            self.counters.aggregate += 1
            return
        try:
            result = self._price_span(self.catalog, attrs, start_ns)
        except Exception:  # a pricing bug must not lose the span
            log.exception("pricing a span failed; stored without a cost status")
            return
        if result is None:
            return
        for key, value in result.attributes().items():
            attrs[key] = _as_string(value)
        status = result.status
        if status == semconv.STATUS_PRICED:
            self.counters.priced += 1
        elif status == semconv.STATUS_UNPRICED:
            self.counters.unpriced += 1
        else:
            self.counters.no_usage += 1


def _as_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_double(value)
    return str(value)
