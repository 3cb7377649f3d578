"""Spans the store cannot take: set aside with the reason, never dropped, never in the way.

A span that cannot be converted or inserted (a timestamp past what the schema
holds, a value ClickHouse refuses) must not hold up everyone else's spans, and
must not vanish either. Such spans become rows of ``spanledger_quarantine``
(see ``clickhouse/0005_quarantine.sql``): when, the spool segment, the ids,
the service, a short reason code, the details (e.g. ClickHouse's message) and
the span itself as OTLP/JSON, so it can be fixed and sent again.

Anything may quarantine a span: build a :class:`QuarantinedSpan` from an
``otel_traces`` row (:meth:`QuarantinedSpan.from_row`), an OTLP span
(:meth:`~QuarantinedSpan.from_otlp`) or raw bytes, and hand it to
:meth:`Quarantine.put`. ``put`` returns once the rows are durable: they are
first written to a file in the spool's ``quarantine/`` directory, then
inserted; a file the store does not take now (it is down) stays and is
inserted later, at the latest at the next start. Each file carries its dedup
token in its name, so a file inserted twice counts once.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from spanledger.collector.convert import SPAN_KINDS, STATUS_CODES
from spanledger.collector.metrics import Metrics
from spanledger.collector.spool import fsync_path
from spanledger.store.base import Store, StoreError

log = logging.getLogger(__name__)

TABLE = "spanledger_quarantine"
#: the span's JSON is cut here (a 1 MB attribute must not make a 1 MB row per span)
SPAN_CAP = 64 * 1024
#: one attribute value in the JSON is cut here first, so most spans stay valid JSON
VALUE_CAP = 4 * 1024
DETAIL_CAP = 4 * 1024
SUFFIX = ".arrows"
TRUNCATED = "…(truncated)"

# Reason codes (the Reason column and the metric's label): few, stable, documented.
#: a start, end or event time outside what the schema's DateTime64(9)/Date columns hold
TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
#: a spool record whose bytes are not an OTLP request (or fail their checksum)
UNDECODABLE = "undecodable"
#: the span raised while being converted or priced
CONVERSION_FAILED = "conversion_failed"
#: ClickHouse refused the span itself (Detail: its message)
STORE_REJECTED = "store_rejected"
#: the span is in otel_traces but a materialized view failed on it (Detail: which, why)
VIEW_FAILED = "view_failed"
# (and USAGE_OUT_OF_BOUNDS / COST_OUT_OF_BOUNDS in collector/bounds.py: a span past the
# per-call ceilings, set aside before it is priced)

_SCHEMA = pa.schema([
    ("Time", pa.timestamp("ms", tz="UTC")),
    ("Segment", pa.string()),
    ("TraceId", pa.string()),
    ("SpanId", pa.string()),
    ("ServiceName", pa.string()),
    ("Reason", pa.string()),
    ("Detail", pa.string()),
    ("Span", pa.string()),
])  # fmt: skip
_KIND_NUMBERS = {name: number for number, name in SPAN_KINDS.items()}
_STATUS_NUMBERS = {name: number for number, name in STATUS_CODES.items()}
_TOKEN_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, slots=True)
class QuarantinedSpan:
    """One span set aside: why, and enough of it to find, fix and resend it."""

    reason: str
    detail: str
    trace_id: str = ""
    span_id: str = ""
    service: str = ""
    #: the span as OTLP/JSON (or base64 of bytes that were not a span), capped
    span: str = ""
    segment: str = ""

    @classmethod
    def from_row(cls, row: Mapping[str, Any], reason: str, detail: str,
                 segment: str = "") -> QuarantinedSpan:
        """From an ``otel_traces`` row as a dict (see :func:`rows_of`)."""
        return cls(reason, _cap(detail, DETAIL_CAP), str(row.get("TraceId", "")),
                   str(row.get("SpanId", "")), str(row.get("ServiceName", "")),
                   row_to_otlp_json(row), segment)

    @classmethod
    def from_otlp(cls, resource_spans: Any, scope_spans: Any, span: Any, reason: str,
                  detail: str, segment: str = "") -> QuarantinedSpan:
        """From an OTLP span with its resource and scope (protobuf messages)."""
        service = ""
        for kv in resource_spans.resource.attributes:
            if kv.key == "service.name":
                service = kv.value.string_value
        return cls(reason, _cap(detail, DETAIL_CAP), span.trace_id.hex(), span.span_id.hex(),
                   service, otlp_span_json(resource_spans, scope_spans, span), segment)

    @classmethod
    def from_bytes(cls, data: bytes, reason: str, detail: str,
                   segment: str = "") -> QuarantinedSpan:
        """From bytes that could not be read as spans (kept as base64, capped)."""
        text = base64.b64encode(data[: SPAN_CAP * 3 // 4]).decode()
        if len(data) > SPAN_CAP * 3 // 4:
            detail = f"{detail} (first {SPAN_CAP * 3 // 4} of {len(data)} bytes kept)"
        return cls(reason, _cap(detail, DETAIL_CAP), span=text, segment=segment)


# -- the span as OTLP/JSON -----------------------------------------------------------------
def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


def _attributes(pairs: Iterable[tuple[str, str]] | Mapping[str, str] | None) -> list[Any]:
    items = pairs.items() if isinstance(pairs, Mapping) else (pairs or [])
    return [{"key": str(k), "value": {"stringValue": _cap(str(v), VALUE_CAP)}} for k, v in items]


def _ns(value: Any) -> int:
    if isinstance(value, dt.datetime):
        return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1000
    return int(value or 0)


def row_to_otlp_json(row: Mapping[str, Any]) -> str:
    """An ``otel_traces`` row back as an OTLP/JSON request holding just that span.

    Attribute values come back as strings (that is how otel_traces stores them);
    ids are hex, as OTLP/JSON wants them, so the text can be POSTed to /v1/traces.
    """
    start = _ns(row.get("Timestamp"))
    span: dict[str, Any] = {
        "traceId": row.get("TraceId", ""),
        "spanId": row.get("SpanId", ""),
        "parentSpanId": row.get("ParentSpanId", ""),
        "traceState": row.get("TraceState", ""),
        "name": row.get("SpanName", ""),
        "kind": _KIND_NUMBERS.get(str(row.get("SpanKind", "")), 0),
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + int(row.get("Duration") or 0)),
        "attributes": _attributes(row.get("SpanAttributes")),
        "events": [
            {"timeUnixNano": str(_ns(t)), "name": n, "attributes": _attributes(a)}
            for t, n, a in zip(row.get("Events.Timestamp") or [], row.get("Events.Name") or [],
                               row.get("Events.Attributes") or [], strict=False)
        ],
        "links": [
            {"traceId": t, "spanId": s, "traceState": st, "attributes": _attributes(a)}
            for t, s, st, a in zip(row.get("Links.TraceId") or [], row.get("Links.SpanId") or [],
                                   row.get("Links.TraceState") or [],
                                   row.get("Links.Attributes") or [], strict=False)
        ],
        "status": {"code": _STATUS_NUMBERS.get(str(row.get("StatusCode", "")), 0),
                   "message": row.get("StatusMessage", "")},
    }
    request = {"resourceSpans": [{
        "resource": {"attributes": _attributes(row.get("ResourceAttributes"))},
        "scopeSpans": [{"scope": {"name": row.get("ScopeName", ""),
                                  "version": row.get("ScopeVersion", "")},
                        "spans": [span]}],
    }]}  # fmt: skip
    return _cap(json.dumps(request, ensure_ascii=False, separators=(",", ":")), SPAN_CAP)


def _hex_ids(node: Any) -> None:
    """protobuf's JSON writes bytes as base64; OTLP/JSON wants trace and span ids in hex."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)


def single_span_request(resource_spans: Any, scope_spans: Any, span: Any) -> Any:
    """An ExportTraceServiceRequest holding just ``span`` under copies of its resource and
    scope: how a span is retried alone, and kept as it came."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.CopyFrom(resource_spans.resource)
    rs.schema_url = resource_spans.schema_url
    ss = rs.scope_spans.add()
    ss.scope.CopyFrom(scope_spans.scope)
    ss.schema_url = scope_spans.schema_url
    ss.spans.add().CopyFrom(span)
    return request


def otlp_span_json(resource_spans: Any, scope_spans: Any, span: Any) -> str:
    """One span with its resource and scope as an OTLP/JSON request (the original values)."""
    from google.protobuf.json_format import MessageToDict

    request = single_span_request(resource_spans, scope_spans, span)
    doc = MessageToDict(request, use_integers_for_enums=True)
    _hex_ids(doc)
    return _cap(json.dumps(doc, ensure_ascii=False, separators=(",", ":")), SPAN_CAP)


def rows_of(table: pa.Table) -> list[dict[str, Any]]:
    """The rows of an ``otel_traces`` Arrow table as dicts, times as integer nanoseconds."""
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        typ = column.type
        if pa.types.is_timestamp(typ):
            column = column.cast(pa.int64())
        elif pa.types.is_list(typ) and pa.types.is_timestamp(typ.value_type):
            column = column.cast(pa.list_(pa.int64()))
        columns[name] = column.to_pylist()
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(),
                                                                       strict=True)]


# -- files and the table -------------------------------------------------------------------
def quarantine_table(entries: Sequence[QuarantinedSpan],
                     when: dt.datetime | None = None) -> pa.Table:
    now = when or dt.datetime.now(dt.UTC)
    return pa.table([
        pa.array([now] * len(entries), _SCHEMA.field("Time").type),
        pa.array([e.segment for e in entries], pa.string()),
        pa.array([e.trace_id for e in entries], pa.string()),
        pa.array([e.span_id for e in entries], pa.string()),
        pa.array([e.service for e in entries], pa.string()),
        pa.array([e.reason for e in entries], pa.string()),
        pa.array([e.detail for e in entries], pa.string()),
        pa.array([e.span for e in entries], pa.string()),
    ], schema=_SCHEMA)  # fmt: skip


def write_entries(entries: Sequence[QuarantinedSpan], path: str | Path) -> None:
    """``entries`` as an Arrow stream file (not yet durable: see :meth:`Quarantine.put_file`)."""
    table = quarantine_table(entries)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)


def reasons_of(entries: Iterable[QuarantinedSpan]) -> dict[str, int]:
    return dict(Counter(e.reason for e in entries))


def token_name(token: str) -> str:
    """A dedup token as a file name (tokens are built from safe characters already)."""
    return _TOKEN_SAFE.sub("_", token)


class Quarantine:
    """The durable way into ``spanledger_quarantine`` (see the module docstring)."""

    def __init__(self, store: Store, directory: str | Path, metrics: Metrics | None = None
                 ) -> None:
        self.store = store
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics = metrics
        self.last_error: str | None = None
        #: files may be waiting (from a previous run, or an insert that failed)
        self.maybe_pending = True

    def put(self, entries: Sequence[QuarantinedSpan], token: str) -> None:
        """Quarantine ``entries``; durable on return (table or file). ``token`` dedups a replay."""
        if not entries:
            return
        tmp = self.dir / f".{token_name(token)}.tmp"
        write_entries(entries, tmp)
        self._adopt(tmp, token, reasons_of(entries))

    def put_file(self, path: str | Path, token: str, reasons: Mapping[str, int]) -> None:
        """Quarantine the rows of a file written by :func:`write_entries` (e.g. in a worker)."""
        self._adopt(Path(path), token, reasons)

    def _adopt(self, path: Path, token: str, reasons: Mapping[str, int]) -> None:
        final = self.dir / (token_name(token) + SUFFIX)
        fsync_path(path)
        os.replace(path, final)
        fsync_path(self.dir)
        for reason, count in reasons.items():
            log.warning("quarantined %d span(s): %s", count, reason)
            if self.metrics is not None:
                self.metrics.inc_labelled("spans_quarantined_total", reason, count)
        self._insert(final, token)

    def flush(self) -> bool:
        """Insert the files the store did not take before; True when none is left."""
        if not self.maybe_pending:
            return True
        for path in sorted(self.dir.glob(f"*{SUFFIX}")):
            if not self._insert(path, path.name[: -len(SUFFIX)]):
                return False
        self.maybe_pending = False
        return True

    @property
    def pending(self) -> int:
        """Files waiting for the store."""
        return sum(1 for _ in self.dir.glob(f"*{SUFFIX}"))

    def _insert(self, path: Path, token: str) -> bool:
        try:
            self.store.insert_arrow_file(TABLE, path, dedup_token=token)
        except StoreError as exc:
            if self.last_error is None:
                log.error("quarantine rows kept in %s until the store takes them: %s",
                          self.dir, str(exc).splitlines()[0] if str(exc) else repr(exc))
            self.last_error = str(exc)
            self.maybe_pending = True
            return False
        self.last_error = None
        path.unlink(missing_ok=True)
        return True
