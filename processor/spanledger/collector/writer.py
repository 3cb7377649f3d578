"""The exporter: sealed spool segments -> ClickHouse, at least once, counted once.

One thread walks the sealed segments oldest first. Each segment becomes one
insert into ``otel_traces`` with dedup token sha256(segment bytes) (the
materialized views dedup with it too), and is deleted only after the insert
succeeded. A failing store is retried with exponential backoff (the spool
keeps accepting until it is full); ``/healthz`` reports the failure meanwhile.
Conversion of the next segments runs in worker processes while the current
one is inserted.

Testing hook (not a user setting): when the environment variable
``SPANLEDGER_COLLECTOR_FAULT_FILE`` names a file and that file exists, every
insert fails as if the store were unreachable. Tests create and delete the
file to take storage "down" and bring it "back".
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from spanledger.collector import segment_conversion as conversion
from spanledger.collector.convert import SCHEMA
from spanledger.collector.metrics import Metrics
from spanledger.collector.spool import ARROW_SUFFIX, Segment, Spool
from spanledger.store.base import Store, StoreUnavailable, columns_of

log = logging.getLogger(__name__)

FAULT_ENV = "SPANLEDGER_COLLECTOR_FAULT_FILE"
TABLE = "otel_traces"
#: records are converted in jobs of about this many bytes, spread over the workers
CHUNK_BYTES = 2 * 1024 * 1024
#: concurrent insert loops (see Writer.__init__)
INSERT_LOOPS = 1


class Writer:
    def __init__(self, spool: Spool, store: Store, metrics: Metrics, *, workers: int,
                 pricing: bool, prices_file: str | None) -> None:
        self.spool = spool
        self.store = store
        self.metrics = metrics
        self.pricing = pricing
        self.prices_file = prices_file
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._stop = threading.Event()
        self._deadline: float | None = None
        # Insert loops: each insert runs single-threaded (one block, so the dedup token
        # always covers the same rows). Segments are independent, so with several loops
        # their order would not matter; measured on chdb, concurrent inserts into the
        # same MV chain are slower than sequential ones, hence one loop by default.
        self._threads = [threading.Thread(target=self._run, name=f"spanledger-writer-{i}",
                                          daemon=True) for i in range(INSERT_LOOPS)]
        self._claim_lock = threading.Lock()
        self._claimed: set[int] = set()
        self.last_error: str | None = None
        self.failing_since: float | None = None
        self._fault = os.environ.get(FAULT_ENV) or None
        self._embedded = str(getattr(store, "url", "")).startswith("chdb://")

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        if self.workers > 0:
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
            warm = [self._pool.submit(conversion.warm_up, self.pricing, self.prices_file)
                    for _ in range(self.workers)]
            for f in warm:
                f.result(timeout=120)
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float) -> bool:
        """Flush everything sealed (bounded by ``timeout``); True when the spool is empty."""
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        for thread in self._threads:
            thread.join(max(self._deadline - time.monotonic(), 0) + 5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        return self.spool.is_empty

    @property
    def healthy(self) -> bool:
        return self.failing_since is None

    # -- loop ----------------------------------------------------------------------
    def _run(self) -> None:
        inflight: deque[_Job] = deque()
        backoff = 0.1
        while True:
            stopping = self._stop.is_set()
            if stopping and self._deadline is not None and time.monotonic() > self._deadline:
                log.warning("shutdown timeout: %d segment(s) stay in the spool for the next start",
                            len(self.spool.take(1 << 30)))
                return
            if stopping or len(inflight) < 2:
                # Seal by age only while the pipeline has room: under load segments
                # grow (fewer, larger inserts, each with a fixed cost of ~0.1 s);
                # when idle, timeout_ms bounds the latency.
                self.spool.seal_if_due(force=stopping)
            self._fill(inflight)
            if not inflight:
                if stopping and self.spool.is_empty:
                    return
                self.spool.wait_sealed(0.05)
                continue
            job = inflight[0]
            try:
                if job.ready is None:
                    job.ready = [f.result() if isinstance(f, Future) else f for f in job.parts]
                    if job.token_future is not None:
                        job.token = job.token_future.result()
                    self._prepare(job)
            except Exception as exc:  # a worker died or the file is unreadable
                log.exception("converting spool segment %s failed", job.seg.path.name)
                inflight.popleft()
                self._remove_files(job)
                if not job.seg.path.exists():
                    self._done(job.seg)
                else:
                    self._quarantine(job.seg, exc)
                continue
            self._fill(inflight)  # keep the workers busy while this one is inserted
            t_insert = time.perf_counter()
            try:
                self._insert(job)
            except Exception as exc:
                self.metrics.inc("insert_errors_total")
                self.last_error = str(exc).splitlines()[0][:300] if str(exc) else repr(exc)
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                    log.error("insert into %s failed (will retry): %s", TABLE, self.last_error)
                if self._stop.is_set():
                    time.sleep(backoff)
                else:
                    self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue  # the converted table is kept: retry the same segment
            rows = job.rows
            log.debug("segment %s: %d rows, converted in %.3f s, inserted in %.3f s",
                      job.seg.path.name, rows, job.seconds, time.perf_counter() - t_insert)
            backoff = 0.1
            if self.failing_since is not None:
                log.info("store is back: inserts succeed again")
            self.failing_since = None
            self.last_error = None
            inflight.popleft()
            self._remove_files(job)
            self._done(job.seg)
            m = self.metrics
            m.inc("spans_written_total", rows)
            m.inc("spans_duplicate_total", job.duplicates)
            m.inc("segments_written_total")
            c = job.counters
            m.inc("spans_priced_total", c.get("priced", 0))
            m.inc("spans_unpriced_total", c.get("unpriced", 0))
            m.inc("spans_aggregate_total", c.get("aggregate", 0))

    def _fill(self, inflight: deque[_Job]) -> None:
        """Queue conversion of the oldest sealed segments (two segments ahead at most)."""
        if len(inflight) >= 2:
            return
        for seg in self.spool.take(8):
            if len(inflight) >= 2:
                break
            with self._claim_lock:
                if seg.id in self._claimed:
                    continue  # the other loop has it
                self._claimed.add(seg.id)
            try:
                chunks = conversion.plan_segment(seg.path, CHUNK_BYTES)
            except OSError as exc:
                self._quarantine(seg, exc)
                continue
            job = _Job(seg)
            if self._pool is not None:
                job.token_future = self._pool.submit(conversion.segment_token, str(seg.path))
            else:
                job.token = conversion.segment_token(seg.path)
            for offset, length in chunks:
                args = (str(seg.path), offset, length, self.pricing, self.prices_file)
                if self._pool is not None:
                    job.parts.append(self._pool.submit(conversion.convert_chunk, *args))
                else:
                    job.parts.append(conversion.convert_chunk(*args))
            inflight.append(job)

    def _prepare(self, job: _Job) -> None:
        """Chunk results -> the files (or, after a repeat across chunks, one table) to insert."""
        parts = job.ready or []
        job.seconds = max((p.seconds for p in parts), default=0.0)
        job.counters = conversion.counters_of(parts)
        job.duplicates = sum(p.duplicates for p in parts)
        job.rows = sum(p.rows for p in parts)
        job.files = [p.file for p in parts if p.rows]
        # One file per segment: inserting from several chunk files makes chdb write
        # one small block per file through the whole MV chain (measured 4x slower).
        if len(job.files) > 1 or conversion.repeats_across(parts):
            job.table, job.duplicates, job.counters = conversion.merge(parts)
            job.rows = job.table.num_rows

    def _remove_files(self, job: _Job) -> None:
        for part in job.ready or []:
            Path(part.file).unlink(missing_ok=True)
        for part in job.parts:
            if isinstance(part, Future) and part.done() and not part.exception():
                Path(part.result().file).unlink(missing_ok=True)
        job.seg.path.with_suffix(ARROW_SUFFIX).unlink(missing_ok=True)

    def _insert(self, job: _Job) -> None:
        if self._fault and Path(self._fault).exists():
            raise StoreUnavailable(f"fault injected: storage is down ({FAULT_ENV})")
        if job.rows == 0:
            return
        if not self._embedded:
            table = job.table
            if table is None:
                table, _, _ = conversion.merge(job.ready or [])
            self.store.insert_arrow(TABLE, table, dedup_token=job.token)
            return
        # Embedded fast path: chdb reads Arrow files natively and releases the GIL
        # meanwhile (an insert from a Python object holds it, starving the
        # receivers). One reading thread, one insert block: the dedup token covers
        # exactly this segment's rows however often it is replayed.
        if job.table is not None:  # several chunks: merged (and repeats dropped) into one file
            merged = job.seg.path.with_suffix(ARROW_SUFFIX)
            with pa.OSFile(str(merged), "wb") as sink, \
                    pa.ipc.new_stream(sink, job.table.schema) as stream:
                stream.write_table(job.table.combine_chunks())
            files = [str(merged)]
        else:
            files = job.files
        directory = str(Path(files[0]).parent)
        names = [Path(f).name for f in files]
        pattern = names[0] if len(names) == 1 else "{" + ",".join(names) + "}"
        source = f"{directory}/{pattern}".replace("\\", "\\\\").replace("'", "\\'")
        cols = columns_of(SCHEMA.names)
        self.store.command(
            f"INSERT INTO {TABLE} ({cols}) SETTINGS insert_deduplication_token = "
            f"'{job.token}', deduplicate_blocks_in_dependent_materialized_views = 1, "
            f"max_threads = 1, max_insert_threads = 1 "
            f"SELECT {cols} FROM file('{source}', 'ArrowStream')"
        )

    def _quarantine(self, seg: Segment, exc: BaseException) -> None:
        """A segment that cannot be converted is kept aside, never silently deleted."""
        bad = seg.path.with_suffix(".bad")
        with contextlib.suppress(OSError):
            seg.path.rename(bad)
        log.error("spool segment moved to %s: %s", bad, exc)
        self._done(seg)

    def _done(self, seg: Segment) -> None:
        self.spool.done(seg)
        with self._claim_lock:
            self._claimed.discard(seg.id)


@dataclass
class _Job:
    """A sealed segment on its way: conversion parts, then one table and one insert."""

    seg: Segment
    token: str = ""
    token_future: Future[str] | None = None
    parts: list[Future[conversion.Converted] | conversion.Converted] = field(default_factory=list)
    ready: list[conversion.Converted] | None = None
    files: list[str] = field(default_factory=list)
    rows: int = 0
    table: pa.Table | None = None
    duplicates: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
