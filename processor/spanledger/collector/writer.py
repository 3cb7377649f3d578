"""The exporter: sealed spool segments -> ClickHouse, at least once, counted once.

One thread walks the sealed segments oldest first. Each segment becomes one
Arrow file and one insert into ``otel_traces`` with dedup token
sha256(segment bytes) (the materialized views dedup with it too), and is
deleted only after the insert succeeded. Conversion of the next segments runs
in worker processes while the current one is inserted. How the file reaches
the store is the store's business (:meth:`~spanledger.store.base.Store.insert_arrow_file`).

Two kinds of failure, two answers:

- The store is unavailable (down, full, a timeout): the same segment is
  retried with exponential backoff while the spool keeps accepting until it is
  full; ``/healthz`` reports it meanwhile.
- The store refuses the rows themselves (a data error): retrying cannot help,
  so the failing rows are isolated and quarantined and everything else is
  written (:mod:`~spanledger.collector.isolation`); spans that cannot even be
  converted are quarantined by the conversion. No input stops ingestion.

The thread is supervised: an unexpected failure (a conversion worker killed,
the spool directory briefly unwritable) discards the work in flight, rebuilds
the worker pool, counts ``writer_restarts_total``, shows "writer restarting"
on ``/healthz`` and starts over from the spool. Segments leave the spool only
once written, and replays carry the same dedup tokens, so nothing is lost and
nothing is counted twice.

Testing hook (not a user setting): when the environment variable
``SPANLEDGER_COLLECTOR_FAULT_FILE`` names a file and that file exists, every
insert fails as if the store were unreachable. Tests create and delete the
file to take storage "down" and bring it "back".
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spanledger.collector import segment_conversion as conversion
from spanledger.collector import worker_lifecycle
from spanledger.collector.attribution_policy import AttributionPolicy
from spanledger.collector.bounds import Bounds
from spanledger.collector.isolation import Isolation, Outcome
from spanledger.collector.metrics import Metrics
from spanledger.collector.quarantine import Quarantine
from spanledger.collector.recent_keys import DEFAULT_CAPACITY, RecentKeys
from spanledger.collector.screening import Screened, money_key_array, screen
from spanledger.collector.spool import ARROW_SUFFIX, Segment, Spool
from spanledger.store.base import Inserted, Store, StoreError, StoreUnavailable

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
#: seconds a new worker may take to start and load the price catalog
WARM_UP_TIMEOUT_S = 120
#: seconds between attempts to insert quarantine files the store did not take
QUARANTINE_RETRY_S = 5.0
#: suffix of a segment's file after the screen changed it (repeats, rejected claims)
SCREENED_SUFFIX = ".screened" + ARROW_SUFFIX


class Writer:
    """Inserts run one at a time, single-threaded: one block per segment.

    Measured on chdb, concurrent inserts into the same MV chain are slower than
    sequential ones, so there is one insert loop; parallelism is in conversion.
    """

    def __init__(self, spool: Spool, store: Store, metrics: Metrics, *, workers: int,
                 pricing: bool, prices_file: str | None,
                 quarantine: Quarantine | None = None,
                 policy: AttributionPolicy | None = None, bounds: Bounds | None = None,
                 dedup_window: int = DEFAULT_CAPACITY) -> None:
        """``bounds``: per-call ceilings and the disagreement tolerance (the collector's
        ``trust`` section); ``dedup_window``: GenAI spans whose ids are remembered across
        segments (0: off)."""
        self.spool = spool
        self.store = store
        self.metrics = metrics
        self.pricing = pricing
        self.prices_file = prices_file
        #: a tokens file's attribution policy, checked in the conversion jobs
        self.policy = policy
        self.bounds = bounds
        self.workers = workers
        #: ids of the GenAI spans written lately: a retry in a later segment is dropped
        self.recent = RecentKeys(dedup_window) if dedup_window > 0 else None
        self.quarantine = quarantine or Quarantine(store, spool.dir / "quarantine", metrics)
        self._pool: ProcessPoolExecutor | None = None
        self._stop = threading.Event()
        self._deadline: float | None = None
        self._thread = threading.Thread(target=self._supervise, name="spanledger-writer",
                                        daemon=True)
        self._inflight: deque[_Job] = deque()
        self._backoff = BACKOFF_MIN_S
        self._restart_backoff = BACKOFF_MIN_S
        self._next_quarantine_flush = 0.0
        self.last_error: str | None = None
        self.failing_since: float | None = None
        #: why the loop is starting over (None when it runs normally)
        self.restarting: str | None = None
        self._fault = os.environ.get(FAULT_ENV) or None

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        if self.workers > 0:
            self._pool = self._new_pool()
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Flush everything sealed (bounded by ``timeout``); True when the spool is empty."""
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        self._thread.join(max(self._deadline - time.monotonic(), 0) + 5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        return self.spool.is_empty

    def _new_pool(self) -> ProcessPoolExecutor:
        """Spawned workers (never forked: this process holds gRPC and chdb), warmed up."""
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx,
                                   **worker_lifecycle.pool_options())
        try:
            warm = [pool.submit(conversion.warm_up, self.pricing, self.prices_file, self.bounds)
                    for _ in range(self.workers)]
            for f in warm:
                f.result(timeout=WARM_UP_TIMEOUT_S)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        return pool

    @property
    def healthy(self) -> bool:
        return self.failing_since is None and self.restarting is None

    def status(self) -> tuple[bool, str]:
        """(healthy, why not) for ``/healthz``."""
        if self.restarting is not None:
            return False, f"writer restarting after: {self.restarting}"
        if self.failing_since is not None:
            return False, f"store inserts failing: {self.last_error}"
        if self.quarantine.last_error is not None:
            return False, (f"quarantined spans wait in {self.quarantine.dir} for the store: "
                           f"{self.quarantine.last_error.splitlines()[0][:300]}")
        return True, "ok"

    # -- supervision ------------------------------------------------------------------
    def _supervise(self) -> None:
        """Run the loop; after an unexpected failure clean up and run it again."""
        while True:
            try:
                if self.workers > 0 and self._pool_broken():
                    self._rebuild_pool()
                self._run()
                return
            except Exception as exc:
                if not self._restart(exc):
                    return

    def _restart(self, exc: Exception) -> bool:
        """Discard the work in flight and wait a little; False when it is time to stop."""
        self.metrics.inc("writer_restarts_total")
        self.restarting = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        log.error("writer failed (%s); starting over from the spool", self.restarting,
                  exc_info=exc)
        for job in self._inflight:
            self._discard(job)
        self._inflight.clear()
        if isinstance(exc, BrokenProcessPool) and self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self._stop.is_set() and self._out_of_time():
            return False
        self._wait(self._restart_backoff)
        self._restart_backoff = min(self._restart_backoff * 2, BACKOFF_MAX_S)
        return True

    def _rebuild_pool(self) -> None:
        old, self._pool = self._pool, None
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)
        log.info("starting %d new conversion worker(s)", self.workers)
        self._pool = self._new_pool()

    def _pool_broken(self) -> bool:
        return self._pool is None or bool(getattr(self._pool, "_broken", False))

    def _recovered(self) -> None:
        if self.restarting is not None:
            log.info("writer running again")
        self.restarting = None
        self._restart_backoff = BACKOFF_MIN_S

    def _wait(self, seconds: float) -> None:
        if self._stop.is_set():
            time.sleep(min(seconds, 0.5))
        else:
            self._stop.wait(seconds)

    # -- the loop: seal, fill, wait for conversion, insert, account ------------------
    def _run(self) -> None:
        inflight = self._inflight
        while True:
            stopping = self._stop.is_set()
            if stopping and self._out_of_time():
                log.warning("shutdown timeout: %d segment(s) stay in the spool for the next start",
                            len(self.spool.take(1 << 30)))
                return
            self._seal(inflight, stopping)
            self._flush_quarantine()
            self._fill(inflight)
            if not inflight:
                if self.restarting is not None and not self.spool.sealed_waiting:
                    self._recovered()
                if stopping and self.spool.is_empty:
                    self.quarantine.flush()  # one last try; what is left waits for the next start
                    return
                self.spool.wait_sealed(0.05)
                continue
            job = inflight[0]
            if not self._converted(job):
                inflight.popleft()  # its segment is gone: nothing to insert
                continue
            self._fill(inflight)  # keep the workers busy while this one is inserted
            outcome = self._inserted(job)
            if outcome is not None:
                self._account(job, outcome)
                inflight.popleft()
                self._recovered()

    def _out_of_time(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline

    def _seal(self, inflight: deque[_Job], stopping: bool) -> None:
        """Seal by age only while the pipeline has room.

        Under load segments then grow (fewer, larger inserts, each with a fixed
        cost of ~0.1 s); when idle, timeout_ms bounds the latency. Stopping seals
        whatever is open. Seals that failed before (a full or read-only disk)
        are retried here too.
        """
        if stopping or len(inflight) < PIPELINE_DEPTH:
            self.spool.seal_if_due(force=stopping)

    def _flush_quarantine(self) -> None:
        """Quarantined spans the store did not take yet: retried every few seconds."""
        now = time.monotonic()
        if now < self._next_quarantine_flush:
            return
        flushed = self.quarantine.flush()
        self._next_quarantine_flush = now + (0 if flushed else QUARANTINE_RETRY_S)

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
            except FileNotFoundError:
                log.error("spool segment %s disappeared before it was written", seg.path)
                self.spool.done(seg)
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
            args = (str(seg.path), offset, length, self.pricing, self.prices_file, self.policy,
                    self.bounds)
            if self._pool is not None:
                job.parts.append(self._pool.submit(conversion.convert_chunk, *args))
            else:
                job.parts.append(conversion.convert_chunk(*args))
        return job

    def _converted(self, job: _Job) -> bool:
        """Wait for the job's conversion; False when its segment no longer exists.

        Conversion itself sets bad spans aside and never fails for data, so an
        exception here (a worker killed, the disk) goes to the supervisor, which
        converts the segment again.
        """
        if job.result is not None:
            return True  # converted before: an insert retry
        if not job.seg.path.exists():
            log.error("spool segment %s disappeared before it was written", job.seg.path)
            self._discard(job)
            self.spool.done(job.seg)
            return False
        job.ready = [f.result() if isinstance(f, Future) else f for f in job.parts]
        if job.token_future is not None:
            job.token = job.token_future.result()
        job.result = conversion.segment_result(job.ready, job.seg.path.with_suffix(ARROW_SUFFIX))
        return True

    def _inserted(self, job: _Job) -> Outcome | None:
        """One attempt at the segment; None (after the backoff wait) when the store failed."""
        assert job.result is not None
        started = time.perf_counter()
        isolation = Isolation(self._insert, str(job.seg.path), job.seg.path.name)
        try:
            self._screen(job)
            outcome = isolation.run(job.result.file, job.token, job.result.rows) \
                if job.result.rows else Outcome(0)
        except StoreError as exc:
            self._insert_failed(exc)
            return None  # the converted file is kept: retry the same segment
        if outcome.rejected:
            self.metrics.inc("insert_rejections_total")
        log.debug("segment %s: %d rows, converted in %.3f s, inserted in %.3f s",
                  job.seg.path.name, job.result.rows, job.result.seconds,
                  time.perf_counter() - started)
        self._insert_succeeded()
        return outcome

    def _screen(self, job: _Job) -> None:
        """Once per segment, before its first insert: drop spans written in an earlier
        segment, check the claims conversion could not settle (may ask the store)."""
        if job.screened is not None or job.result is None:
            return
        job.screened = screen(job.result, self.recent, self.store,
                              job.seg.path.with_suffix(SCREENED_SUFFIX))

    def _insert(self, file: str, token: str, settings: dict[str, Any] | None) -> Inserted:
        if self._fault and Path(self._fault).exists():
            raise StoreUnavailable(f"fault injected: storage is down ({FAULT_ENV})")
        return self.store.insert_arrow_file(TABLE, file, dedup_token=token, settings=settings)

    def _insert_failed(self, exc: Exception) -> None:
        self.metrics.inc("insert_errors_total")
        self.last_error = str(exc).splitlines()[0][:300] if str(exc) else repr(exc)
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            log.error("insert into %s failed (will retry): %s", TABLE, self.last_error)
        self._wait(self._backoff)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)

    def _insert_succeeded(self) -> None:
        self._backoff = BACKOFF_MIN_S
        if self.failing_since is not None:
            log.info("store is back: inserts succeed again")
        self.failing_since = None
        self.last_error = None

    def _account(self, job: _Job, outcome: Outcome) -> None:
        """The segment is in the store: quarantine what was set aside, drop its files, count.

        The quarantine is durable before the segment is deleted; a crash in
        between replays the segment, and the dedup tokens keep both counted once.
        """
        assert job.result is not None
        for number, (path, reasons) in enumerate(job.result.quarantine):
            self.quarantine.put_file(path, f"{job.token}.q.convert{number}", reasons)
        self.quarantine.put(outcome.rejected, f"{job.token}.q.insert")
        if self.recent is not None:
            self.recent.add(money_key_array(job.result))
        self._remove_files(job)
        self.spool.done(job.seg)
        result, m = job.result, self.metrics
        m.inc("spans_written_total", outcome.written)
        m.inc("spans_deduplicated_total", outcome.deduplicated)
        m.inc("spans_duplicate_total", result.duplicates)
        m.inc("segments_written_total")
        m.inc("spans_priced_total", result.counters.get("priced", 0))
        m.inc("spans_unpriced_total", result.counters.get("unpriced", 0))
        m.inc("spans_aggregate_total", result.counters.get("aggregate", 0))
        m.inc("spans_same_call_total", result.counters.get("duplicate", 0))
        m.inc("cost_reported_total", result.counters.get("reported", 0))
        m.inc("cost_reported_disagreements_total", result.counters.get("reported_disagreements", 0))
        m.inc("spans_unverified_total", result.counters.get("unverified", 0))
        self._account_trust(result.counters, job.screened or Screened())

    def _account_trust(self, counters: dict[str, int], screened: Screened) -> None:
        m = self.metrics
        m.inc("spans_verified_total", counters.get("verified", 0))
        m.inc("spans_retried_total", screened.repeats)
        for claim, amount in (("aggregate", counters.get("rejected_aggregate", 0)
                               + screened.rejected.get("aggregate", 0)),
                              ("duplicate", counters.get("rejected_duplicate", 0)
                               + screened.rejected.get("duplicate", 0)),
                              ("status", counters.get("rejected_status", 0))):
            if amount:
                m.inc_labelled("claims_rejected_total", claim, amount)

    # -- files ---------------------------------------------------------------------
    def _discard(self, job: _Job) -> None:
        """Forget a job in flight (its segment stays in the spool for the next round)."""
        for part in job.parts:
            if isinstance(part, Future):
                part.cancel()
        if job.token_future is not None:
            job.token_future.cancel()
        self._remove_files(job)

    def _remove_files(self, job: _Job) -> None:
        parts: list[conversion.Converted] = list(job.ready or [])
        for part in job.parts:
            if isinstance(part, Future):
                if part.done() and not part.cancelled() and part.exception() is None:
                    parts.append(part.result())
            else:
                parts.append(part)
        for part in parts:
            if part.file:
                Path(part.file).unlink(missing_ok=True)
            for path, _ in part.quarantine:
                Path(path).unlink(missing_ok=True)  # gone already when it was quarantined
        job.seg.path.with_suffix(ARROW_SUFFIX).unlink(missing_ok=True)
        job.seg.path.with_suffix(SCREENED_SUFFIX).unlink(missing_ok=True)


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
    #: what the screen did, once it ran (before the first insert)
    screened: Screened | None = None
