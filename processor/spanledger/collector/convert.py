"""OTLP spans -> an Arrow table with exactly the columns of ``otel_traces``.

The rows must be the ones the OpenTelemetry Collector contrib ClickHouse
exporter writes, so the same materialized views and dashboards work whoever
wrote the data:

- ``Timestamp`` is the span start (ns); ``Duration`` is end - start in ns.
- ids are lowercase hex; an empty parent id is ``''``.
- ``SpanKind`` / ``StatusCode`` are the strings of the current contrib exporter
  (``Client``, ``Error``: pdata's ``String()``; :data:`SPAN_KINDS`,
  :data:`STATUS_CODES`, one place to change).
- attribute values become strings like pdata's ``Value.AsString()``: ints in
  decimal, bools ``true``/``false``, doubles like Go's
  ``strconv.FormatFloat(v, 'f', -1, 64)`` (shortest round-trip digits, never an
  exponent, so ClickHouse's ``toDecimal128OrZero`` reads costs), bytes as
  base64, arrays and maps as JSON with sorted keys.
- ``ServiceName`` comes from the resource's ``service.name``.

This is the collector's hot path (every span passes here once), so columns
are collected as flat Python lists and each Arrow array is built once; map
columns are built from flat key/value lists and offsets instead of per-row
dicts.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spanledger import semconv
from spanledger.store.otel_schema import otel_traces_schema

#: SpanKind enum value -> otel_traces.SpanKind. The current contrib exporter writes
#: pdata's ``span.Kind().String()`` (older releases wrote traceutil's "SPAN_KIND_*").
SPAN_KINDS: dict[int, str] = {
    0: "Unspecified",
    1: "Internal",
    2: "Server",
    3: "Client",
    4: "Producer",
    5: "Consumer",
}
#: Status.code -> otel_traces.StatusCode: ``Status().Code().String()`` (was "STATUS_CODE_*")
STATUS_CODES: dict[int, str] = {0: "Unset", 1: "Ok", 2: "Error"}

_TS = pa.timestamp("ns", tz="UTC")
_MAP = pa.map_(pa.string(), pa.string())
#: the Arrow types of the otel_traces columns, in table order (owned by the store)
SCHEMA = otel_traces_schema()
new_tuple = tuple.__new__

class SpanRef(NamedTuple):
    """What an enricher may need of a span besides its attributes (ids as lowercase hex)."""

    trace_id: str
    span_id: str
    parent_id: str
    end_ns: int
    #: instrumentation scope name (it picks the usage convention)
    scope: str


class Enricher(Protocol):
    """Called with each span's attributes (as strings; may change them), start time and ids.

    ``settle()`` runs once all spans of a table were seen, before their attributes are
    written out: the enricher may still change the attributes it was given (the pricing
    enricher marks the second span of a provider call as a duplicate there).
    """

    def __call__(self, attrs: dict[str, str], start_ns: int, span: SpanRef) -> None: ...

    def settle(self) -> None: ...


#: called with a resource's attributes (it may change them); returns a check that may change
#: each of its spans' attributes, or None (collector/attribution_policy.py)
ResourceCheck = Callable[[dict[str, str]], Callable[[dict[str, str]], None] | None]


def format_double(value: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'f', -1, 64)``: shortest digits, no exponent."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    if text.endswith(".0"):
        text = text[:-2]
    return text


def _json_text(text: str) -> str:
    # Go's encoding/json escapes these for HTML safety; match its bytes.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _raw(value: Any) -> Any:
    """An AnyValue as the plain Python value pdata's ``AsRaw()`` gives (for JSON)."""
    fields = value.ListFields()
    if not fields:
        return None
    fd, v = fields[0]
    name = fd.name
    if name == "array_value":
        return [_raw(x) for x in v.values]
    if name == "kvlist_value":
        return {kv.key: _raw(kv.value) for kv in v.values}
    if name == "bytes_value":
        return base64.b64encode(v).decode()
    if name == "double_value" and v.is_integer() and abs(v) < 1e21:
        return int(v)  # Go's encoding/json writes 1.0 as 1
    return v


def _json(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)
    return _json_text(text)


def value_string(value: Any) -> str:
    """``AnyValue`` -> string exactly like pdata ``Value.AsString()``."""
    fields = value.ListFields()
    if not fields:
        return ""
    _fd, v = fields[0]
    kind = type(v)
    if kind is str:
        return v
    if kind is bool:
        return "true" if v else "false"
    if kind is int:
        return str(v)
    if kind is float:
        return format_double(v)
    if kind is bytes:
        return base64.b64encode(v).decode()
    return _json(_raw(value))


_doubles: dict[float, str] = {}


def attrs_dict(kvs: Iterable[Any]) -> dict[str, str]:
    """Attributes as a key -> string dict (a repeated key: the last one wins)."""
    out: dict[str, str] = {}
    for kv in kvs:
        v = kv.value
        s = v.string_value  # the common case first: one C call, no WhichOneof
        if s:
            out[kv.key] = s
            continue
        w = v.WhichOneof("value")
        if w == "int_value":
            out[kv.key] = str(v.int_value)
        elif w == "double_value":
            d = v.double_value
            text = _doubles.get(d)
            if text is None:
                text = format_double(d)
                if d and len(_doubles) < 8192:  # repeats (temperature, prices) are common; not -0.0
                    _doubles[d] = text
            out[kv.key] = text
        elif w == "bool_value":
            out[kv.key] = "true" if v.bool_value else "false"
        elif w is None or w == "string_value":
            out[kv.key] = ""
        else:
            out[kv.key] = value_string(v)
    return out


class Columns:
    """Column lists for one Arrow table, filled request by request.

    ``policy`` (a tokens file): each resource's attributes go through it, and each of
    its spans' attributes through the check it returns (collector/attribution_policy.py).
    """

    def __init__(self, policy: ResourceCheck | None = None) -> None:
        self.policy = policy
        self.ts: list[int] = []
        self.trace: list[str] = []
        self.span: list[str] = []
        self.parent: list[str] = []
        self.state: list[str] = []
        self.name: list[str] = []
        self.kind: list[str] = []
        self.service: list[str] = []
        self.res_off: list[int] = [0]
        self.res_k: list[str] = []
        self.res_v: list[str] = []
        self.scope_name: list[str] = []
        self.scope_version: list[str] = []
        #: each span's attributes, flattened into the map column only by table(): an
        #: enricher may still change them until then (see Enricher.settle)
        self.attr_rows: list[dict[str, str]] = []
        self._enrichers: list[Enricher] = []
        self.duration: list[int] = []
        self.status: list[str] = []
        self.status_msg: list[str] = []
        self.ev_ts: list[list[int]] = []
        self.ev_name: list[list[str]] = []
        self.ev_attrs: list[list[dict[str, str]]] = []
        self.ln_trace: list[list[str]] = []
        self.ln_span: list[list[str]] = []
        self.ln_state: list[list[str]] = []
        self.ln_attrs: list[list[dict[str, str]]] = []
        #: (trace id, span id) bytes seen: an SDK retry must not become two rows
        self.seen: set[bytes] = set()
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self.ts)

    def add(self, request: ExportTraceServiceRequest, enrich: Enricher | None = None) -> None:
        seen, policy = self.seen, self.policy
        kinds, codes = SPAN_KINDS, STATUS_CODES
        ts, trace, span_col, parent, state = self.ts, self.trace, self.span, self.parent, self.state
        name, kind, service = self.name, self.kind, self.service
        res_off, res_k, res_v = self.res_off, self.res_k, self.res_v
        scope_name, scope_version = self.scope_name, self.scope_version
        attr_rows = self.attr_rows
        if enrich is not None and enrich not in self._enrichers:
            self._enrichers.append(enrich)
        duration, status, status_msg = self.duration, self.status, self.status_msg
        ev_ts, ev_name, ev_attrs = self.ev_ts, self.ev_name, self.ev_attrs
        ln_trace, ln_span = self.ln_trace, self.ln_span
        ln_state, ln_attrs = self.ln_state, self.ln_attrs
        empty: list[Any] = []
        for rs in request.resource_spans:
            rattrs = attrs_dict(rs.resource.attributes)
            check = policy(rattrs) if policy is not None else None
            rkeys, rvals = list(rattrs), list(rattrs.values())
            nres = len(rkeys)
            svc = rattrs.get(semconv.SERVICE_NAME, "")
            for ss in rs.scope_spans:
                scope = ss.scope
                sname, sver = scope.name, scope.version
                for sp in ss.spans:
                    tid = sp.trace_id
                    sid = sp.span_id
                    key = tid + sid
                    if key in seen:
                        self.duplicates += 1
                        continue
                    seen.add(key)
                    start = sp.start_time_unix_nano
                    ts.append(start)
                    trace.append(tid.hex())
                    span_col.append(sid.hex())
                    parent.append(sp.parent_span_id.hex())
                    state.append(sp.trace_state)
                    name.append(sp.name)
                    kind.append(kinds.get(sp.kind, ""))
                    service.append(svc)
                    res_k.extend(rkeys)
                    res_v.extend(rvals)
                    res_off.append(res_off[-1] + nres)
                    scope_name.append(sname)
                    scope_version.append(sver)
                    attrs = attrs_dict(sp.attributes)
                    if check is not None:
                        check(attrs)
                    end = sp.end_time_unix_nano
                    if enrich is not None:  # (tuple.__new__: no NamedTuple frame per span)
                        enrich(attrs, start, new_tuple(SpanRef, (trace[-1], span_col[-1],
                                                                 parent[-1], end, sname)))
                    attr_rows.append(attrs)
                    duration.append(end - start if end > start else 0)
                    st = sp.status
                    status.append(codes.get(st.code, ""))
                    status_msg.append(st.message)
                    if sp.events:
                        evs = sp.events
                        ev_ts.append([e.time_unix_nano for e in evs])
                        ev_name.append([e.name for e in evs])
                        ev_attrs.append([attrs_dict(e.attributes) for e in evs])
                    else:
                        ev_ts.append(empty)
                        ev_name.append(empty)
                        ev_attrs.append(empty)
                    if sp.links:
                        lks = sp.links
                        ln_trace.append([lk.trace_id.hex() for lk in lks])
                        ln_span.append([lk.span_id.hex() for lk in lks])
                        ln_state.append([lk.trace_state for lk in lks])
                        ln_attrs.append([attrs_dict(lk.attributes) for lk in lks])
                    else:
                        ln_trace.append(empty)
                        ln_span.append(empty)
                        ln_state.append(empty)
                        ln_attrs.append(empty)

    def attributes_columns(self) -> tuple[list[int], list[str], list[str]]:
        """The span attributes as map-column parts (offsets, keys, values), after every
        enricher settled."""
        for enrich in self._enrichers:
            enrich.settle()
        self._enrichers.clear()
        offsets, keys, values = [0], [], []
        n = 0
        for attrs in self.attr_rows:
            keys.extend(attrs)
            values.extend(attrs.values())
            n += len(attrs)
            offsets.append(n)
        return offsets, keys, values

    def table(self) -> pa.Table:
        def strings(values: list[str]) -> pa.Array:
            return pa.array(values, pa.string())

        def map_array(offsets: list[int], keys: list[str], values: list[str]) -> pa.Array:
            return pa.MapArray.from_arrays(
                pa.array(offsets, pa.int32()), strings(keys), strings(values)
            )

        def list_of_maps(rows: list[list[dict[str, str]]]) -> pa.Array:
            return pa.array([[list(m.items()) for m in row] for row in rows], pa.list_(_MAP))

        attr_off, attr_k, attr_v = self.attributes_columns()
        arrays = [
            pa.array(self.ts, pa.int64()).cast(_TS),
            strings(self.trace),
            strings(self.span),
            strings(self.parent),
            strings(self.state),
            strings(self.name),
            strings(self.kind),
            strings(self.service),
            map_array(self.res_off, self.res_k, self.res_v),
            strings(self.scope_name),
            strings(self.scope_version),
            map_array(attr_off, attr_k, attr_v),
            pa.array(self.duration, pa.uint64()),
            strings(self.status),
            strings(self.status_msg),
            pa.array(self.ev_ts, pa.list_(pa.int64())).cast(pa.list_(_TS)),
            pa.array(self.ev_name, pa.list_(pa.string())),
            list_of_maps(self.ev_attrs),
            pa.array(self.ln_trace, pa.list_(pa.string())),
            pa.array(self.ln_span, pa.list_(pa.string())),
            pa.array(self.ln_state, pa.list_(pa.string())),
            list_of_maps(self.ln_attrs),
        ]
        return pa.Table.from_arrays(arrays, schema=SCHEMA)

