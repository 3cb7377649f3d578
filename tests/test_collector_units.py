"""The collector's pure parts: value strings like the Go exporter, spool recovery, CLI errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from spanledger.collector.convert import format_double, value_string
from spanledger.collector.spool import Spool, read_records


@pytest.mark.parametrize(("value", "text"), [
    (0.5, "0.5"), (2.0, "2"), (1e-05, "0.00001"), (0.000843975, "0.000843975"),
    (1e21, "1000000000000000000000"), (-0.25, "-0.25"), (123456.789, "123456.789"),
    (float("inf"), "+Inf"), (float("nan"), "NaN"),
])
def test_doubles_like_go_formatfloat(value: float, text: str) -> None:
    assert format_double(value) == text


def test_any_value_strings() -> None:
    assert value_string(AnyValue(int_value=-7)) == "-7"
    assert value_string(AnyValue(bool_value=False)) == "false"
    assert value_string(AnyValue(bytes_value=b"\x01\x02")) == "AQI="
    assert value_string(AnyValue()) == ""
    arr = AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="<a>"),
                                                  AnyValue(double_value=1.0)]))
    assert value_string(arr) == '["\\u003ca\\u003e",1]'
    kv = AnyValue(kvlist_value=KeyValueList(values=[
        KeyValue(key="z", value=AnyValue(int_value=1)),
        KeyValue(key="a", value=AnyValue(bool_value=True))]))
    assert value_string(kv) == '{"a":true,"z":1}'  # Go sorts map keys


def test_spool_recovery_drops_only_the_torn_tail(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20, segment_spans=100,
                  segment_age_s=60)
    spool.append(b"first", 1)
    spool.append(b"second", 1)
    (open_file,) = tmp_path.glob("*.open")
    with open(open_file, "ab") as fh:  # a crash in the middle of writing a third record
        fh.write(b"\x10\x00\x00\x00\x00\x00\x00\x00par")
    again = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20, segment_spans=100,
                  segment_age_s=60)
    assert again.recover() == 1
    (sealed,) = tmp_path.glob("*.seg")
    records, valid = read_records(sealed.read_bytes())
    assert records == [b"first", b"second"] and valid == sealed.stat().st_size
    again.append(b"third", 1)  # new data goes to a new segment, never into the old one
    assert len(list(tmp_path.glob("*.open"))) == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--grpc-port", "70000"], "--grpc-port must be a TCP port"),
    (["--url", "ftp://nowhere"], "is neither chdb://PATH"),
    (["--config", "/nonexistent/collector.yaml"], "collector.yaml: file not found"),
])
def test_cli_usage_errors_exit_2(args: list[str], message: str) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "spanledger", "collector", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("spanledger collector: error: ") and message in proc.stderr
