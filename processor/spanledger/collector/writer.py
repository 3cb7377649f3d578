"""The exporter: sealed spool segments -> ClickHouse, at least once, counted once.

One thread walks the sealed segments oldest first. Each segment becomes one
Arrow file and one insert into ``otel_traces`` with dedup token
sha256(segment bytes) (the materialized views dedup with it too), and is
deleted only after the insert succeeded. A failing store is retried with
exponential backoff (the spool keeps accepting until it is full); ``/healthz``
reports the failure meanwhile. Conversion of the next segments runs in worker
processes while the current one is inserted. How the file reaches the store is
the store's business (:meth:`~spanledger.store.base.Store.insert_arrow_file`).

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

from spanledger.collector import segment_conversion as conversion
from spanledger.collector.metrics import Metrics
from spanledger.collector.spool import ARROW_SUFFIX, Segment, Spool
from spanledger.store.base import Store, StoreUnavailable

log = logging.getLogger(__name__)

FAULT_ENV = "SPANLEDGER_COLLECTOR_FAULT_FILE"
TABLE = "otel_traces"
#: records are converted in jobs of about this many bytes, spread over the workers
CHUNK_BYTES = 2 * 1024 * 1024
#: segments converted ahead of (and including) the one being inserted
PIPELINE_DEPTH = 2
#: first and longest wait before retrying a failed insert (doubling in between)
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0


class Writer:
    """Inserts run one at a time, single-threaded: one block per segment.

    Measured on chdb, concurrent inserts into the same MV chain are slower than
    sequential ones, so there is one insert loop; parallelism is in conversion.
    """

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
        self._thread = threading.Thread(target=self._run, name="spanledger-writer", daemon=True)
        self._backoff = BACKOFF_MIN_S
        self.last_error: str | None = None
        self.failing_since: float | None = None
        self._fault = os.environ.get(FAULT_ENV) or None

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        if self.workers > 0:
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
            warm = [self._pool.submit(conversion.warm_up, self.pricing, self.prices_file)
                    for _ in range(self.workers)]
            for f in warm:
                f.result(timeout=120)
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Flush everything sealed (bounded by ``timeout``); True when the spool is empty."""
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        self._thread.join(max(self._deadline - time.monotonic(), 0) + 5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        return self.spool.is_empty

    @property
    def healthy(self) -> bool:
        return self.failing_since is None

    # -- the loop: seal, fill, wait for conversion, insert, account ------------------
    def _run(self) -> None:
        inflight: deque[_Job] = deque()
        while True:
            stopping = self._stop.is_set()
            if stopping and self._out_of_time():
                log.warning("shutdown timeout: %d segment(s) stay in the spool for the next start",
                            len(self.spool.take(1 << 30)))
                return
            self._seal(inflight, stopping)
            self._fill(inflight)
            if not inflight:
                if stopping and self.spool.is_empty:
                    return
                self.spool.wait_sealed(0.05)
                continue
            job = inflight[0]
            if not self._converted(job):
                inflight.popleft()  # quarantined (or gone): nothing to insert
                continue
            self._fill(inflight)  # keep the workers busy while this one is inserted
            if self._inserted(job):
                inflight.popleft()
                self._account(job)

    def _out_of_time(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline

    def _seal(self, inflight: deque[_Job], stopping: bool) -> None:
        """Seal by age only while the pipeline has room.

        Under load segments then grow (fewer, larger inserts, each with a fixed
        cost of ~0.1 s); when idle, timeout_ms bounds the latency. Stopping seals
        whatever is open.
        """
        if stopping or len(inflight) < PIPELINE_DEPTH:
            self.spool.seal_if_due(force=stopping)

    def _fill(self, inflight: deque[_Job]) -> None:
        """Queue conversion of the oldest sealed segments not yet in flight."""
        if len(inflight) >= PIPELINE_DEPTH:
            return
        taken = {job.seg.id for job in inflight}
        for seg in self.spool.take(8):
            if len(inflight) >= PIPELINE_DEPTH:
                break
            if seg.id in taken:
                continue
            try:
                chunks = conversion.plan_segment(seg.path, CHUNK_BYTES)
            except OSError as exc:
                self._quarantine(seg, exc)
                continue
            inflight.append(self._submit(seg, chunks))

    def _submit(self, seg: Segment, chunks: list[tuple[int, int]]) -> _Job:
        """The segment's token and chunk conversions, in the pool (or here with workers: 0)."""
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
        return job

    def _converted(self, job: _Job) -> bool:
        """Wait for the job's conversion; False when it failed (the segment is set aside)."""
        if job.result is not None:
            return True  # converted before: an insert retry
        try:
            job.ready = [f.result() if isinstance(f, Future) else f for f in job.parts]
            if job.token_future is not None:
                job.token = job.token_future.result()
            job.result = conversion.segment_result(job.ready,
                                                   job.seg.path.with_suffix(ARROW_SUFFIX))
        except Exception as exc:  # a worker died or the file is unreadable
            log.exception("converting spool segment %s failed", job.seg.path.name)
            self._remove_files(job)
            if job.seg.path.exists():
                self._quarantine(job.seg, exc)
            else:
                self.spool.done(job.seg)
            return False
        return True

    def _inserted(self, job: _Job) -> bool:
        """One insert attempt; False (after the backoff wait) when the store refused it."""
        assert job.result is not None
        started = time.perf_counter()
        try:
            self._insert(job.result, job.token)
        except Exception as exc:
            self._insert_failed(exc)
            return False  # the converted file is kept: retry the same segment
        log.debug("segment %s: %d rows, converted in %.3f s, inserted in %.3f s",
                  job.seg.path.name, job.result.rows, job.result.seconds,
                  time.perf_counter() - started)
        self._insert_succeeded()
        return True

    def _insert(self, result: conversion.Converted, token: str) -> None:
        if self._fault and Path(self._fault).exists():
            raise StoreUnavailable(f"fault injected: storage is down ({FAULT_ENV})")
        if result.rows:
            self.store.insert_arrow_file(TABLE, result.file, dedup_token=token)

    def _insert_failed(self, exc: Exception) -> None:
        self.metrics.inc("insert_errors_total")
        self.last_error = str(exc).splitlines()[0][:300] if str(exc) else repr(exc)
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            log.error("insert into %s failed (will retry): %s", TABLE, self.last_error)
        if self._stop.is_set():
            time.sleep(self._backoff)
        else:
            self._stop.wait(self._backoff)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)

    def _insert_succeeded(self) -> None:
        self._backoff = BACKOFF_MIN_S
        if self.failing_since is not None:
            log.info("store is back: inserts succeed again")
        self.failing_since = None
        self.last_error = None

    def _account(self, job: _Job) -> None:
        """The segment is in the store: drop its files and count its spans."""
        assert job.result is not None
        self._remove_files(job)
        self.spool.done(job.seg)
        result, m = job.result, self.metrics
        m.inc("spans_written_total", result.rows)
        m.inc("spans_duplicate_total", result.duplicates)
        m.inc("segments_written_total")
        m.inc("spans_priced_total", result.counters.get("priced", 0))
        m.inc("spans_unpriced_total", result.counters.get("unpriced", 0))
        m.inc("spans_aggregate_total", result.counters.get("aggregate", 0))
        m.inc("spans_same_call_total", result.counters.get("duplicate", 0))
        m.inc("cost_reported_total", result.counters.get("reported", 0))
        m.inc("cost_reported_disagreements_total", result.counters.get("reported_disagreements", 0))

    # -- files ---------------------------------------------------------------------
    def _remove_files(self, job: _Job) -> None:
        for part in job.ready or []:
            Path(part.file).unlink(missing_ok=True)
        for part in job.parts:
            if isinstance(part, Future) and part.done() and not part.exception():
                Path(part.result().file).unlink(missing_ok=True)
        job.seg.path.with_suffix(ARROW_SUFFIX).unlink(missing_ok=True)

    def _quarantine(self, seg: Segment, exc: BaseException) -> None:
        """A segment that cannot be converted is kept aside, never silently deleted."""
        bad = seg.path.with_suffix(".bad")
        with contextlib.suppress(OSError):
            seg.path.rename(bad)
        log.error("spool segment moved to %s: %s", bad, exc)
        self.spool.done(seg)


@dataclass
class _Job:
    """A sealed segment on its way: conversion parts, then one file and one insert."""

    seg: Segment
    token: str = ""
    token_future: Future[str] | None = None
    parts: list[Future[conversion.Converted] | conversion.Converted] = field(
        default_factory=list)
    ready: list[conversion.Converted] | None = None
    #: the segment's one Arrow file with its counts, once converted
    result: conversion.Converted | None = None
