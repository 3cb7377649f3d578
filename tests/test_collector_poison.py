"""No input stops ingestion: poison spans are isolated and quarantined, the rest is written.

Each test spools a "poison" request between canary requests from other
clients, runs the writer to the end and checks rows in ClickHouse: every
canary stored once (in otel_traces and through the views), the poison spans
in spanledger_quarantine with their reason, nothing in the spool.
"""

from __future__ import annotations

import base64
import json
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spanledger.collector import isolation as isolation_module
from spanledger.collector import segment_conversion
from spanledger.collector import writer as writer_module
from spanledger.collector.metrics import Metrics
from spanledger.collector.quarantine import TABLE as QUARANTINE
from spanledger.collector.spool import _HEADER, Spool
from spanledger.collector.writer import Writer
from spanledger.store import Store
from spanledger.store.base import StoreUnavailable
from support.loadgen import genai_request
from support.poison import (
    canary_request,
    poison_times,
    span_ids,
    spread_over_days,
)
from support.store import migrated_store


def _spool(directory: Path) -> Spool:
    return Spool(directory, max_bytes=1 << 30, segment_bytes=1 << 30, segment_spans=10**6,
                 segment_age_s=3600)


def _canaries(spool: Spool, clients: int = 4, spans: int = 25) -> set[tuple[str, str]]:
    """Requests from other clients, each its own record in the same segment."""
    ids: set[tuple[str, str]] = set()
    for client in range(clients):
        req = canary_request(spans, f"canary-{client}")
        spool.append(req.SerializeToString(), spans)
        ids |= span_ids(req)
    return ids


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with migrated_store(tmp_path / "store") as s:
        yield s


def _write_all(spool: Spool, store: Store, timeout: float = 120) -> Metrics:
    """Run a writer over everything spooled; fails (instead of hanging) if it cannot finish."""
    metrics = Metrics()
    spool.seal_if_due(force=True)
    writer = Writer(spool, store, metrics, workers=0, pricing=True, prices_file=None)
    writer.start()
    spool.close_intake()
    flushed = writer.stop(timeout=timeout)
    assert flushed, f"the writer is stuck: {writer.status()}"
    return metrics


def _stored(store: Store) -> list[tuple[str, str]]:
    return [(t, s) for t, s in store.query("SELECT TraceId, SpanId FROM otel_traces")]


def _quarantined(store: Store) -> list[dict[str, Any]]:
    rows = store.query(f"SELECT Reason, TraceId, SpanId, ServiceName, Detail, Span, Segment "
                       f"FROM {QUARANTINE} ORDER BY TraceId, SpanId")
    keys = ("reason", "trace_id", "span_id", "service", "detail", "span", "segment")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def _assert_views_match(store: Store, spans: int) -> None:
    """Every span once in otel_traces, llm_calls and both rollups (all are GenAI calls)."""
    (rows, distinct), = store.query("SELECT count(), uniqExact(TraceId, SpanId) FROM otel_traces")
    assert rows == distinct == spans
    assert store.query("SELECT count() FROM llm_calls") == [(spans,)]
    assert store.query("SELECT sum(Calls) FROM llm_cost_daily") == [(spans,)]
    assert store.query("SELECT sum(Calls) FROM llm_cost_by_trace") == [(spans,)]


def test_spans_on_101_days_are_all_written(tmp_path: Path, store: Store) -> None:
    """"Too many partitions" used to make the writer retry the segment forever."""
    spool = _spool(tmp_path / "spool")
    canaries = _canaries(spool)
    poison = spread_over_days(genai_request(202, service="backfill", rng=random.Random(99)),
                              101)
    spool.append(poison.SerializeToString(), 202)
    canaries |= _canaries(spool, clients=2)

    metrics = _write_all(spool, store)

    assert set(_stored(store)) == canaries | span_ids(poison)
    _assert_views_match(store, len(canaries) + 202)
    assert store.query("SELECT uniqExact(toDate(Timestamp)) FROM otel_traces "
                       "WHERE ServiceName = 'backfill'") == [(101,)]
    assert _quarantined(store) == []  # nothing was wrong with the spans themselves
    assert metrics.get("spans_written_total") == len(canaries) + 202
    assert metrics.get("insert_rejections_total") == 0  # split by day: all pieces went in


def test_times_out_of_range_are_quarantined_and_the_rest_written(tmp_path: Path,
                                                                 store: Store) -> None:
    spool = _spool(tmp_path / "spool")
    canaries = _canaries(spool)
    poison = poison_times()
    good = genai_request(3, service="poisoner", rng=random.Random(8))  # same request
    poison.resource_spans[0].scope_spans[0].spans.extend(
        good.resource_spans[0].scope_spans[0].spans)
    spool.append(poison.SerializeToString(), 7)
    canaries |= _canaries(spool, clients=2) | span_ids(good)

    metrics = _write_all(spool, store)

    assert set(_stored(store)) == canaries
    _assert_views_match(store, len(canaries))
    bad = span_ids(poison) - span_ids(good)
    quarantined = _quarantined(store)
    assert {(q["trace_id"], q["span_id"]) for q in quarantined} == bad
    assert {q["reason"] for q in quarantined} == {"timestamp_out_of_range"}
    assert {q["service"] for q in quarantined} == {"poisoner"}
    assert all(q["segment"].endswith(".seg") for q in quarantined)
    details = " ".join(q["detail"] for q in quarantined)
    assert "2149-06-06" in details and "2262-04-11" in details and "'late'" in details
    first = json.loads(quarantined[0]["span"])  # the original span, as OTLP/JSON
    (span,) = first["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert (span["traceId"], span["spanId"]) == (quarantined[0]["trace_id"],
                                                 quarantined[0]["span_id"])
    assert metrics.get_labelled("spans_quarantined_total") == {"timestamp_out_of_range": 4}
    assert "spans_quarantined_total{reason=\"timestamp_out_of_range\"} 4" in metrics.render()


def test_rows_the_store_refuses_are_isolated(tmp_path: Path, store: Store) -> None:
    """A data error from ClickHouse itself: only the refused rows go to the quarantine."""
    store.command("ALTER TABLE otel_traces ADD CONSTRAINT no_poison CHECK SpanName != 'poison'")
    spool = _spool(tmp_path / "spool")
    canaries = _canaries(spool)
    mixed = genai_request(300, service="mixed", rng=random.Random(3))
    spans = mixed.resource_spans[0].scope_spans[0].spans
    spans[17].name = spans[250].name = "poison"
    spool.append(mixed.SerializeToString(), 300)
    poisoned = {(spans[i].trace_id.hex(), spans[i].span_id.hex()) for i in (17, 250)}

    metrics = _write_all(spool, store)

    assert set(_stored(store)) == canaries | (span_ids(mixed) - poisoned)
    _assert_views_match(store, len(canaries) + 298)
    quarantined = _quarantined(store)
    assert {(q["trace_id"], q["span_id"]) for q in quarantined} == poisoned
    assert {q["reason"] for q in quarantined} == {"store_rejected"}
    assert all("VIOLATED_CONSTRAINT" in q["detail"] for q in quarantined)
    span = json.loads(quarantined[0]["span"])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["name"] == "poison" and span["kind"] == 3  # rebuilt from the row as OTLP/JSON
    assert metrics.get("spans_written_total") == len(canaries) + 298
    assert metrics.get_labelled("spans_quarantined_total") == {"store_rejected": 2}
    assert metrics.get("insert_rejections_total") == 1


def test_isolation_interrupted_halfway_replays_the_same_pieces(
        tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash (here: the store going away) in the middle of isolating a segment, then a
    replay of the whole segment: every span once, every quarantined span once."""
    store.command("ALTER TABLE otel_traces ADD CONSTRAINT no_poison CHECK SpanName != 'poison'")
    spool_dir = tmp_path / "spool"
    spool = _spool(spool_dir)
    canaries = _canaries(spool)
    mixed = genai_request(64, service="mixed", rng=random.Random(4))
    spans = mixed.resource_spans[0].scope_spans[0].spans
    for i in (5, 40):
        spans[i].name = "poison"
    spool.append(mixed.SerializeToString(), 64)
    spool.seal_if_due(force=True)
    (segment,) = spool_dir.glob("*.seg")
    saved = tmp_path / "saved.seg"
    shutil.copy(segment, saved)

    calls = 0
    real = Writer._insert

    def failing_after_four(self: Writer, file: str, token: str, settings: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > 4:  # the whole segment, then three pieces: then the store is "gone"
            raise StoreUnavailable("the store went away")
        return real(self, file, token, settings)

    monkeypatch.setattr(Writer, "_insert", failing_after_four)
    writer = Writer(spool, store, Metrics(), workers=0, pricing=True, prices_file=None)
    writer.start()
    spool.close_intake()
    assert not writer.stop(timeout=1)  # could not finish: the segment stays
    monkeypatch.setattr(Writer, "_insert", real)
    partial = len(_stored(store))
    assert 0 < partial < len(canaries) + 62  # some pieces went in before the "crash"

    spool = _spool(spool_dir)  # restart: the segment is replayed from the start
    assert spool.recover() == 1
    assert segment.read_bytes() == saved.read_bytes()
    metrics = _write_all(spool, store)

    _assert_views_match(store, len(canaries) + 62)
    assert len(_quarantined(store)) == 2
    assert metrics.get("spans_written_total") == len(canaries) + 62 - partial
    assert metrics.get("spans_deduplicated_total") == partial  # the pieces it had already


def test_isolation_gives_up_splitting_after_its_budget(tmp_path: Path, store: Store,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A segment of nothing but refused rows costs a bounded number of inserts."""
    monkeypatch.setattr(isolation_module, "BISECT_BUDGET", 6)
    store.command("ALTER TABLE otel_traces ADD CONSTRAINT no_poison CHECK SpanName != 'poison'")
    spool = _spool(tmp_path / "spool")
    canaries = _canaries(spool, clients=1)
    bad = genai_request(40, service="bad", rng=random.Random(5))
    for span in bad.resource_spans[0].scope_spans[0].spans:
        span.name = "poison"
    spool.append(bad.SerializeToString(), 40)

    calls = 0
    real = Writer._insert

    def counting(self: Writer, file: str, token: str, settings: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(self, file, token, settings)

    monkeypatch.setattr(Writer, "_insert", counting)
    _write_all(spool, store)

    # the whole segment, the budget, and the pieces already cut when it ran out (one per
    # level): far below the 2 x 41 inserts that splitting down to single rows takes
    assert calls <= 1 + 6 + 6
    stored = set(_stored(store))
    quarantined = {(q["trace_id"], q["span_id"]): q for q in _quarantined(store)}
    assert stored | set(quarantined) == canaries | span_ids(bad)  # nothing lost...
    assert not stored & set(quarantined) and not stored & span_ids(bad)  # ...or doubled
    # a canary that shared the last unsplit block with bad rows waits in the quarantine
    assert all("not split further" in quarantined[k]["detail"] for k in canaries - stored)


def test_a_failing_view_never_doubles_the_table(tmp_path: Path, store: Store) -> None:
    """A view that fails after otel_traces took the rows: the rows stay once everywhere,
    the segment is done, its spans are listed as view_failed."""
    store.command("CREATE TABLE fragile (n String) ENGINE = MergeTree ORDER BY n")
    store.command("CREATE MATERIALIZED VIEW fragile_mv TO fragile AS SELECT "
                  "toString(throwIf(SpanName = 'view-poison')) AS n FROM otel_traces")
    spool = _spool(tmp_path / "spool")
    canaries = _canaries(spool)
    req = genai_request(10, service="viewpoison", rng=random.Random(6))
    req.resource_spans[0].scope_spans[0].spans[3].name = "view-poison"
    spool.append(req.SerializeToString(), 10)

    metrics = _write_all(spool, store)

    every = canaries | span_ids(req)
    assert set(_stored(store)) == every
    _assert_views_match(store, len(every))  # llm_calls and the rollups: once, not twice
    quarantined = _quarantined(store)
    assert {q["reason"] for q in quarantined} == {"view_failed"}
    assert {(q["trace_id"], q["span_id"]) for q in quarantined} == every  # the whole block
    assert all("fragile_mv" in q["detail"] for q in quarantined)
    assert metrics.get("spans_written_total") == len(every)


def test_records_that_are_not_otlp_are_quarantined_as_bytes(tmp_path: Path,
                                                            store: Store) -> None:
    """A record with a valid checksum but bytes that are no request (an older, broken
    spool): its neighbours are written, its bytes are kept."""
    spool_dir = tmp_path / "spool"
    spool = _spool(spool_dir)
    canaries = _canaries(spool, clients=2)
    spool.append(b"\xff\xff\xff\xff not a protobuf", 1)
    canaries |= _canaries(spool, clients=2, spans=5)

    metrics = _write_all(spool, store)

    assert set(_stored(store)) == canaries
    (entry,) = _quarantined(store)
    assert entry["reason"] == "undecodable" and entry["trace_id"] == ""
    assert "DecodeError" in entry["detail"]
    assert metrics.get_labelled("spans_quarantined_total") == {"undecodable": 1}


def _write_damaged_segment(tmp_path: Path, store: Store, tail: bytes) -> set[tuple[str, str]]:
    """Canary spans in a sealed segment with ``tail`` appended, recovered and written;
    returns the canaries' span ids."""
    spool_dir = tmp_path / "spool"
    spool = _spool(spool_dir)
    canaries = _canaries(spool, clients=2)
    spool.seal_if_due(force=True)
    (segment,) = spool_dir.glob("*.seg")
    with open(segment, "ab") as fh:
        fh.write(tail)
    spool = _spool(spool_dir)
    spool.recover()
    _write_all(spool, store)
    return canaries


def test_a_torn_record_in_a_sealed_segment_is_kept(tmp_path: Path, store: Store) -> None:
    # bytes that fail their checksum at the end
    canaries = _write_damaged_segment(tmp_path, store, _HEADER.pack(5, 0) + b"12345")

    assert set(_stored(store)) == canaries
    (entry,) = _quarantined(store)
    assert entry["reason"] == "undecodable" and "checksum" in entry["detail"]


def test_a_damaged_length_in_a_sealed_segment_loses_only_what_follows_it(
        tmp_path: Path, store: Store) -> None:
    """A record header whose length runs past the end of the segment: the records
    before it are written, the bytes from it on are quarantined (not dropped unseen)."""
    canaries = _write_damaged_segment(
        tmp_path, store, _HEADER.pack(1 << 30, 0) + b"what follows a damaged length")

    assert set(_stored(store)) == canaries
    (entry,) = _quarantined(store)
    assert entry["reason"] == "undecodable" and "checksum" in entry["detail"]
    assert b"what follows" in base64.b64decode(entry["span"])


def test_a_span_that_breaks_conversion_is_isolated(tmp_path: Path, store: Store,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever raises while converting one span (a pricing bug, a value the Arrow
    build cannot take) takes out that span only."""
    real_add = segment_conversion.Columns.add

    def add(self: Any, request: Any, enrich: Any = None) -> None:
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                if any(span.name == "explode" for span in ss.spans):
                    raise ValueError("cannot convert this span")
        real_add(self, request, enrich)

    monkeypatch.setattr(segment_conversion.Columns, "add", add)
    spool = _spool(tmp_path / "spool")
    canaries = _canaries(spool)
    req = genai_request(6, service="exploding", rng=random.Random(9))
    spans = req.resource_spans[0].scope_spans[0].spans
    spans[2].name = "explode"
    spool.append(req.SerializeToString(), 6)

    _write_all(spool, store)

    exploding = (spans[2].trace_id.hex(), spans[2].span_id.hex())
    assert set(_stored(store)) == canaries | (span_ids(req) - {exploding})
    (entry,) = _quarantined(store)
    assert entry["reason"] == "conversion_failed"
    assert (entry["trace_id"], entry["span_id"]) == exploding
    assert "cannot convert this span" in entry["detail"]


def test_quarantine_waits_in_a_file_while_the_store_cannot_take_it(
        tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The quarantine table refusing inserts (e.g. a store not migrated yet) loses nothing:
    the rows wait in the spool's quarantine directory and go in once it can."""
    monkeypatch.setattr(writer_module, "QUARANTINE_RETRY_S", 0.2)
    store.command(f"RENAME TABLE {QUARANTINE} TO q_away")
    spool_dir = tmp_path / "spool"
    spool = _spool(spool_dir)
    canaries = _canaries(spool)
    spool.append(poison_times().SerializeToString(), 4)
    metrics = Metrics()
    spool.seal_if_due(force=True)
    writer = Writer(spool, store, metrics, workers=0, pricing=True, prices_file=None)
    writer.start()
    try:
        deadline = time.monotonic() + 60
        while not (writer.quarantine.pending and not spool.sealed_waiting):
            assert time.monotonic() < deadline, "the segment was never written"
            time.sleep(0.05)
        assert set(_stored(store)) == canaries  # ingestion went on meanwhile
        ok, why = writer.status()
        assert not ok and "quarantined spans wait" in why
        store.command(f"RENAME TABLE q_away TO {QUARANTINE}")
        deadline = time.monotonic() + 60
        while writer.quarantine.pending and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        spool.close_intake()
        assert writer.stop(timeout=30)
    assert len(_quarantined(store)) == 4
    assert writer.status() == (True, "ok")
    assert not list((spool_dir / "quarantine").iterdir())

