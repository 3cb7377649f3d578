"""OTLP/HTTP body decoding without sockets: formats, Content-Length, gzip and its cap."""

from __future__ import annotations

import gzip
import io
from http.client import HTTPMessage

import pytest

from spanledger.collector.receivers.http_body import (
    BodyRefused,
    gunzip,
    is_json,
    read_body,
)
from spanledger.collector.receivers.intake import Refusal

LIMIT = 1024


class _Socket:
    """The request's unread bytes; remembers how much the receiver read."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def read(self, n: int) -> bytes:
        return self._buf.read(n)

    @property
    def consumed(self) -> int:
        return self._buf.tell()


def _headers(pairs: dict[str, str] | list[tuple[str, str]]) -> HTTPMessage:
    """Headers as the server parses them (a name may repeat)."""
    message = HTTPMessage()
    for name, value in pairs.items() if isinstance(pairs, dict) else pairs:
        message[name] = value
    return message


def _read(data: bytes, **headers: str) -> tuple[bytes, _Socket]:
    sock = _Socket(data)
    hdrs = _headers({k.replace("_", "-"): v for k, v in headers.items()})
    return read_body(hdrs, sock.read, LIMIT), sock


@pytest.mark.parametrize(("ctype", "json"), [
    ("application/x-protobuf", False), ("application/json", True),
    ("Application/JSON; charset=utf-8", True), ("application/x-protobuf ; q=1", False),
])
def test_content_types(ctype: str, json: bool) -> None:
    assert is_json(_headers({"Content-Type": ctype})) is json


@pytest.mark.parametrize("headers", [{}, {"Content-Type": "text/plain"},
                                     {"Content-Type": "application/protobuf"}])
def test_unsupported_content_type_is_a_bad_request_before_reading(headers: dict) -> None:
    with pytest.raises(BodyRefused) as refused:
        is_json(_headers(headers))
    assert refused.value.refusal is Refusal.BAD_REQUEST and not refused.value.consumed
    assert "unsupported Content-Type" in refused.value.message


def test_plain_and_identity_bodies_are_read_exactly() -> None:
    body, sock = _read(b"abcdefXYZ", Content_Length="6")
    assert body == b"abcdef" and sock.consumed == 6  # a pipelined next request stays unread
    body, _ = _read(b"abc", Content_Length="3", Content_Encoding="identity")
    assert body == b"abc"


@pytest.mark.parametrize("length", [None, "", "ten", "-5"])
def test_missing_or_bad_length_is_refused_without_reading(length: str | None) -> None:
    headers = {} if length is None else {"Content_Length": length}
    with pytest.raises(BodyRefused) as refused:
        _read(b"x" * 10, **headers)
    assert refused.value.refusal is Refusal.BAD_REQUEST
    assert refused.value.message == "Content-Length is required"
    assert not refused.value.consumed


def test_declared_oversize_is_refused_without_reading() -> None:
    sock = _Socket(b"x" * (LIMIT + 1))
    with pytest.raises(BodyRefused) as refused:
        read_body(_headers({"Content-Length": str(LIMIT + 1)}), sock.read, LIMIT)
    assert refused.value.refusal is Refusal.OVERSIZE and not refused.value.consumed
    assert refused.value.message == f"body of {LIMIT + 1} bytes exceeds the limit of {LIMIT}"
    assert sock.consumed == 0


def test_gzip_is_inflated_up_to_the_limit() -> None:
    payload = b"span" * (LIMIT // 4)  # exactly the limit once inflated
    packed = gzip.compress(payload)
    body, _ = _read(packed, Content_Length=str(len(packed)), Content_Encoding=" GZIP ")
    assert body == payload


def test_gzip_bomb_is_oversize() -> None:
    bomb = gzip.compress(b"\x00" * (LIMIT * 100))
    assert len(bomb) < LIMIT
    with pytest.raises(BodyRefused) as refused:
        _read(bomb, Content_Length=str(len(bomb)), Content_Encoding="gzip")
    assert refused.value.refusal is Refusal.OVERSIZE and refused.value.consumed
    assert refused.value.message == "decompressed body exceeds the limit"
    with pytest.raises(BodyRefused):
        gunzip(gzip.compress(b"a" * (LIMIT + 1)), LIMIT)  # one byte over is over


def test_bad_gzip_and_unknown_encodings_are_bad_requests() -> None:
    with pytest.raises(BodyRefused) as bad:
        _read(b"not gzip", Content_Length="8", Content_Encoding="gzip")
    assert bad.value.refusal is Refusal.BAD_REQUEST and bad.value.consumed
    assert bad.value.message.startswith("bad gzip body: ")
    with pytest.raises(BodyRefused) as unknown:
        _read(b"data", Content_Length="4", Content_Encoding="br")
    assert unknown.value.refusal is Refusal.BAD_REQUEST
    assert unknown.value.message == "unsupported Content-Encoding 'br'"


@pytest.mark.parametrize(("trailer", "message"), [
    (b"garbage", "bad gzip body: 7 byte(s) after the gzip stream"),
    (b"\x00\x00\x00\x00", "bad gzip body: 4 byte(s) after the gzip stream"),
    (b"\x1f\x8b\x08\x00", "bad gzip body: the stream is truncated"),  # a second, cut member
])
def test_bytes_after_the_gzip_stream_are_refused(trailer: bytes, message: str) -> None:
    packed = gzip.compress(b"span") + trailer
    with pytest.raises(BodyRefused) as refused:
        _read(packed, Content_Length=str(len(packed)), Content_Encoding="gzip")
    assert refused.value.refusal is Refusal.BAD_REQUEST and refused.value.consumed
    assert refused.value.message == message


def test_truncated_gzip_is_refused_not_half_read() -> None:
    packed = gzip.compress(b"span" * 100)[:-6]  # the trailer (CRC, size) cut off
    with pytest.raises(BodyRefused) as refused:
        _read(packed, Content_Length=str(len(packed)), Content_Encoding="gzip")
    assert refused.value.message == "bad gzip body: the stream is truncated"


def test_several_gzip_members_are_one_body() -> None:
    packed = gzip.compress(b"first ") + gzip.compress(b"second")
    body, _ = _read(packed, Content_Length=str(len(packed)), Content_Encoding="gzip")
    assert body == b"first second"
    too_big = gzip.compress(b"a" * LIMIT) + gzip.compress(b"b")  # the cap spans the members
    with pytest.raises(BodyRefused) as refused:
        _read(too_big, Content_Length=str(len(too_big)), Content_Encoding="gzip")
    assert refused.value.refusal is Refusal.OVERSIZE


@pytest.mark.parametrize(("pairs", "message"), [
    ([("Content-Length", "4"), ("Content-Length", "4")], "Content-Length is repeated"),
    ([("Content-Length", "4"), ("Content-Length", "9")], "Content-Length is repeated"),
    ([("Content-Length", "4"), ("Transfer-Encoding", "chunked")],
     "Transfer-Encoding is not supported: send the body with Content-Length"),
    ([("Content-Length", "4"), ("Content-Encoding", "gzip"), ("Content-Encoding", "gzip")],
     "Content-Encoding is repeated"),
    ([("Content-Length", "+4")], "Content-Length is required"),
    ([("Content-Length", "4_0")], "Content-Length is required"),
    ([("Content-Length", "\u0664")], "Content-Length is required"),  # Arabic-Indic 4
])
def test_ambiguous_framing_is_refused_unread(pairs: list[tuple[str, str]], message: str) -> None:
    sock = _Socket(b"data" * 10)
    with pytest.raises(BodyRefused) as refused:
        read_body(_headers(pairs), sock.read, LIMIT)
    assert refused.value.refusal is Refusal.BAD_REQUEST and not refused.value.consumed
    assert refused.value.message == message
    assert sock.consumed == 0


def test_repeated_content_type_is_refused() -> None:
    with pytest.raises(BodyRefused) as refused:
        is_json(_headers([("Content-Type", "application/json"),
                          ("Content-Type", "application/x-protobuf")]))
    assert refused.value.message == "Content-Type is repeated"


def test_absurd_length_is_oversize_and_a_short_body_is_refused() -> None:
    sock = _Socket(b"x")
    with pytest.raises(BodyRefused) as huge:
        read_body(_headers({"Content-Length": "9" * 5000}), sock.read, LIMIT)
    assert huge.value.refusal is Refusal.OVERSIZE and sock.consumed == 0
    with pytest.raises(BodyRefused) as short:
        _read(b"abc", Content_Length="10")  # the client hung up early
    assert short.value.refusal is Refusal.BAD_REQUEST
    assert short.value.message == "body ended after 3 of 10 bytes"
