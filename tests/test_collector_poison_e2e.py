"""The issue's poison attack against a running collector, end to end.

Canary clients keep sending while one client sends spans on 101 days and spans
with impossible times: every canary is stored and ingestion goes on. Spans with
impossible times are refused at intake today (OTLP partial success); the same
spans left in the spool by an older collector (one without that check) are
replayed at start, set aside, counted on /metrics and listed by
``spanledger quarantine list``, through the SQL front while the collector runs
and straight from the store after.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

from spanledger.collector.quarantine import TABLE as QUARANTINE
from support.collector import read_store_many, start_collector
from support.poison import canary_request, poison_times, span_ids, spread_over_days


def _leave_in_spool(store_dir: Path, request: Any) -> None:
    """A sealed spool segment as an older collector (no time checks at intake) left it."""
    spool = store_dir / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    payload = request.SerializeToString()
    record = struct.pack("<II", len(payload), zlib.crc32(payload)) + payload
    (spool / f"{1:016d}.seg").write_bytes(record)


def test_poison_against_a_running_collector(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    poison = poison_times()
    _leave_in_spool(store_dir, poison)
    collector = start_collector(store_dir)
    acked: set[tuple[str, str]] = set()
    try:
        stub = collector.stub()

        def send(req: Any) -> None:
            stub.Export(req, timeout=30)
            acked.update(span_ids(req))

        for client in range(3):
            send(canary_request(50, f"canary-{client}"))
        send(spread_over_days(canary_request(202, "backfill"), 101))
        answer = stub.Export(poison, timeout=30)  # refused at intake: partial success
        assert answer.partial_success.rejected_spans == 4
        for client in range(3):  # ingestion goes on
            send(canary_request(50, f"canary-{client}"))
        collector.wait_metric("spans_written_total", len(acked))
        deadline = time.monotonic() + 60
        while "timestamp_out_of_range" not in collector.get("metrics")[1] \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ('spans_quarantined_total{reason="timestamp_out_of_range"} 4'
                in collector.get("metrics")[1])
        assert collector.get("healthz")[0] == 200

        listed = subprocess.run(
            [sys.executable, "-m", "spanledger", "quarantine", "list", "--url",
             f"chdb://{store_dir}", "--format", "json"],
            capture_output=True, text=True, timeout=120)
        assert listed.returncode == 0, listed.stderr
        entries = json.loads(listed.stdout)
        assert {(e["trace_id"], e["span_id"]) for e in entries} == span_ids(poison)
        assert {e["reason"] for e in entries} == {"timestamp_out_of_range"}
        assert all(e["service"] == "poisoner" for e in entries)
        assert all(isinstance(e["span"], dict) for e in entries)  # OTLP/JSON, ready to resend
    finally:
        assert collector.stop() == 0
    rows, quarantined = read_store_many(store_dir, [
        "SELECT TraceId, SpanId FROM otel_traces", f"SELECT count() FROM {QUARANTINE}"])
    assert set(rows) == acked and len(rows) == len(acked)
    assert quarantined == [(4,)]

    table = subprocess.run(
        [sys.executable, "-m", "spanledger", "quarantine", "list", "--url",
         f"chdb://{store_dir}"], capture_output=True, text=True, timeout=120)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["TIME", "REASON", "SERVICE", "TRACE_ID", "SPAN_ID", "DETAIL"]
    assert sum("timestamp_out_of_range" in line for line in lines) == 4
    assert lines[-1] == "4 quarantined span(s)"
    tomorrow = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    later = subprocess.run(
        [sys.executable, "-m", "spanledger", "quarantine", "list", "--url",
         f"chdb://{store_dir}", "--since", tomorrow], capture_output=True, text=True,
        timeout=120)
    assert later.stdout.strip() == f"no quarantined spans since {tomorrow}"
    bad = subprocess.run(
        [sys.executable, "-m", "spanledger", "quarantine", "list", "--since", "yesterday"],
        capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--since: expected a date YYYY-MM-DD" in bad.stderr
