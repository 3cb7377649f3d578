"""Decode and validate OTLP trace requests (protobuf or OTLP/JSON), shared by both receivers.

A receiver must answer every request, never crash: malformed input becomes a
:class:`BadRequest` (gRPC INVALID_ARGUMENT / HTTP 400), whatever the decoder
trips on (deep nesting, lone surrogates, odd types), and its message is safe to
echo (short, valid UTF-8). Spans the store cannot hold are dropped and counted
as ``rejected_spans`` in the OTLP partial-success answer while the rest of the
request is kept, so one bad span never becomes a poison segment downstream:

- ids: trace id 16 bytes and span id 8 bytes, not all zero; parent span id
  empty or 8 bytes; every link's trace and span id like the span's own;
- times: start, end and every event time inside :data:`TIME_WINDOW_NS`.

An end before the start is kept (``Duration`` 0, as the converter writes it):
SDK clocks step (NTP) between a span's start and end, the row stores only the
start and a duration, and both stay inside the types.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)

#: [first, last) nanosecond a span's start, end or event time may have:
#: [1970-01-01, 2149-06-06) UTC. ClickHouse's ``Date`` (the day a span is
#: partitioned and rolled up by) wraps silently outside 1970-01-01..2149-06-06,
#: ``DateTime64(9)`` ends in 2262 (an int64 of ns: a start >= 2^63 cannot even be
#: converted) and ``addNanoseconds(start, duration)`` overflows for ends near 2^64.
TIME_WINDOW_NS: Final = (0, 65_535 * 86_400 * 1_000_000_000)
#: the window as people read it (error messages): "[1970-01-01, 2149-06-06) UTC"
TIME_WINDOW_TEXT: Final = "[{}, {}) UTC".format(
    *(dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.UTC).date() for ns in TIME_WINDOW_NS))

#: longest refusal message echoed to a client (decoder messages quote the input)
MAX_MESSAGE_CHARS = 512

#: what the decoders raise on hostile input besides their documented errors:
#: RecursionError (deep nesting), UnicodeError (lone surrogates), SystemError
#: (upb wrapping a UnicodeError for a surrogate in a field name), OverflowError
_DECODE_ERRORS = (ValueError, TypeError, AttributeError, RecursionError, UnicodeError,
                  SystemError, OverflowError)


def safe_message(text: str) -> str:
    """``text`` short and encodable (a lone surrogate would break the answer itself)."""
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class BadRequest(ValueError):
    """The request cannot be decoded at all (INVALID_ARGUMENT / 400); message safe to echo."""

    def __init__(self, message: str) -> None:
        super().__init__(safe_message(message))


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
    except (DecodeError, RuntimeError, *_DECODE_ERRORS) as exc:
        raise BadRequest(f"malformed OTLP protobuf: {exc}") from None
    return validate(request, body)


def parse_json(body: bytes) -> Accepted:
    """OTLP/JSON: camelCase keys, hex ids (not base64), enums as integers or names."""
    try:
        doc = json.loads(body)
    except _DECODE_ERRORS as exc:  # RecursionError: nesting deeper than the parser's stack
        raise BadRequest(f"malformed OTLP JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest("malformed OTLP JSON: the body must be an object with resourceSpans")
    try:
        _hex_ids_to_base64(doc)
        request = json_format.ParseDict(doc, ExportTraceServiceRequest(),
                                        ignore_unknown_fields=True)
    except (json_format.ParseError, *_DECODE_ERRORS) as exc:
        raise BadRequest(f"malformed OTLP JSON: {_reason(exc)}") from None
    return validate(request, None)


def _reason(exc: BaseException) -> str:
    """The decoder's complaint; upb reports a surrogate in a key as a bare SystemError."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, UnicodeError) or isinstance(cause, UnicodeError):
        return "a string holds a lone surrogate (a \\uD800-\\uDFFF escape without its pair)"
    return str(exc)


def validate(request: ExportTraceServiceRequest, original: bytes | None) -> Accepted:
    """Drop spans the store cannot hold (see the module docstring); keep the rest byte for byte.

    Runs on every span the receivers take, so the checks are inlined, cheapest first.
    """
    first, last = TIME_WINDOW_NS
    zero_trace, zero_span = _ZERO_TRACE, _ZERO_SPAN
    total = bad_ids = bad_times = 0
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            spans = ss.spans
            bad: list[int] = []
            for i, span in enumerate(spans):
                tid = span.trace_id
                sid = span.span_id
                if (len(tid) != 16 or len(sid) != 8 or tid == zero_trace or sid == zero_span
                        or len(span.parent_span_id) not in (0, 8)):
                    bad_ids += 1
                    bad.append(i)
                elif not (first <= span.start_time_unix_nano < last
                          and first <= span.end_time_unix_nano < last):
                    bad_times += 1
                    bad.append(i)
                else:
                    links = span.links
                    if links and not _links_ok(links):
                        bad_ids += 1
                        bad.append(i)
                        continue
                    events = span.events
                    if events and not _events_ok(events):
                        bad_times += 1
                        bad.append(i)
            total += len(spans)
            for i in reversed(bad):
                del spans[i]
    rejected = bad_ids + bad_times
    error = ""
    if rejected:
        reasons = []
        if bad_ids:
            reasons.append(f"{bad_ids} with invalid ids (trace id must be 16 bytes and span id "
                           "8 bytes, not all zero; parent span id empty or 8 bytes; link ids "
                           "like a span's)")
        if bad_times:
            reasons.append(f"{bad_times} with a start, end or event time outside "
                           f"{TIME_WINDOW_TEXT}")
        error = f"{rejected} span(s) rejected: " + "; ".join(reasons)
        original = None
    payload = original if original is not None else request.SerializeToString()
    return Accepted(request, payload, total - rejected, rejected, error)


def _links_ok(links: Iterable[Span.Link]) -> bool:
    for link in links:
        tid, sid = link.trace_id, link.span_id
        if len(tid) != 16 or len(sid) != 8 or tid == _ZERO_TRACE or sid == _ZERO_SPAN:
            return False
    return True


def _events_ok(events: Iterable[Span.Event]) -> bool:
    first, last = TIME_WINDOW_NS
    return all(first <= event.time_unix_nano < last for event in events)


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

    return status_pb2.Status(code=_RPC_CODES.get(http_status, 2), message=safe_message(message))


def status_json(status: Any) -> bytes:
    return json_format.MessageToJson(status, indent=None).encode()
