"""OTLP/HTTP body decoding without sockets: formats, Content-Length, gzip and its cap."""

from __future__ import annotations

import gzip
import io

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


def _read(data: bytes, **headers: str) -> tuple[bytes, _Socket]:
    sock = _Socket(data)
    hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
    return read_body(hdrs, sock.read, LIMIT), sock


@pytest.mark.parametrize(("ctype", "json"), [
    ("application/x-protobuf", False), ("application/json", True),
    ("Application/JSON; charset=utf-8", True), ("application/x-protobuf ; q=1", False),
])
def test_content_types(ctype: str, json: bool) -> None:
    assert is_json({"Content-Type": ctype}) is json


@pytest.mark.parametrize("headers", [{}, {"Content-Type": "text/plain"},
                                     {"Content-Type": "application/protobuf"}])
def test_unsupported_content_type_is_a_bad_request_before_reading(headers: dict) -> None:
    with pytest.raises(BodyRefused) as refused:
        is_json(headers)
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
        read_body({"Content-Length": str(LIMIT + 1)}, sock.read, LIMIT)
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
