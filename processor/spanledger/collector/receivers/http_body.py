"""An OTLP/HTTP request body: its format, its length, its decoding (gzip with a cap).

Kept apart from the HTTP server so every refusal (unsupported type, missing
or oversize Content-Length, a gzip bomb) is a plain function result that can
be tested without sockets. The server only maps :class:`BodyRefused` to a
status code and decides what to do with an unread body.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Protocol

from spanledger.collector.receivers.intake import Refusal

JSON = "application/json"
PROTOBUF = "application/x-protobuf"


class Headers(Protocol):
    """What is read from the request headers (``http.client.HTTPMessage`` has it)."""

    def get(self, name: str, /) -> str | None: ...


class BodyRefused(Exception):
    """The body cannot be accepted; ``consumed`` says whether it was read off the socket."""

    def __init__(self, refusal: Refusal, message: str, *, consumed: bool) -> None:
        super().__init__(message)
        self.refusal, self.message, self.consumed = refusal, message, consumed


def is_json(headers: Headers) -> bool:
    """True for OTLP/JSON, False for OTLP/protobuf (parameters like charset ignored)."""
    ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype not in (JSON, PROTOBUF):
        raise BodyRefused(Refusal.BAD_REQUEST,
                          f"unsupported Content-Type {ctype!r}: use {PROTOBUF} or {JSON}",
                          consumed=False)
    return ctype == JSON


def declared_length(headers: Headers) -> int:
    """Content-Length, or -1 when it is missing or not a number."""
    try:
        return int(headers.get("Content-Length") or "-1")
    except ValueError:
        return -1


def read_body(headers: Headers, read: Callable[[int], bytes], max_body: int) -> bytes:
    """The decoded body (at most ``max_body`` bytes, before and after gunzip).

    Nothing is read when the declared length is missing or over the limit:
    a body that is refused anyway must not be buffered.
    """
    length = declared_length(headers)
    if length < 0:
        raise BodyRefused(Refusal.BAD_REQUEST, "Content-Length is required", consumed=False)
    if length > max_body:
        raise BodyRefused(Refusal.OVERSIZE,
                          f"body of {length} bytes exceeds the limit of {max_body}",
                          consumed=False)
    body = read(length)
    encoding = (headers.get("Content-Encoding") or "").strip().lower()
    if encoding == "gzip":
        return gunzip(body, max_body)
    if encoding not in ("", "identity"):
        raise BodyRefused(Refusal.BAD_REQUEST, f"unsupported Content-Encoding {encoding!r}",
                          consumed=True)
    return body


def gunzip(body: bytes, limit: int) -> bytes:
    """Inflate with a cap: a small gzip bomb must not exhaust memory."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BodyRefused(Refusal.BAD_REQUEST, f"bad gzip body: {exc}", consumed=True) from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyRefused(Refusal.OVERSIZE, "decompressed body exceeds the limit", consumed=True)
    return out
