"""Decode and validate OTLP trace requests (protobuf or OTLP/JSON), shared by both receivers.

A receiver must answer every request, never crash: malformed input becomes a
:class:`BadRequest` (gRPC INVALID_ARGUMENT / HTTP 400), and spans whose ids
cannot be stored (trace id not 16 bytes, span id not 8 bytes, or all zero)
are dropped and counted as ``rejected_spans`` in the OTLP partial-success
answer while the rest of the request is kept.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


class BadRequest(ValueError):
    """The request cannot be decoded at all (INVALID_ARGUMENT / 400)."""


@dataclass(slots=True)
class Accepted:
    """A decoded request after validation: what goes into the spool."""

    request: ExportTraceServiceRequest
    #: the protobuf bytes of ``request`` (the original bytes when nothing was dropped)
    payload: bytes
    spans: int
    rejected: int
    error: str = ""

    def response(self) -> ExportTraceServiceResponse:
        if not self.rejected:
            return ExportTraceServiceResponse()
        return ExportTraceServiceResponse(
            partial_success=ExportTracePartialSuccess(
                rejected_spans=self.rejected, error_message=self.error
            )
        )


def parse_protobuf(body: bytes) -> Accepted:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise BadRequest(f"malformed OTLP protobuf: {exc}") from None
    return validate(request, body)


def parse_json(body: bytes) -> Accepted:
    """OTLP/JSON: camelCase keys, hex ids (not base64), enums as integers or names."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed OTLP JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest("malformed OTLP JSON: the body must be an object with resourceSpans")
    try:
        _hex_ids_to_base64(doc)
        request = json_format.ParseDict(doc, ExportTraceServiceRequest(),
                                        ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, AttributeError) as exc:
        raise BadRequest(f"malformed OTLP JSON: {exc}") from None
    return validate(request, None)


def validate(request: ExportTraceServiceRequest, original: bytes | None) -> Accepted:
    """Drop spans with unusable ids; keep everything else byte for byte."""
    total = rejected = 0
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            spans = ss.spans
            bad: list[int] = []
            for i, span in enumerate(spans):
                tid = span.trace_id
                sid = span.span_id
                if len(tid) != 16 or len(sid) != 8 or tid == _ZERO_TRACE or sid == _ZERO_SPAN:
                    bad.append(i)
            total += len(spans)
            if bad:
                rejected += len(bad)
                for i in reversed(bad):
                    del spans[i]
    error = ""
    if rejected:
        error = (f"{rejected} span(s) rejected: trace id must be 16 bytes and span id 8 bytes, "
                 "not all zero")
        original = None
    payload = original if original is not None else request.SerializeToString()
    return Accepted(request, payload, total - rejected, rejected, error)


def response_json(response: ExportTraceServiceResponse) -> bytes:
    return json_format.MessageToJson(response, indent=None).encode()


def _b64_of_hex(value: Any) -> str:
    if not isinstance(value, str) or not value:
        return ""
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        try:  # some senders use base64 (the protobuf JSON mapping) anyway
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return ""  # unusable: the span is rejected by validate()
    return base64.b64encode(raw).decode()


def _hex_ids_to_base64(doc: dict[str, Any]) -> None:
    """Rewrite OTLP/JSON hex ids into the base64 the protobuf JSON parser expects."""
    for rs in doc.get("resourceSpans") or doc.get("resource_spans") or []:
        for ss in rs.get("scopeSpans") or rs.get("scope_spans") or []:
            for span in ss.get("spans") or []:
                _fix_ids(span)
                for link in span.get("links") or []:
                    _fix_ids(link)


def _fix_ids(obj: dict[str, Any]) -> None:
    for key in ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"):
        if key in obj:
            obj[key] = _b64_of_hex(obj[key])


#: HTTP status -> google.rpc.Code, for the Status body of an OTLP/HTTP error
_RPC_CODES = {400: 3, 401: 16, 413: 8, 503: 14, 500: 13}


def rpc_status(http_status: int, message: str) -> Any:
    """The ``google.rpc.Status`` body OTLP/HTTP prescribes for an error response."""
    from google.rpc import status_pb2

    return status_pb2.Status(code=_RPC_CODES.get(http_status, 2), message=message)


def status_json(status: Any) -> bytes:
    return json_format.MessageToJson(status, indent=None).encode()
