"""Malformed, oversize, invalid and unauthenticated requests: the right OTLP answer, no crash.

One collector (bearer token on, small size limits) takes every kind of bad
request over both transports, then still accepts good data and stores
exactly the valid spans.
"""

from __future__ import annotations

import gzip
import json
import socket
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from support.collector import RunningCollector, read_store, start_collector
from support.loadgen import genai_request

TOKEN = "s3cret-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
HDR = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> RunningCollector:
    tmp = tmp_path_factory.mktemp("bad-input")
    config = tmp / "collector.yaml"
    config.write_text(
        "receivers:\n  otlp:\n    grpc:\n      max_message_mb: 1\n    http:\n      max_body_mb: 1\n"
        f"auth:\n  bearer_token: {TOKEN}\n"
    )
    running = start_collector(tmp / "store", config=config)
    yield running
    running.stop()


def _with_bad_ids() -> ExportTraceServiceRequest:
    req = genai_request(5)
    spans = req.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = b"\x00" * 16  # all zero
    spans[1].span_id = b"\x01\x02"  # wrong length
    return req


def test_grpc_refusals(collector: RunningCollector) -> None:
    channel = grpc.insecure_channel(collector.grpc_target)
    raw = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                              request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as bad:
        raw(b"\x0a\xff\xff\xff\x0f garbage", metadata=AUTH, timeout=10)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed OTLP protobuf" in bad.value.details()

    with pytest.raises(grpc.RpcError) as big:
        raw(genai_request(1500).SerializeToString(), metadata=AUTH, timeout=10)
    assert big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    for metadata in ((), (("authorization", "Bearer wrong"),)):
        with pytest.raises(grpc.RpcError) as unauth:
            raw(genai_request(1).SerializeToString(), metadata=metadata, timeout=10)
        assert unauth.value.code() == grpc.StatusCode.UNAUTHENTICATED

    stub = collector.stub()
    response = stub.Export(_with_bad_ids(), metadata=AUTH, timeout=10)
    assert response.partial_success.rejected_spans == 2
    assert "16 bytes" in response.partial_success.error_message
    ok = stub.Export(genai_request(3), metadata=AUTH, timeout=10)
    assert not ok.HasField("partial_success")


def test_http_refusals(collector: RunningCollector) -> None:
    url = collector.http_url
    proto = {"Content-Type": "application/x-protobuf", **HDR}
    r = requests.post(url, data=b"\x0a\xff\xff\xff\x0f garbage", headers=proto, timeout=10)
    assert r.status_code == 400
    r = requests.post(url, data=b"{not json", timeout=10,
                      headers={"Content-Type": "application/json", **HDR})
    assert r.status_code == 400 and "malformed OTLP JSON" in r.json()["message"]
    r = requests.post(url, data=genai_request(1500).SerializeToString(), headers=proto, timeout=10)
    assert r.status_code == 413
    bomb = gzip.compress(b"\x00" * (3 * 1024 * 1024))
    r = requests.post(url, data=bomb, headers={**proto, "Content-Encoding": "gzip"}, timeout=10)
    assert r.status_code == 413
    r = requests.post(url, data=genai_request(1).SerializeToString(), timeout=10,
                      headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 401
    r = requests.post(url, data=b"x", headers={"Content-Type": "text/plain", **HDR}, timeout=10)
    assert r.status_code == 400

    r = requests.post(url, data=_with_bad_ids().SerializeToString(), headers=proto, timeout=10)
    assert r.status_code == 200
    answer = ExportTraceServiceResponse.FromString(r.content)
    assert answer.partial_success.rejected_spans == 2

    r = requests.post(url, data=gzip.compress(genai_request(4).SerializeToString()),
                      headers={**proto, "Content-Encoding": "gzip"}, timeout=10)
    assert r.status_code == 200 and r.content == b""


def test_otlp_json(collector: RunningCollector) -> None:
    """OTLP/JSON: hex ids, enum integers, camelCase, int64 as strings."""
    body = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
        "scopeSpans": [{"scope": {"name": "json-scope"}, "spans": [
            {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
             "parentSpanId": "eee19b7ec3c1b173", "name": "chat json", "kind": 3,
             "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000500000000",
             "attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "42"}},
                            {"key": "ok", "value": {"boolValue": True}},
                            {"key": "ratio", "value": {"doubleValue": 0.00001}},
                            {"key": "tags", "value": {"arrayValue": {"values": [
                                {"stringValue": "a"}, {"intValue": "1"}]}}}],
             "status": {"code": 2, "message": "boom"}},
            {"traceId": "", "spanId": "eee19b7ec3c1b175", "name": "no trace id"},
        ]}]}]}
    r = requests.post(collector.http_url, data=json.dumps(body), timeout=10,
                      headers={"Content-Type": "application/json", **HDR})
    assert r.status_code == 200
    assert r.json()["partialSuccess"]["rejectedSpans"] == "1"


def _raw_post(url: str, head: bytes, body: bytes) -> bytes:
    """Send a hand-written request (headers requests would fix up) and read the answer."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n" + body)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_hostile_encodings_are_bad_requests(collector: RunningCollector) -> None:
    """Deep nesting, lone surrogates, gzip with a tail, two lengths: 400, never 500."""
    url = collector.http_url
    as_json = {"Content-Type": "application/json", **HDR}
    deep = b'{"resourceSpans":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    surrogate_key = b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"\\ud800":1}]}]}]}'
    surrogate_value = (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"' + b"ab" * 16
                       + b'","spanId":"' + b"cd" * 8 + b'","name":"\\udfff"}]}]}]}')
    for body in (deep, surrogate_key, surrogate_value):
        r = requests.post(url, data=body, headers=as_json, timeout=10)
        assert r.status_code == 400, r.text
        assert r.json()["message"].startswith("malformed OTLP JSON: ")
    proto = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip", **HDR}
    tailed = gzip.compress(genai_request(2).SerializeToString()) + b"trailing garbage"
    r = requests.post(url, data=tailed, headers=proto, timeout=10)
    assert r.status_code == 400
    assert b"after the gzip stream" in r.content
    body = genai_request(2).SerializeToString()
    head = (f"Content-Type: application/x-protobuf\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Length: {len(body)}\r\nContent-Length: {len(body)}\r\n").encode()
    answer = _raw_post(url, head, body)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"Content-Length is repeated" in answer


def test_still_healthy_and_only_valid_spans_stored(collector: RunningCollector,
                                                   tmp_path: Path) -> None:
    # 3 (grpc ok) + 3 (grpc partial) + 3 (http partial) + 4 (http gzip) + 1 (json)
    expected = 14
    assert collector.wait_metric("spans_written_total", expected) == expected
    assert collector.get("healthz")[0] == 200
    assert collector.metric("spans_rejected_total") == 5
    assert collector.metric("requests_bad_total") >= 4
    assert collector.metric("requests_unauthenticated_total") == 3
    # the HTTP ones; gRPC's own size limit answers before the handler runs
    assert collector.metric("requests_oversize_total") == 2
    assert collector.stop() == 0
    rows = read_store(collector.store_dir,
                      "SELECT count(), countIf(TraceId = '') FROM otel_traces")
    assert rows == [(expected, 0)]
    (span,) = read_store(collector.store_dir,
                         "SELECT TraceId, SpanId, ParentSpanId, SpanKind, StatusCode, ServiceName, "
                         "Duration, SpanAttributes['gen_ai.usage.input_tokens'], "
                         "SpanAttributes['ok'], SpanAttributes['ratio'], SpanAttributes['tags'] "
                         "FROM otel_traces WHERE SpanName = 'chat json'")
    assert span == ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "eee19b7ec3c1b173",
                    "Client", "Error", "json-svc", 500_000_000, "42",
                    "true", "0.00001", '["a",1]')
