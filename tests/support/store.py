"""Helpers for tests that need a real embedded store (chdb) with spans in it.

chdb allows one store path per process: always use ``migrated_store`` as a
context manager (or close the store) so the next test can open its own path.
Spans are built with the collector's Arrow schema (``otel_traces_schema``),
so tests exercise exactly what the collector writes.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from spanledger.store import Store, open_store, otel_traces_schema

T0 = dt.datetime(2026, 11, 20, 12, 0, 0, tzinfo=dt.UTC)
_ids = itertools.count(1)


@contextmanager
def migrated_store(path: Path) -> Iterator[Store]:
    """A fresh, migrated embedded store at ``path``; closed on exit."""
    store = open_store(f"chdb://{path}", migrate=True)
    try:
        yield store
    finally:
        store.close()


def span(
    trace_id: str,
    *,
    status: str | None = "priced",
    cost: Decimal | None = None,
    parts: Mapping[str, Decimal] | None = None,
    team: str = "",
    feature: str = "",
    customer: str = "",
    model: str = "gpt-4o",
    provider: str = "openai",
    input_tokens: int | None = 100,
    output_tokens: int | None = 20,
    cache_read: int | None = None,
    service: str = "svc",
    environment: str = "prod",
    start: dt.datetime = T0,
    duration_ns: int = 1_000_000,
    status_code: str = "Unset",
    rollup: Decimal | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One otel_traces row as the collector writes it (attributes are strings)."""
    attrs: dict[str, str] = {"gen_ai.request.model": model, "gen_ai.provider.name": provider}
    if status is not None:
        attrs["spanledger.cost.status"] = status
    if cost is not None:
        attrs["gen_ai.usage.cost"] = str(cost)
    for part, value in (parts or {}).items():
        attrs[f"spanledger.cost.{part}"] = str(value)
    if rollup is not None:
        attrs["spanledger.cost.rollup"] = str(rollup)
    if input_tokens is not None:
        attrs["gen_ai.usage.input_tokens"] = str(input_tokens)
    if output_tokens is not None:
        attrs["gen_ai.usage.output_tokens"] = str(output_tokens)
    if cache_read is not None:
        attrs["gen_ai.usage.cache_read.input_tokens"] = str(cache_read)
    for key, value in (("team", team), ("feature", feature), ("customer", customer)):
        if value:
            attrs[f"spanledger.{key}"] = value
    attrs.update(extra or {})
    return {
        "Timestamp": start,
        "TraceId": trace_id,
        "SpanId": f"{next(_ids):016x}",
        "ParentSpanId": "",
        "TraceState": "",
        "SpanName": f"chat {model}",
        "SpanKind": "Client",
        "ServiceName": service,
        "ResourceAttributes": [
            ("service.name", service), ("deployment.environment.name", environment),
        ],
        "ScopeName": "opentelemetry.instrumentation.openai",
        "ScopeVersion": "0.62.0",
        "SpanAttributes": list(attrs.items()),
        "Duration": duration_ns,
        "StatusCode": status_code,
        "StatusMessage": "",
        "Events.Timestamp": [],
        "Events.Name": [],
        "Events.Attributes": [],
        "Links.TraceId": [],
        "Links.SpanId": [],
        "Links.TraceState": [],
        "Links.Attributes": [],
    }


def plain_span(trace_id: str, name: str = "GET /", start: dt.datetime = T0) -> dict[str, Any]:
    """A non-GenAI span (no usage, no status): must not reach llm_calls."""
    row = span(trace_id, status=None, input_tokens=None, output_tokens=None)
    row["SpanName"] = name
    row["SpanKind"] = "Server"
    row["SpanAttributes"] = [("http.request.method", "GET")]
    row["Timestamp"] = start
    return row


def batch(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """An Arrow batch with the collector's otel_traces schema."""
    return pa.Table.from_pylist([dict(r) for r in rows], schema=otel_traces_schema())


def attr(row: Mapping[str, Any], key: str) -> str | None:
    return dict(row["SpanAttributes"]).get(key)
