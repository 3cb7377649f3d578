"""Spans the store cannot hold are refused at intake (partial success), never stored.

Times outside [1970-01-01, 2149-06-06) wrap ClickHouse's ``Date`` or overflow
``DateTime64(9)`` / ``addNanoseconds`` further down (a poison segment that used
to stop all ingestion); parent and link ids of the wrong length cannot be
written as the contrib exporter writes them. The rest of the request is kept.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spanledger.collector import otlp
from support.collector import read_store, start_collector
from support.loadgen import genai_request

#: 2149-06-06T00:00:00Z in ns: the first instant outside the window
LIMIT_NS = int(dt.datetime(2149, 6, 6, tzinfo=dt.UTC).timestamp()) * 1_000_000_000
NOW_NS = 1_760_000_000_000_000_000
U64_MAX = 2**64 - 1


def _request(*spans: Span) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    ss.spans.extend(spans)
    return req


def _span(n: int, **fields: object) -> Span:
    base: dict[str, object] = {
        "trace_id": bytes([n]) * 16, "span_id": bytes([n]) * 8, "name": f"span-{n}",
        "start_time_unix_nano": NOW_NS, "end_time_unix_nano": NOW_NS + 1000,
    }
    base.update(fields)
    return Span(**base)  # type: ignore[arg-type]


def test_the_window_is_what_the_types_hold() -> None:
    assert otlp.TIME_WINDOW_NS == (0, LIMIT_NS)
    assert LIMIT_NS < 2**63  # inside DateTime64(9)


@pytest.mark.parametrize("fields", [
    {"start_time_unix_nano": 2**63},
    {"start_time_unix_nano": U64_MAX, "end_time_unix_nano": U64_MAX},
    {"end_time_unix_nano": U64_MAX},
    {"end_time_unix_nano": LIMIT_NS},
    {"start_time_unix_nano": LIMIT_NS, "end_time_unix_nano": LIMIT_NS + 1},
    {"events": [Span.Event(time_unix_nano=U64_MAX, name="late")]},
])
def test_times_outside_the_window_are_rejected(fields: dict[str, object]) -> None:
    accepted = otlp.parse_protobuf(_request(_span(1), _span(2, **fields)).SerializeToString())
    assert (accepted.spans, accepted.rejected) == (1, 1)
    assert accepted.error == ("1 span(s) rejected: 1 with a start, end or event time outside "
                              "[1970-01-01, 2149-06-06) UTC")
    assert [s.name for s in accepted.request.resource_spans[0].scope_spans[0].spans] == ["span-1"]
    answer = accepted.response().partial_success
    assert answer.rejected_spans == 1 and "2149-06-06" in answer.error_message


@pytest.mark.parametrize("fields", [
    {"start_time_unix_nano": 0, "end_time_unix_nano": 0},  # unset times: the epoch
    {"start_time_unix_nano": LIMIT_NS - 1, "end_time_unix_nano": LIMIT_NS - 1},
    {"end_time_unix_nano": NOW_NS - 5},  # end before start: kept, Duration 0
    {"end_time_unix_nano": 0},
    {"parent_span_id": b""},
    {"parent_span_id": b"\x07" * 8},
])
def test_edges_inside_the_window_and_good_ids_are_kept(fields: dict[str, object]) -> None:
    body = _request(_span(1, **fields)).SerializeToString()
    accepted = otlp.parse_protobuf(body)
    assert (accepted.spans, accepted.rejected) == (1, 0)
    assert accepted.payload == body  # untouched: spooled byte for byte


@pytest.mark.parametrize("fields", [
    {"parent_span_id": b"\x01\x02\x03"},
    {"parent_span_id": b"\x01" * 16},
    {"links": [Span.Link(trace_id=b"\x01" * 15, span_id=b"\x02" * 8)]},
    {"links": [Span.Link(trace_id=b"\x01" * 16, span_id=b"\x02" * 4)]},
    {"links": [Span.Link(trace_id=bytes(16), span_id=b"\x02" * 8)]},
    {"links": [Span.Link(trace_id=b"\x01" * 16, span_id=bytes(8))]},
    {"links": [Span.Link(trace_id=b"\x01" * 16, span_id=b"\x02" * 8), Span.Link()]},
])
def test_parent_and_link_ids_are_length_checked(fields: dict[str, object]) -> None:
    accepted = otlp.parse_protobuf(_request(_span(1), _span(2, **fields)).SerializeToString())
    assert (accepted.spans, accepted.rejected) == (1, 1)
    assert accepted.error.startswith("1 span(s) rejected: 1 with invalid ids (trace id must be "
                                     "16 bytes and span id 8 bytes")


def test_both_reasons_are_counted_in_one_message() -> None:
    accepted = otlp.parse_protobuf(_request(
        _span(1), _span(2, parent_span_id=b"\x01"), _span(3, start_time_unix_nano=2**63),
        _span(4, end_time_unix_nano=U64_MAX)).SerializeToString())
    assert (accepted.spans, accepted.rejected) == (1, 3)
    assert accepted.error.startswith("3 span(s) rejected: 1 with invalid ids")
    assert accepted.error.endswith("; 2 with a start, end or event time outside "
                                   "[1970-01-01, 2149-06-06) UTC")


def test_json_times_are_checked_alike() -> None:
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "01" * 16, "spanId": "01" * 8, "name": "ok",
         "startTimeUnixNano": str(NOW_NS), "endTimeUnixNano": str(NOW_NS + 1)},
        {"traceId": "02" * 16, "spanId": "02" * 8, "name": "overflow",
         "startTimeUnixNano": str(NOW_NS), "endTimeUnixNano": str(U64_MAX)},
        {"traceId": "03" * 16, "spanId": "03" * 8, "name": "bad link",
         "links": [{"traceId": "03" * 16, "spanId": "0303"}]},
    ]}]}]}
    accepted = otlp.parse_json(json.dumps(doc).encode())
    assert (accepted.spans, accepted.rejected) == (1, 2)


def test_poison_spans_are_refused_and_the_rest_stored(tmp_path: Path) -> None:
    """Old behaviour: accepted, then the segment failed in the writer (retried forever or
    moved to .bad with the canaries). Now: refused in the answer, canaries written."""
    running = start_collector(tmp_path / "store")
    try:
        canaries = genai_request(5, service="canary", start_ns=NOW_NS)
        canaries.resource_spans[0].scope_spans[0].spans.extend([
            _span(11, start_time_unix_nano=2**63, end_time_unix_nano=2**63 + 5),
            _span(12, end_time_unix_nano=U64_MAX),
            _span(13, parent_span_id=b"\x01\x02"),
            _span(14, name="inverted", end_time_unix_nano=NOW_NS - 1_000_000),
            _span(15, name="last day", start_time_unix_nano=LIMIT_NS - 10**9,
                  end_time_unix_nano=LIMIT_NS - 1),
        ])
        answer = running.stub().Export(canaries, timeout=30)
        assert answer.partial_success.rejected_spans == 3
        doc = {"resourceSpans": [{"scopeSpans": [{"spans": [
            {"traceId": "21" * 16, "spanId": "21" * 8, "name": "json ok",
             "startTimeUnixNano": str(NOW_NS), "endTimeUnixNano": str(NOW_NS + 7)},
            {"traceId": "22" * 16, "spanId": "22" * 8, "name": "json overflow",
             "startTimeUnixNano": str(NOW_NS), "endTimeUnixNano": str(U64_MAX)}]}]}]}
        r = requests.post(running.http_url, data=json.dumps(doc), timeout=30,
                          headers={"Content-Type": "application/json"})
        assert r.status_code == 200 and r.json()["partialSuccess"]["rejectedSpans"] == "1"
        assert running.wait_metric("spans_written_total", 8) == 8
        assert running.metric("spans_rejected_total") == 4
        assert running.get("healthz")[0] == 200
    finally:
        assert running.stop() == 0
    rows = read_store(tmp_path / "store",
                      "SELECT ServiceName, SpanName, Duration, toString(toDate(Timestamp)) "
                      "FROM otel_traces ORDER BY ServiceName, SpanName")
    assert len(rows) == 8
    assert sum(1 for r in rows if r[1].startswith("chat ")) == 5
    by_name = {r[1]: r for r in rows}
    assert by_name["inverted"][2] == 0
    assert by_name["last day"][3] == "2149-06-05"
    assert by_name["json ok"][2] == 7
    assert not {"span-11", "span-12", "span-13", "json overflow"} & set(by_name)
