"""An OTLP/HTTP request body: its format, its length, its decoding (gzip with a cap).

Kept apart from the HTTP server so every refusal (unsupported type, missing
or oversize Content-Length, a gzip bomb) is a plain function result that can
be tested without sockets. The server only maps :class:`BodyRefused` to a
status code and decides what to do with an unread body.

Framing is strict because a proxy in front may frame the same bytes
differently (request smuggling): exactly one Content-Length of plain digits,
no Transfer-Encoding (chunked bodies are not read here), one Content-Type and
one Content-Encoding. A gzip body is one or more complete gzip members and
nothing else: trailing bytes or a truncated stream are refused, not ignored.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Protocol

from spanledger.collector.receivers.intake import Refusal

JSON = "application/json"
PROTOBUF = "application/x-protobuf"


#: more digits than this cannot be a length under any limit (and int() of 5000 digits raises)
_MAX_LENGTH_DIGITS = 18
_GZIP_MAGIC = b"\x1f\x8b"


class Headers(Protocol):
    """What is read from the request headers (``http.client.HTTPMessage`` has it)."""

    def get_all(self, name: str, failobj: None = None, /) -> list[str] | None: ...


class BodyRefused(Exception):
    """The body cannot be accepted; ``consumed`` says whether it was read off the socket."""

    def __init__(self, refusal: Refusal, message: str, *, consumed: bool) -> None:
        super().__init__(message)
        self.refusal, self.message, self.consumed = refusal, message, consumed


def single(headers: Headers, name: str) -> str | None:
    """The one value of header ``name`` (None when absent); a repeated header is refused."""
    values = headers.get_all(name) or []
    if len(values) > 1:
        raise BodyRefused(Refusal.BAD_REQUEST, f"{name} is repeated", consumed=False)
    return values[0] if values else None


def is_json(headers: Headers) -> bool:
    """True for OTLP/JSON, False for OTLP/protobuf (parameters like charset ignored)."""
    ctype = (single(headers, "Content-Type") or "").split(";")[0].strip().lower()
    if ctype not in (JSON, PROTOBUF):
        raise BodyRefused(Refusal.BAD_REQUEST,
                          f"unsupported Content-Type {ctype!r}: use {PROTOBUF} or {JSON}",
                          consumed=False)
    return ctype == JSON


def declared_length(headers: Headers) -> int:
    """Content-Length, or -1 when the body's framing is unusable (see :func:`body_length`)."""
    try:
        return body_length(headers)
    except BodyRefused:
        return -1


def body_length(headers: Headers) -> int:
    """The one Content-Length, plain ASCII digits; anything else is refused unread."""
    if headers.get_all("Transfer-Encoding"):
        raise BodyRefused(Refusal.BAD_REQUEST,
                          "Transfer-Encoding is not supported: send the body with Content-Length",
                          consumed=False)
    value = single(headers, "Content-Length")
    digits = (value or "").strip(" \t")
    if not (digits.isascii() and digits.isdigit()):
        raise BodyRefused(Refusal.BAD_REQUEST, "Content-Length is required", consumed=False)
    if len(digits) > _MAX_LENGTH_DIGITS:
        raise BodyRefused(Refusal.OVERSIZE, f"body of {digits[:24]}... bytes exceeds any limit",
                          consumed=False)
    return int(digits)


def read_body(headers: Headers, read: Callable[[int], bytes], max_body: int) -> bytes:
    """The decoded body (at most ``max_body`` bytes, before and after gunzip).

    Nothing is read when the framing is unusable or the declared length is
    over the limit: a body that is refused anyway must not be buffered.
    """
    length = body_length(headers)
    if length > max_body:
        raise BodyRefused(Refusal.OVERSIZE,
                          f"body of {length} bytes exceeds the limit of {max_body}",
                          consumed=False)
    encoding = (single(headers, "Content-Encoding") or "").strip().lower()
    body = read(length)
    if len(body) < length:
        raise BodyRefused(Refusal.BAD_REQUEST,
                          f"body ended after {len(body)} of {length} bytes", consumed=True)
    if encoding == "gzip":
        return gunzip(body, max_body)
    if encoding not in ("", "identity"):
        raise BodyRefused(Refusal.BAD_REQUEST, f"unsupported Content-Encoding {encoding!r}",
                          consumed=True)
    return body


def gunzip(body: bytes, limit: int) -> bytes:
    """Inflate every gzip member with a cap: a small gzip bomb must not exhaust memory."""
    out = bytearray()
    rest = body
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(rest, limit - len(out) + 1)
        except zlib.error as exc:
            raise BodyRefused(Refusal.BAD_REQUEST, f"bad gzip body: {exc}",
                              consumed=True) from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise BodyRefused(Refusal.OVERSIZE, "decompressed body exceeds the limit",
                              consumed=True)
        if not inflater.eof:
            raise BodyRefused(Refusal.BAD_REQUEST, "bad gzip body: the stream is truncated",
                              consumed=True)
        rest = inflater.unused_data
        if not rest:
            return bytes(out)
        if not rest.startswith(_GZIP_MAGIC):
            raise BodyRefused(Refusal.BAD_REQUEST,
                              f"bad gzip body: {len(rest)} byte(s) after the gzip stream",
                              consumed=True)
