"""The collector's own counters, exposed as Prometheus text on ``/metrics``.

Plain text exposition (format 0.0.4) needs no extra dependency; every name
starts with ``spanledger_collector_``. A few counters carry one label (the
reason a span was quarantined); the series of a label value appears once it
has been counted.
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
    "spans_written_total": "spans inserted into otel_traces (rows the table really gained)",
    "spans_deduplicated_total": "spans of a replayed segment the store already had",
    "spans_duplicate_total": "spans dropped as repeats of a (TraceId, SpanId) in the same segment",
    "spans_priced_total": "spans priced by the collector (every GenAI span is priced here)",
    "spans_unpriced_total": "spans the collector could not price (unknown model)",
    "spans_aggregate_total": "spans stored as aggregate (their trace shows the calls that "
                             "carry their usage, or they have nothing to count)",
    "spans_same_call_total": "second spans of a provider call another span counts (stored "
                             "duplicate, not priced)",
    "spans_verified_total": "spans a service priced, re-priced by the collector (its figure "
                            "kept as spanledger.cost.reported)",
    "spans_retried_total": "GenAI spans dropped because the same (TraceId, SpanId) was written "
                           "in an earlier segment (a retry; recent-keys window)",
    "cost_reported_total": "counted spans that came with a cost of their own (a service's or "
                           "another tool's)",
    "cost_reported_disagreements_total": "... whose cost differs from the collector's by more "
                                         "than the tolerance (trust.disagreement_tolerance)",
    "requests_bad_total": "requests refused as malformed (INVALID_ARGUMENT / 400)",
    "requests_oversize_total": "requests refused as too large (RESOURCE_EXHAUSTED / 413)",
    "requests_unauthenticated_total": "requests refused for a missing or wrong bearer token",
    "auth_stamps_stripped_total": "spanledger.auth.token values a client sent itself (removed "
                                  "before its token's own was stamped)",
    "spans_unverified_total": "spans whose token may not claim their team, cost centre or "
                              "service (stored as (unverified), the claim kept beside it)",
    "requests_unavailable_total": "requests refused because the spool is full (UNAVAILABLE / 503)",
    "requests_failed_total": "requests that failed with an internal error",
    "insert_errors_total": "failed inserts into the store (retried)",
    "insert_rejections_total": "segments the store refused for their data (then split)",
    "segments_written_total": "spool segments inserted and deleted",
    "writer_restarts_total": "times the writer recovered from a failure and started over",
}
#: counters with one label: name -> (label, help)
LABELLED: dict[str, tuple[str, str]] = {
    "spans_quarantined_total": ("reason", "spans set aside in spanledger_quarantine, by reason"),
    "claims_rejected_total": ("claim", "client claims the collector did not take (the span "
                                       "stored as the call it is): aggregate, duplicate, status"),
}


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._labelled: dict[str, dict[str, int]] = {name: {} for name in LABELLED}
        #: gauges (and counters kept elsewhere) are read when scraped: name -> (help, function)
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self._counter_fns: dict[str, tuple[str, Callable[[], float]]] = {}

    def inc(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def get(self, name: str) -> int:
        return self._values[name]

    def inc_labelled(self, name: str, label_value: str, amount: int = 1) -> None:
        with self._lock:
            series = self._labelled[name]
            series[label_value] = series.get(label_value, 0) + amount

    def get_labelled(self, name: str) -> dict[str, int]:
        with self._lock:
            return dict(self._labelled[name])

    def gauge(self, name: str, help_text: str, fn: Callable[[], float]) -> None:
        self._gauges[name] = (help_text, fn)

    def counter(self, name: str, help_text: str, fn: Callable[[], float]) -> None:
        """A counter another object keeps (read when scraped)."""
        self._counter_fns[name] = (help_text, fn)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            values = dict(self._values)
            labelled = {name: dict(series) for name, series in self._labelled.items()}
        for name, help_text in COUNTERS.items():
            full = PREFIX + name
            lines += [f"# HELP {full} {help_text}", f"# TYPE {full} counter",
                      f"{full} {values[name]}"]
        for name, (label, help_text) in LABELLED.items():
            full = PREFIX + name
            lines += [f"# HELP {full} {help_text}", f"# TYPE {full} counter"]
            lines += [f'{full}{{{label}="{_escape(value)}"}} {count}'
                      for value, count in sorted(labelled[name].items())]
        for kind, table in (("counter", self._counter_fns), ("gauge", self._gauges)):
            for name, (help_text, fn) in table.items():
                full = PREFIX + name
                try:
                    value = float(fn())
                except Exception:  # a scrape must not fail because one gauge did
                    continue
                text = str(int(value)) if value.is_integer() else repr(value)
                lines += [f"# HELP {full} {help_text}", f"# TYPE {full} {kind}",
                          f"{full} {text}"]
        return "\n".join(lines) + "\n"


def _escape(label_value: str) -> str:
    return label_value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
