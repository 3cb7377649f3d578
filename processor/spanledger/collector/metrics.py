"""The collector's own counters, exposed as Prometheus text on ``/metrics``.

Plain text exposition (format 0.0.4) needs no extra dependency; every name
starts with ``spanledger_collector_``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

PREFIX = "spanledger_collector_"

#: name -> (type, help)
COUNTERS: dict[str, str] = {
    "requests_total": "OTLP export requests received (all outcomes)",
    "spans_received_total": "spans accepted into the spool (acknowledged)",
    "spans_rejected_total": "spans rejected for invalid trace or span ids",
    "spans_written_total": "spans inserted into otel_traces",
    "spans_duplicate_total": "spans dropped as repeats of a (TraceId, SpanId) in the same segment",
    "spans_priced_total": "spans priced by the collector (arrived without a cost status)",
    "spans_unpriced_total": "spans the collector could not price (unknown model)",
    "spans_aggregate_total": "agent/workflow spans marked aggregate by the collector",
    "spans_same_call_total": "second spans of a provider call another span counts (marked "
                             "duplicate by the collector, not priced)",
    "cost_reported_total": "spans priced by the collector that came with another tool's cost",
    "cost_reported_disagreements_total": "... whose cost differs from ours by more than 1 ppm",
    "requests_bad_total": "requests refused as malformed (INVALID_ARGUMENT / 400)",
    "requests_oversize_total": "requests refused as too large (RESOURCE_EXHAUSTED / 413)",
    "requests_unauthenticated_total": "requests refused for a missing or wrong bearer token",
    "requests_unavailable_total": "requests refused because the spool is full (UNAVAILABLE / 503)",
    "requests_failed_total": "requests that failed with an internal error",
    "insert_errors_total": "failed inserts into the store (retried)",
    "segments_written_total": "spool segments inserted and deleted",
}


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        #: gauges are read when scraped: name -> (help, function)
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def inc(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def get(self, name: str) -> int:
        return self._values[name]

    def gauge(self, name: str, help_text: str, fn: Callable[[], float]) -> None:
        self._gauges[name] = (help_text, fn)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            values = dict(self._values)
        for name, help_text in COUNTERS.items():
            full = PREFIX + name
            lines += [f"# HELP {full} {help_text}", f"# TYPE {full} counter",
                      f"{full} {values[name]}"]
        for name, (help_text, fn) in self._gauges.items():
            full = PREFIX + name
            try:
                value = float(fn())
            except Exception:  # a scrape must not fail because one gauge did
                continue
            text = str(int(value)) if value.is_integer() else repr(value)
            lines += [f"# HELP {full} {help_text}", f"# TYPE {full} gauge", f"{full} {text}"]
        return "\n".join(lines) + "\n"
