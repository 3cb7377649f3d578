"""The Arrow schema of an ``otel_traces`` batch, column for column with the DDL.

The collector builds its Arrow batches with exactly this schema and hands them
to ``Store.insert_arrow("otel_traces", ...)``; the store tests insert with it
too, so a column the DDL and the writer disagree on fails a test, not a demo.
Nested columns (Events.*, Links.*) are parallel arrays, one list per span.
"""

from __future__ import annotations

import pyarrow as pa

_MAP = pa.map_(pa.string(), pa.string())  # chdb reads Map(LowCardinality(String), String) from this
_TS = pa.timestamp("ns", tz="UTC")


def otel_traces_schema() -> pa.Schema:
    """Columns in DDL order; ``Timestamp`` is UTC nanoseconds, ``Duration`` nanoseconds."""
    return pa.schema(
        [
            ("Timestamp", _TS),
            ("TraceId", pa.string()),
            ("SpanId", pa.string()),
            ("ParentSpanId", pa.string()),
            ("TraceState", pa.string()),
            ("SpanName", pa.string()),
            ("SpanKind", pa.string()),
            ("ServiceName", pa.string()),
            ("ResourceAttributes", _MAP),
            ("ScopeName", pa.string()),
            ("ScopeVersion", pa.string()),
            ("SpanAttributes", _MAP),
            ("Duration", pa.uint64()),
            ("StatusCode", pa.string()),
            ("StatusMessage", pa.string()),
            ("Events.Timestamp", pa.list_(_TS)),
            ("Events.Name", pa.list_(pa.string())),
            ("Events.Attributes", pa.list_(_MAP)),
            ("Links.TraceId", pa.list_(pa.string())),
            ("Links.SpanId", pa.list_(pa.string())),
            ("Links.TraceState", pa.list_(pa.string())),
            ("Links.Attributes", pa.list_(_MAP)),
        ]
    )
