"""The writer survives what breaks under it, and what it counts is what happened.

A conversion worker killed, the spool's disk failing after a record is durable,
a replay after a crash: nothing acknowledged is lost, nothing is stored or
counted twice, and /healthz and /metrics tell the truth meanwhile.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spanledger.collector import segment_conversion as conversion
from spanledger.collector import spool as spool_module
from spanledger.collector.metrics import Metrics
from spanledger.collector.receivers.intake import Intake
from spanledger.collector.spool import Spool, SpoolUnavailable, read_records
from spanledger.collector.writer import FAULT_ENV, Writer
from spanledger.store import Store
from support.collector import read_store_many, start_collector
from support.loadgen import genai_request
from support.store import migrated_store


def _ids(request: Any) -> set[tuple[str, str]]:
    return {(s.trace_id.hex(), s.span_id.hex()) for rs in request.resource_spans
            for ss in rs.scope_spans for s in ss.spans}


def _spool(directory: Path, **kw: Any) -> Spool:
    args = {"max_bytes": 1 << 30, "segment_bytes": 1 << 30, "segment_spans": 10**6,
            "segment_age_s": 3600, **kw}
    return Spool(directory, **args)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with migrated_store(tmp_path / "store") as s:
        yield s


def _wait(condition: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


# -- a conversion worker dies ----------------------------------------------------------------
def test_killed_worker_the_writer_rebuilds_the_pool_and_loses_nothing(
        tmp_path: Path, store: Store) -> None:
    spool = _spool(tmp_path / "spool", segment_spans=5_000)
    metrics = Metrics()
    writer = Writer(spool, store, metrics, workers=1, pricing=True, prices_file=None)
    writer.start()
    acked: set[tuple[str, str]] = set()
    rng = random.Random(1)
    try:
        for _ in range(10):  # a first segment in flight or just written
            req = genai_request(500, rng=rng)
            spool.append(req.SerializeToString(), 500)
            acked |= _ids(req)
        spool.seal_if_due(force=True)
        (worker,) = writer._pool._processes  # type: ignore[union-attr]
        os.kill(worker, signal.SIGKILL)
        for _ in range(10):  # more after the kill: they need a new pool
            req = genai_request(500, rng=rng)
            spool.append(req.SerializeToString(), 500)
            acked |= _ids(req)
        spool.seal_if_due(force=True)
        _wait(lambda: metrics.get("spans_written_total") >= len(acked))
        assert metrics.get("writer_restarts_total") >= 1
        _wait(lambda: writer.healthy)
        assert writer.status() == (True, "ok")
        assert worker not in writer._pool._processes  # type: ignore[union-attr]
    finally:
        spool.close_intake()
        assert writer.stop(timeout=60)
    (rows, distinct), = store.query("SELECT count(), uniqExact(TraceId, SpanId) FROM otel_traces")
    assert rows == distinct == len(acked)
    assert {(t, s) for t, s in store.query("SELECT TraceId, SpanId FROM otel_traces")} == acked
    assert store.query("SELECT sum(Calls) FROM llm_cost_daily") == [(len(acked),)]
    assert metrics.get("spans_written_total") == len(acked)


def test_killed_worker_in_a_running_collector_shows_on_healthz_and_recovers(
        tmp_path: Path) -> None:
    """The writer thread used to die here: /healthz said "ok" while nothing was written."""
    store = tmp_path / "store"
    collector = start_collector(store, workers=1)
    try:
        stub = collector.stub()
        acked: set[tuple[str, str]] = set()
        req = genai_request(50)
        stub.Export(req, timeout=10)
        acked |= _ids(req)
        collector.wait_metric("spans_written_total", len(acked))
        children = Path(f"/proc/{collector.proc.pid}/task/{collector.proc.pid}/children")
        workers = [int(p) for p in children.read_text().split()]
        for pid in workers:  # the conversion worker (and the pool's resource tracker)
            if "spanledger" not in Path(f"/proc/{pid}/cmdline").read_text() \
                    and "multiprocessing.spawn" in Path(f"/proc/{pid}/cmdline").read_text():
                os.kill(pid, signal.SIGKILL)
        for _ in range(5):
            req = genai_request(50)
            stub.Export(req, timeout=10)
            acked |= _ids(req)
        assert collector.wait_metric("spans_written_total", len(acked)) == len(acked)
        assert collector.metric("writer_restarts_total") >= 1
        deadline = time.monotonic() + 60
        while collector.get("healthz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert collector.get("healthz")[0] == 200
    finally:
        assert collector.stop() == 0
    rows, = read_store_many(store, ["SELECT TraceId, SpanId FROM otel_traces"])
    assert set(rows) == acked and len(rows) == len(acked)


def test_while_the_writer_restarts_healthz_says_so(tmp_path: Path, store: Store,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The spool briefly unreadable: the writer starts over until it can read again."""
    real_plan = conversion.plan_segment
    broken = True

    def plan(path: Any, chunk_bytes: int) -> Any:
        if broken:
            raise OSError(5, "Input/output error")
        return real_plan(path, chunk_bytes)

    monkeypatch.setattr(conversion, "plan_segment", plan)
    spool = _spool(tmp_path / "spool")
    metrics = Metrics()
    writer = Writer(spool, store, metrics, workers=0, pricing=True, prices_file=None)
    writer.start()
    try:
        spool.append(genai_request(30).SerializeToString(), 30)
        spool.seal_if_due(force=True)
        _wait(lambda: metrics.get("writer_restarts_total") >= 2)
        ok, why = writer.status()
        assert not ok and why.startswith("writer restarting after: OSError")
        assert "Input/output error" in why
        assert metrics.get("spans_written_total") == 0
        broken = False
        _wait(lambda: metrics.get("spans_written_total") == 30)
        _wait(lambda: writer.healthy)
        assert writer.status() == (True, "ok")
    finally:
        spool.close_intake()
        assert writer.stop(timeout=30)


# -- the spool's disk fails ------------------------------------------------------------------
def test_sealing_fails_after_the_record_is_durable_the_request_still_succeeds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing rename after the fsync used to answer 500 for data that was safe on disk
    and to hold the segment until a restart."""
    spool = _spool(tmp_path / "spool", segment_spans=10)  # every request fills a segment
    intake = Intake(spool, Metrics(), None)
    real_rename = os.rename
    broken = True

    def rename(src: Any, dst: Any) -> None:
        if broken:
            raise OSError(30, "Read-only file system")
        real_rename(src, dst)

    monkeypatch.setattr(spool_module.os, "rename", rename)
    first = genai_request(10)
    outcome = intake.handle(first.SerializeToString(), json_body=False, auth_header=None)
    assert outcome.refusal is None and outcome.accepted is not None
    assert spool.error is not None and "Read-only file system" in spool.error
    assert spool.take(10) == []  # not sealed yet...
    broken = False
    spool.seal_if_due()  # ...the writer's next round retries it
    (seg,) = spool.take(10)
    assert spool.error is None
    records, _ = read_records(seg.path.read_bytes())
    assert records == [first.SerializeToString()]
    assert spool.pending_spans == 10


def test_a_failed_fsync_refuses_the_request_and_keeps_no_trace_of_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not durable, not acknowledged: 503 (retry), and its bytes are cut off so that
    the client's retry is stored once."""
    spool = _spool(tmp_path / "spool")
    intake = Intake(spool, Metrics(), None)
    kept = genai_request(3)
    assert intake.handle(kept.SerializeToString(), json_body=False,
                         auth_header=None).refusal is None
    real_fsync = os.fsync
    fail = True

    def fsync(fd: int) -> None:
        if fail:
            raise OSError(5, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(spool_module.os, "fsync", fsync)
    lost = genai_request(3)
    with pytest.raises(SpoolUnavailable):
        spool.append(lost.SerializeToString(), 3)
    fail = False
    retried = intake.handle(lost.SerializeToString(), json_body=False, auth_header=None)
    assert retried.refusal is None
    spool.seal_if_due(force=True)
    payloads = [r for seg in spool.take(10) for r in read_records(seg.path.read_bytes())[0]]
    assert payloads == [kept.SerializeToString(), lost.SerializeToString()]
    assert spool.pending_spans == 6


def test_a_written_segment_that_cannot_be_deleted_does_not_stop_the_writer(
        tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    spool_dir = tmp_path / "spool"
    spool = _spool(spool_dir)
    metrics = Metrics()
    writer = Writer(spool, store, metrics, workers=0, pricing=True, prices_file=None)
    real_unlink = Path.unlink
    blocked = True

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if blocked and self.suffix == ".seg":
            raise PermissionError(13, "Permission denied")
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    writer.start()
    try:
        first = genai_request(20)
        spool.append(first.SerializeToString(), 20)
        spool.seal_if_due(force=True)
        _wait(lambda: metrics.get("spans_written_total") == 20)
        second = genai_request(20)
        spool.append(second.SerializeToString(), 20)
        spool.seal_if_due(force=True)
        _wait(lambda: metrics.get("spans_written_total") == 40)  # the writer went on
        assert spool.error is not None and "cannot delete" in spool.error
        assert len(list(spool_dir.glob("*.seg"))) == 2
        blocked = False
        _wait(lambda: not list(spool_dir.glob("*.seg")))  # deleted on a later round
        assert spool.error is None
    finally:
        spool.close_intake()
        assert writer.stop(timeout=30)
    assert metrics.get("writer_restarts_total") == 0


# -- counting replays ---------------------------------------------------------------------
def test_a_replayed_segment_counts_as_deduplicated_not_written(tmp_path: Path,
                                                                 store: Store) -> None:
    spool_dir = tmp_path / "spool"
    spool = _spool(spool_dir)
    for _ in range(3):
        spool.append(genai_request(20).SerializeToString(), 20)
    spool.seal_if_due(force=True)
    (segment,) = spool_dir.glob("*.seg")
    saved = tmp_path / "saved.seg"
    shutil.copy(segment, saved)
    written: list[tuple[int, int]] = []
    for attempt in range(2):
        if attempt == 1:  # a crash after the insert, before the segment was deleted
            shutil.copy(saved, segment)
            spool = _spool(spool_dir)
            assert spool.recover() == 1
            assert spool.pending_spans == 60  # queue_depth_spans during the replay
        metrics = Metrics()
        writer = Writer(spool, store, metrics, workers=0, pricing=True, prices_file=None)
        writer.start()
        spool.close_intake()
        assert writer.stop(timeout=60)
        written.append((metrics.get("spans_written_total"),
                        metrics.get("spans_deduplicated_total")))
        assert spool.pending_spans == 0
    assert written == [(60, 0), (0, 60)]
    assert store.query("SELECT count() FROM otel_traces") == [(60,)]


def test_queue_depth_counts_the_replay_while_the_store_is_down(tmp_path: Path) -> None:
    """queue_depth_spans used to read 0 during a replay after a restart."""
    store_dir = tmp_path / "store"
    spool = _spool(store_dir / "spool")
    for _ in range(4):
        spool.append(genai_request(25).SerializeToString(), 25)
    spool.close_intake()  # as a crashed collector leaves it: sealed, never written
    fault = tmp_path / "storage-down"
    fault.touch()
    collector = start_collector(store_dir, env={FAULT_ENV: str(fault)})
    try:
        assert collector.metric("queue_depth_spans") == 100
        fault.unlink()
        collector.wait_metric("spans_written_total", 100)
        deadline = time.monotonic() + 30
        while collector.metric("queue_depth_spans") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert collector.metric("queue_depth_spans") == 0
    finally:
        fault.unlink(missing_ok=True)
        assert collector.stop() == 0
