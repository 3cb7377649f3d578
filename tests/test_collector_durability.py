"""Acknowledged means durable: kill -9, storage outages, SIGTERM and replays lose nothing
and count nothing twice (rows in otel_traces and in the rollups)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import grpc
import pytest
import requests

from spanledger.collector import writer as writer_module
from spanledger.collector.metrics import Metrics
from spanledger.collector.spool import Spool
from spanledger.collector.writer import FAULT_ENV, Writer
from spanledger.store import open_store
from support.collector import read_store_many, start_collector
from support.loadgen import genai_request

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _ids(blob_request: object) -> list[tuple[str, str]]:
    spans = blob_request.resource_spans[0].scope_spans[0].spans  # type: ignore[attr-defined]
    return [(s.trace_id.hex(), s.span_id.hex()) for s in spans]


def _stored(store: Path) -> tuple[set[tuple[str, str]], int, int]:
    rows, calls = read_store_many(store, [
        "SELECT TraceId, SpanId FROM otel_traces",
        "SELECT count() FROM llm_calls",
    ])
    return set(rows), len(rows), calls[0][0]


def test_kill_9_under_load_then_restart(tmp_path: Path) -> None:
    store = tmp_path / "store"
    collector = start_collector(store)
    acked: set[tuple[str, str]] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def client(seed: int) -> None:
        channel = grpc.insecure_channel(collector.grpc_target)
        export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        import random

        rng = random.Random(seed)
        for _ in range(400):
            if stop.is_set():
                return
            req = genai_request(100, rng=rng)
            try:
                export(req.SerializeToString(), timeout=5)
            except grpc.RpcError:
                return  # the collector is gone: this request was not acknowledged
            with lock:
                acked.update(_ids(req))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 3000 and time.monotonic() < deadline:
        time.sleep(0.01)
    collector.kill9()  # mid-stream: requests in flight, segments open and sealed
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) >= 3000

    restarted = start_collector(store)  # replays the spool
    assert restarted.stop() == 0, "".join(restarted.output)
    stored, rows, calls = _stored(store)
    assert acked <= stored  # every acknowledged span is there...
    assert rows == len(stored)  # ...exactly once
    assert calls == rows  # and counted once in llm_calls (every span is a GenAI call)


def test_storage_down_then_back(tmp_path: Path) -> None:
    store, fault = tmp_path / "store", tmp_path / "storage-down"
    config = tmp_path / "c.yaml"
    config.write_text("spool:\n  max_mb: 1\nprocessors:\n  batch:\n    timeout_ms: 50\n")
    fault.touch()
    collector = start_collector(store, config=config, env={FAULT_ENV: str(fault)})
    try:
        stub_channel = grpc.insecure_channel(collector.grpc_target)
        export = stub_channel.unary_unary(EXPORT, request_serializer=None,
                                          response_deserializer=None)
        acked: set[tuple[str, str]] = set()
        refused = None
        for _ in range(60):
            req = genai_request(100)
            try:
                export(req.SerializeToString(), timeout=10)
                acked.update(_ids(req))
            except grpc.RpcError as exc:
                refused = exc
                break
        assert refused is not None and refused.code() == grpc.StatusCode.UNAVAILABLE
        assert "retry later" in refused.details()
        r = requests.post(collector.http_url, data=genai_request(10).SerializeToString(),
                          headers={"Content-Type": "application/x-protobuf"}, timeout=10)
        assert r.status_code == 503 and r.headers["Retry-After"].isdigit()
        deadline = time.monotonic() + 30
        status, reason = collector.get("healthz")
        while "store inserts failing" not in reason and time.monotonic() < deadline:
            time.sleep(0.05)
            status, reason = collector.get("healthz")
        assert status == 503 and "store inserts failing" in reason
        assert collector.metric("insert_errors_total") >= 1
        assert collector.metric("spans_written_total") == 0

        fault.unlink()  # storage is back
        assert collector.wait_metric("spans_written_total", len(acked)) == len(acked)
        assert collector.get("healthz")[0] == 200
        req = genai_request(50)
        export(req.SerializeToString(), timeout=10)  # accepting again
        acked.update(_ids(req))
    finally:
        fault.unlink(missing_ok=True)
        exit_code = collector.stop()
    assert exit_code == 0
    stored, rows, calls = _stored(store)
    assert stored == acked and rows == len(acked) and calls == rows


def test_sigterm_flushes_everything(tmp_path: Path) -> None:
    store = tmp_path / "store"
    config = tmp_path / "c.yaml"
    config.write_text("processors:\n  batch:\n    timeout_ms: 60000\n")  # only SIGTERM seals
    collector = start_collector(store, config=config)
    try:
        stub = collector.stub()
        acked: set[tuple[str, str]] = set()
        for _ in range(5):
            req = genai_request(40)
            stub.Export(req, timeout=10)
            acked.update(_ids(req))
        assert collector.metric("spans_written_total") == 0
    finally:
        exit_code = collector.stop()
    assert exit_code == 0
    assert "stopped" in "".join(collector.output)
    stored, rows, _ = _stored(store)
    assert stored == acked and rows == len(acked)
    assert not list((store / "spool").glob("*.seg"))


@pytest.mark.parametrize("chunk_bytes", [2 * 1024 * 1024, 1])
def test_replayed_segment_is_not_counted_twice(tmp_path: Path, chunk_bytes: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash after the insert but before the segment's deletion replays the same bytes.

    ``chunk_bytes=1`` converts every request separately, so the SDK retry lands
    in another chunk than the original and is dropped when chunks are merged.
    """
    monkeypatch.setattr(writer_module, "CHUNK_BYTES", chunk_bytes)
    spool_dir, store_dir = tmp_path / "spool", tmp_path / "store"
    spool = Spool(spool_dir, max_bytes=1 << 30, segment_bytes=1 << 30, segment_spans=10**6,
                  segment_age_s=3600)
    for _ in range(3):
        req = genai_request(20)
        spool.append(req.SerializeToString(), 20)
    dup = genai_request(5)  # an SDK retry: the same spans twice in one segment
    spool.append(dup.SerializeToString(), 5)
    spool.append(dup.SerializeToString(), 5)
    spool.seal_if_due(force=True)
    (segment,) = spool_dir.glob("*.seg")
    saved = tmp_path / "saved.seg"
    shutil.copy(segment, saved)

    store = open_store(f"chdb://{store_dir}", migrate=True)
    try:
        for attempt in range(2):
            if attempt == 1:  # "crash": the segment is back as if never deleted
                shutil.copy(saved, segment)
                spool = Spool(spool_dir, max_bytes=1 << 30, segment_bytes=1 << 30,
                              segment_spans=10**6, segment_age_s=3600)
                assert spool.recover() == 1
            metrics = Metrics()
            writer = Writer(spool, store, metrics, workers=0, pricing=True, prices_file=None)
            writer.start()
            spool.close_intake()
            assert writer.stop(timeout=60)
            assert metrics.get("spans_duplicate_total") == 5
        rows = store.query("SELECT count(), uniqExact(TraceId, SpanId) FROM otel_traces")
        daily = store.query("SELECT sum(Calls) FROM llm_cost_daily")
        by_trace = store.query("SELECT sum(Calls) FROM llm_cost_by_trace")
    finally:
        store.close()
    assert rows == [(65, 65)]
    assert daily == [(65,)] and by_trace == [(65,)]
    assert not list(spool_dir.glob("*.arrows"))  # converted files are cleaned up
