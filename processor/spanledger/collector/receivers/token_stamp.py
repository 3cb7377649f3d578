"""Stamp the name of the token a request presented on each of its resources, cheaply.

With a tokens file, the conversion checks every span's team, cost centre and
service against what its token may claim, so the token must travel with the
spans through the spool: as the resource attribute ``spanledger.auth.token``. A
client cannot forge it: any value a request carries itself is removed first.

Re-serializing a decoded request costs about two thirds of decoding it (measured:
0.9 ms against 1.3 ms for 512 GenAI spans), so the stamp is spliced into the bytes
instead: protobuf merges repeated occurrences of a message field, so appending
``resource { attributes { key, value } }`` to each ``ResourceSpans`` adds one
attribute to that resource. Only the length prefix of each ``ResourceSpans`` is
rewritten; spans are not touched (per resource, not per span). The slow path
(re-serializing) is taken only when a client sent the attribute itself.
"""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from spanledger.semconv import AUTH_TOKEN

#: ExportTraceServiceRequest.resource_spans / ResourceSpans.resource: field 1, length-delimited
_FIELD_1_LEN = 0x0A
_stamps: dict[str, bytes] = {}


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _stamp_field(name: str) -> bytes:
    """``resource { attributes { key: spanledger.auth.token, value: name } }`` as the bytes of
    one ResourceSpans field (cached per token name)."""
    field = _stamps.get(name)
    if field is None:
        resource = Resource(attributes=[KeyValue(
            key=AUTH_TOKEN, value=AnyValue(string_value=name))]).SerializeToString()
        field = _stamps[name] = bytes([_FIELD_1_LEN]) + _varint(len(resource)) + resource
    return field


def strip(request: ExportTraceServiceRequest) -> int:
    """Remove every ``spanledger.auth.token`` a client put on its resources; how many."""
    removed = 0
    for rs in request.resource_spans:
        attrs = rs.resource.attributes
        for i in range(len(attrs) - 1, -1, -1):
            if attrs[i].key == AUTH_TOKEN:
                del attrs[i]
                removed += 1
    return removed


def splice(payload: bytes, field: bytes) -> bytes:
    """``payload`` (an ExportTraceServiceRequest) with ``field`` appended to each ResourceSpans."""
    pieces: list[bytes | memoryview] = []
    view = memoryview(payload)
    pos, end = 0, len(payload)
    head = bytes([_FIELD_1_LEN])
    extra = len(field)
    while pos < end:
        tag, at = _read_varint(payload, pos)
        wire = tag & 7
        if tag >> 3 == 1 and wire == 2:
            length, start = _read_varint(payload, at)
            stop = start + length
            if stop > end:
                raise ValueError("truncated resource_spans")
            pieces += (head, _varint(length + extra), view[start:stop], field)
            pos = stop
            continue
        if wire == 0:
            _, at = _read_varint(payload, at)
        elif wire == 1:
            at += 8
        elif wire == 2:
            length, at = _read_varint(payload, at)
            at += length
        elif wire == 5:
            at += 4
        else:
            raise ValueError(f"unexpected wire type {wire}")
        if at > end:
            raise ValueError("truncated field")
        pieces.append(view[pos:at])
        pos = at
    return b"".join(pieces)


def stamp(payload: bytes, request: ExportTraceServiceRequest, name: str) -> tuple[bytes, int]:
    """The spooled bytes with ``name`` on every resource, and how many forged stamps went.

    ``request`` is the decoded ``payload``; it is changed (and re-serialized) only when a
    client sent ``spanledger.auth.token`` itself.
    """
    removed = strip(request)
    if removed:
        payload = request.SerializeToString()
    return splice(payload, _stamp_field(name)), removed


__all__ = ["splice", "stamp", "strip"]
