"""Fuzzing the intake: whatever a client sends, the answer is an Accepted or a refusal.

Hypothesis drives the protobuf decoder, the OTLP/JSON decoder and the HTTP
body decoder (framing, gzip) with generated requests (valid, mutated, and
raw bytes). The only outcomes allowed are an :class:`~otlp.Accepted` or a
:class:`~otlp.BadRequest` / :class:`~http_body.BodyRefused` (never another
exception, never the intake's INTERNAL refusal), and whatever is accepted
round-trips: the spooled bytes parse back to the accepted spans, every span
is inside the ids and time rules, and the writer's conversion turns them into
Arrow rows without error (so nothing accepted can poison a segment).

The suite runs a bounded number of examples (about a minute in all);
``SPANLEDGER_FUZZ_EXAMPLES=20000`` runs that many per test.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import io
import json
import os
from http.client import HTTPMessage
from typing import Any

from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from spanledger.collector import otlp
from spanledger.collector.convert import Columns
from spanledger.collector.metrics import Metrics
from spanledger.collector.receivers import http_body
from spanledger.collector.receivers.intake import Intake, Refusal

#: per test; the default keeps the whole file around a minute on a busy 2-core machine
FUZZ_EXAMPLES = int(os.environ.get("SPANLEDGER_FUZZ_EXAMPLES", "300"))
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                suppress_health_check=_HEALTH)
#: for the cheap targets (raw bytes and text): ten times as many
FUZZ_CHEAP = settings(FUZZ, max_examples=FUZZ_EXAMPLES * 10)

#: written out independently of otlp.TIME_WINDOW_NS: [1970-01-01, 2149-06-06)
LAST_NS = int(dt.datetime(2149, 6, 6, tzinfo=dt.UTC).timestamp()) * 1_000_000_000
NOW_NS = 1_760_000_000_000_000_000
MAX_BODY = 64 * 1024

# -- generated OTLP requests ------------------------------------------------------------

_times = st.one_of(
    st.integers(NOW_NS - 10**12, NOW_NS + 10**12),
    st.sampled_from([0, 1, LAST_NS - 1, LAST_NS, 2**63 - 1, 2**63, 2**64 - 1]),
    st.integers(0, 2**64 - 1),
)
_id16 = st.one_of(st.binary(min_size=16, max_size=16), st.just(bytes(16)), st.binary(max_size=20))
_id8 = st.one_of(st.binary(min_size=8, max_size=8), st.just(bytes(8)), st.binary(max_size=10))
_parent = st.one_of(st.just(b""), st.binary(min_size=8, max_size=8), st.binary(max_size=10))
_scalar = st.one_of(
    st.builds(lambda v: AnyValue(string_value=v), st.text(max_size=20)),
    st.builds(lambda v: AnyValue(bool_value=v), st.booleans()),
    st.builds(lambda v: AnyValue(int_value=v), st.integers(-2**63, 2**63 - 1)),
    st.builds(lambda v: AnyValue(double_value=v), st.floats()),
    st.builds(lambda v: AnyValue(bytes_value=v), st.binary(max_size=12)),
    st.just(AnyValue()),
)
_any = st.recursive(_scalar, lambda inner: st.one_of(
    st.builds(lambda vs: AnyValue(array_value=ArrayValue(values=vs)), st.lists(inner, max_size=3)),
    st.builds(lambda kvs: AnyValue(kvlist_value=KeyValueList(
        values=[KeyValue(key=k, value=v) for k, v in kvs])),
        st.lists(st.tuples(st.text(max_size=8), inner), max_size=3)),
), max_leaves=6)
_attrs = st.lists(st.builds(lambda k, v: KeyValue(key=k, value=v), st.sampled_from(
    ["gen_ai.request.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
     "gen_ai.provider.name", "gen_ai.operation.name", "service.name", "k", ""]) | st.text(
    max_size=10), _any), max_size=5)


@st.composite
def _spans(draw: st.DrawFn) -> Span:
    span = Span(trace_id=draw(_id16), span_id=draw(_id8), parent_span_id=draw(_parent),
                name=draw(st.text(max_size=20)), kind=draw(st.integers(0, 7)),
                start_time_unix_nano=draw(_times), end_time_unix_nano=draw(_times),
                attributes=draw(_attrs), trace_state=draw(st.text(max_size=5)),
                status=Status(code=draw(st.integers(0, 3)), message=draw(st.text(max_size=5))))
    for _ in range(draw(st.integers(0, 2))):
        span.events.add(time_unix_nano=draw(_times), name=draw(st.text(max_size=5)),
                        attributes=draw(_attrs))
    for _ in range(draw(st.integers(0, 2))):
        span.links.add(trace_id=draw(_id16), span_id=draw(_id8), attributes=draw(_attrs))
    return span


@st.composite
def _requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rs = request.resource_spans.add()
        rs.resource.attributes.extend(draw(_attrs))
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add()
            ss.scope.name = draw(st.text(max_size=8))
            ss.spans.extend(draw(st.lists(_spans(), max_size=4)))
    return request


def _mutated(data: bytes, draw: st.DrawFn) -> bytes:
    """The bytes truncated, with a byte changed, or with random bytes spliced in."""
    if not data:
        return draw(st.binary(max_size=40))
    at = draw(st.integers(0, len(data)))
    how = draw(st.sampled_from(["keep", "cut", "flip", "splice"]))
    if how == "cut":
        return data[:at]
    if how == "flip" and at < len(data):
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    if how == "splice":
        return data[:at] + draw(st.binary(min_size=1, max_size=20)) + data[at:]
    return data


# -- what an outcome must look like ---------------------------------------------------------

def _storable(span: Span) -> bool:
    """The rules, written out again (not imported): ids and times the store can hold."""
    def ids_ok(trace_id: bytes, span_id: bytes) -> bool:
        return (len(trace_id) == 16 and len(span_id) == 8 and any(trace_id) and any(span_id))

    times = [span.start_time_unix_nano, span.end_time_unix_nano,
             *(e.time_unix_nano for e in span.events)]
    return (ids_ok(span.trace_id, span.span_id) and len(span.parent_span_id) in (0, 8)
            and all(ids_ok(lk.trace_id, lk.span_id) for lk in span.links)
            and all(0 <= t < LAST_NS for t in times))


def _all_spans(request: ExportTraceServiceRequest) -> list[Span]:
    return [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def _check_accepted(accepted: otlp.Accepted) -> None:
    """The spooled bytes are the accepted spans, all storable, and they convert."""
    spooled = ExportTraceServiceRequest.FromString(accepted.payload)
    assert spooled == accepted.request
    spans = _all_spans(spooled)
    assert len(spans) == accepted.spans
    assert all(_storable(s) for s in spans)
    assert (accepted.rejected > 0) == bool(accepted.error)
    columns = Columns()
    columns.add(spooled)
    table = columns.table()
    unique = {(s.trace_id.hex(), s.span_id.hex()) for s in spans}
    assert table.num_rows == len(unique)
    assert set(zip(table.column("TraceId").to_pylist(), table.column("SpanId").to_pylist(),
                   strict=True)) == unique


def _decode(body: bytes, *, json_body: bool) -> otlp.Accepted | None:
    """Accepted, or None for a BadRequest: anything else fails the test."""
    try:
        accepted = otlp.parse_json(body) if json_body else otlp.parse_protobuf(body)
    except otlp.BadRequest as exc:
        assert str(exc).startswith("malformed OTLP")
        str(exc).encode("utf-8")  # safe to put in an answer
        return None
    _check_accepted(accepted)
    return accepted


# -- protobuf ------------------------------------------------------------------------------

@FUZZ
@given(_requests(), st.data())
def test_protobuf_requests_valid_and_mutated(request: ExportTraceServiceRequest,
                                             data: st.DataObject) -> None:
    original = request.SerializeToString()
    body = _mutated(original, data.draw)
    accepted = _decode(body, json_body=False)
    if body == original:
        assert accepted is not None
        spans = _all_spans(request)
        assert accepted.spans == sum(1 for s in spans if _storable(s))
        assert accepted.rejected == len(spans) - accepted.spans
        if not accepted.rejected:
            assert accepted.payload == original  # spooled byte for byte


@FUZZ_CHEAP
@given(st.binary(max_size=512))
def test_protobuf_random_bytes(body: bytes) -> None:
    _decode(body, json_body=False)


# -- OTLP/JSON --------------------------------------------------------------------------------

def _otlp_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """The request as OTLP/JSON: camelCase, hex ids (the protobuf mapping writes base64)."""
    doc = json_format.MessageToDict(request)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for obj in [span, *span.get("links", [])]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in obj:
                            obj[key] = base64.b64decode(obj[key]).hex()
    return doc


_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                       st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2))
_json_value = st.recursive(_json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8)


def _replace_somewhere(doc: Any, value: Any, path: list[int]) -> Any:
    """``doc`` with one node (chosen by ``path``) replaced by ``value``."""
    if not path or not isinstance(doc, dict | list) or not doc:
        return value
    if isinstance(doc, dict):
        key = sorted(doc)[path[0] % len(doc)]
        return {**doc, key: _replace_somewhere(doc[key], value, path[1:])}
    at = path[0] % len(doc)
    return [*doc[:at], _replace_somewhere(doc[at], value, path[1:]), *doc[at + 1:]]


@FUZZ
@given(_requests(), st.data())
def test_json_requests_valid_and_mutated(request: ExportTraceServiceRequest,
                                         data: st.DataObject) -> None:
    doc = _otlp_json(request)
    mutate = data.draw(st.booleans())
    if mutate:
        path = data.draw(st.lists(st.integers(0, 50), max_size=8))
        doc = _replace_somewhere(doc, data.draw(_json_value), path)
    text = json.dumps(doc, ensure_ascii=data.draw(st.booleans()))
    body = text.encode("utf-8", "surrogatepass")  # a lone surrogate: invalid UTF-8
    accepted = _decode(body, json_body=True)
    if not mutate:  # JSON and protobuf agree on a valid request
        expected = otlp.parse_protobuf(request.SerializeToString())
        assert accepted is not None
        assert (accepted.spans, accepted.rejected) == (expected.spans, expected.rejected)
        # compared as dicts: NaN != NaN as a message field, and JSON does not keep NaN's sign
        assert (json_format.MessageToDict(accepted.request)
                == json_format.MessageToDict(expected.request))


_json_text = st.one_of(
    st.text(max_size=200),
    st.builds(lambda depth, inner, wrap: wrap[0] * depth + inner + wrap[1] * depth,
              st.integers(0, 5000), st.sampled_from(["", "1", '"x"', "{}", "[]"]),
              st.sampled_from([("[", "]"), ('{"a":', "}"),
                               ('{"resourceSpans":[', "]}")])),
    st.builds(lambda inner: '{"resourceSpans":[{"scopeSpans":[{"spans":[' + inner + "]}]}]}",
              st.text(max_size=80)),
)


@FUZZ_CHEAP
@given(_json_text, st.sampled_from(["utf-8", "utf-16", "latin-1"]))
def test_json_random_text_and_nesting(text: str, encoding: str) -> None:
    _decode(text.encode(encoding, "surrogatepass" if encoding == "utf-8" else "replace"),
            json_body=True)


# -- the HTTP body, then the whole intake --------------------------------------------------

class _Spool:
    """Takes what the intake would spool."""

    def __init__(self) -> None:
        self.records: list[bytes] = []

    def append(self, payload: bytes, spans: int) -> None:
        self.records.append(payload)


@st.composite
def _bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    """(wire bytes, content encoding) for a body that may or may not be well formed."""
    request = draw(_requests())
    raw = (json.dumps(_otlp_json(request)).encode() if draw(st.booleans())
           else request.SerializeToString())
    raw = draw(st.one_of(st.just(raw), st.binary(max_size=200)))
    kind = draw(st.sampled_from(["plain", "gzip", "gzip+tail", "gzip cut", "two members",
                                 "bomb"]))
    if kind == "plain":
        return raw, draw(st.sampled_from(["", "identity", "br", "GZIP"]))
    packed = gzip.compress(raw)
    if kind == "gzip+tail":
        packed += draw(st.binary(min_size=1, max_size=10))
    elif kind == "gzip cut":
        packed = packed[:draw(st.integers(0, len(packed) - 1))]
    elif kind == "two members":
        packed += gzip.compress(raw[: len(raw) // 2])
    elif kind == "bomb":
        packed = gzip.compress(b"\0" * (MAX_BODY + draw(st.integers(1, 3))))
    return packed, "gzip"


@st.composite
def _headers(draw: st.DrawFn, body_length: int) -> HTTPMessage:
    length = draw(st.one_of(st.just(str(body_length)), st.just(str(body_length)),
                            st.sampled_from(["", "-1", "+5", " 7 ", "1e3", "0x10", "\u0665",
                                             "9" * 30, str(MAX_BODY + 1)]),
                            st.integers(0, body_length + 5).map(str)))
    pairs = [("Content-Type", draw(st.sampled_from(
        ["application/x-protobuf", "application/json", "application/json; charset=utf-8",
         "text/plain", ""]))), ("Content-Length", length)]
    extra = draw(st.lists(st.tuples(
        st.sampled_from(["Content-Length", "Content-Type", "Content-Encoding",
                         "Transfer-Encoding"]),
        st.sampled_from(["chunked", "gzip", "identity", "5", str(body_length), "x"])),
        max_size=2))
    message = HTTPMessage()
    for name, value in pairs + extra:
        message[name] = value
    return message


@FUZZ
@given(_bodies(), st.data())
def test_http_bodies_through_the_intake(wire: tuple[bytes, str], data: st.DataObject) -> None:
    body, encoding = wire
    headers = data.draw(_headers(len(body)))
    if encoding and "Content-Encoding" not in headers:
        headers["Content-Encoding"] = encoding
    sock = io.BytesIO(body)
    try:
        json_body = http_body.is_json(headers)
        decoded = http_body.read_body(headers, sock.read, MAX_BODY)
    except http_body.BodyRefused as exc:
        assert exc.refusal in (Refusal.BAD_REQUEST, Refusal.OVERSIZE)
        if exc.consumed:  # the declared body was read, so the connection stays usable
            assert sock.tell() == min(int(headers["Content-Length"]), len(body))
        else:
            assert sock.tell() == 0  # refused unread: never buffered
        return
    assert len(decoded) <= MAX_BODY
    length = int(headers["Content-Length"])
    assert sock.tell() == length  # exactly the declared body, nothing of the next request
    if headers["Content-Encoding"] == "gzip":
        assert decoded == gzip.decompress(body[:length])
    else:
        assert decoded == body[:length]
    intake = Intake(_Spool(), Metrics(), token=None)  # type: ignore[arg-type]
    outcome = intake.handle(decoded, json_body=json_body, auth_header=None)
    assert outcome.refusal in (None, Refusal.BAD_REQUEST), outcome.message
    if outcome.accepted is not None:
        _check_accepted(outcome.accepted)
        spooled = intake.spool.records  # type: ignore[attr-defined]
        assert spooled == ([outcome.accepted.payload] if outcome.accepted.spans else [])
