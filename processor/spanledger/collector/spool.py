"""The on-disk spool (write-ahead log): a request is acknowledged only once it is durable.

Receivers append each request's validated spans as one record
(``<u32 length><u32 crc32><ExportTraceServiceRequest bytes>``) to the open
segment file and return only after ``fsync``. Concurrent requests share one
``fsync`` (group commit): whoever syncs first covers every record written
before it. Segments are sealed (renamed ``*.open`` -> ``*.seg``) by size,
span count or age; the writer turns each sealed segment into one ClickHouse
insert whose dedup token is the sha256 of the segment's bytes, then deletes
it. After a crash, :meth:`Spool.recover` truncates a torn tail (a record that
never got its ``fsync``, so was never acknowledged) and seals the leftovers;
replaying a segment gives the same bytes, so the same token, so ClickHouse
inserts it at most once, through every materialized view.

Failures of the disk are kept apart by when they happen:

- before a record is durable (the write or its ``fsync`` fails): the request
  is refused with :class:`SpoolUnavailable` (UNAVAILABLE / 503, the client
  retries), and the segment is cut back to what was durable, so a retry cannot
  store the spans twice;
- after it is durable (sealing: the rename, the directory ``fsync``; deleting
  a written segment): the request is answered with success (its spans are safe
  on disk), the spool reports the error (:attr:`Spool.error`, on ``/healthz``)
  and the writer retries the step until it works.

Memory stays bounded: the spool holds nothing in RAM but counters. When the
segments waiting on disk exceed ``max_bytes`` (storage down for a while),
:meth:`append` raises :class:`SpoolFull` and receivers answer UNAVAILABLE /
503 so SDK exporters retry later.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<II")
OPEN_SUFFIX = ".open"
SEALED_SUFFIX = ".seg"
#: a converted segment on its way into chdb (rebuilt from the segment if left over)
ARROW_SUFFIX = ".arrows"


def fsync_path(path: str | Path) -> None:
    """Make a file's data, or a directory's entries (a rename, a new file), durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SpoolFull(Exception):
    """Too much is waiting for storage: the client should retry later."""


class SpoolUnavailable(SpoolFull):
    """The spool's disk failed before the record was durable: the client should retry.

    A kind of :class:`SpoolFull` so that receivers answer both alike
    (UNAVAILABLE / 503 with Retry-After): neither request was acknowledged.
    """


class SpoolClosed(Exception):
    """The collector is shutting down and takes no more data."""


@dataclass
class Segment:
    id: int
    path: Path
    size: int = 0
    spans: int = 0
    created: float = field(default_factory=time.monotonic)
    fd: int = -1
    #: bytes and spans covered by a successful fsync
    synced_size: int = 0
    synced_spans: int = 0


def read_records(data: bytes) -> tuple[list[bytes], int]:
    """The valid records of a segment and the length of the valid prefix."""
    out: list[bytes] = []
    pos, end = 0, len(data)
    view = memoryview(data)
    while pos + _HEADER.size <= end:
        length, crc = _HEADER.unpack_from(data, pos)
        start = pos + _HEADER.size
        if start + length > end:
            break
        payload = view[start : start + length]
        if zlib.crc32(payload) != crc:
            break
        out.append(bytes(payload))
        pos = start + length
    return out, pos


def count_spans(records: list[bytes]) -> int:
    """Spans in OTLP request records (a record that is not one counts 0): ~1 us a span."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    total = 0
    for payload in records:
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(payload)
        except Exception:  # the writer quarantines it; here it only counts nothing
            continue
        total += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    return total


class Spool:
    def __init__(self, directory: str | Path, *, max_bytes: int, segment_bytes: int,
                 segment_spans: int, segment_age_s: float) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.segment_spans = segment_spans
        self.segment_age_s = segment_age_s
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._sealed_cv = threading.Condition(self._lock)
        self._current: Segment | None = None
        #: full (or old) segments no longer appended to, not yet renamed to *.seg
        self._unsealed: list[Segment] = []
        self._sealed: deque[Segment] = deque()
        #: written segments whose file could not be deleted yet
        self._undeleted: list[Path] = []
        self._total = 0
        self._pending_spans = 0
        self._seq = 0
        self._synced = 0
        #: records up to this sequence number were cut off after a failed fsync
        self._failed_seq = 0
        self._next_id = 1
        self._closed = False
        self._refusing = False
        self.appended_spans = 0
        #: the last failure of a step after durability (sealing, deleting); None when fine
        self.error: str | None = None
        self.errors = 0

    # -- start -------------------------------------------------------------
    def recover(self) -> int:
        """Seal what a previous run left behind; returns the number of segments to replay."""
        ids: list[int] = []
        for path in self.dir.glob(f"*{ARROW_SUFFIX}"):
            path.unlink()
        for path in self.dir.iterdir():
            if path.suffix in (OPEN_SUFFIX, SEALED_SUFFIX) and path.stem.isdigit():
                ids.append(int(path.stem))
        for path in sorted(self.dir.glob(f"*{OPEN_SUFFIX}")):
            if not path.stem.isdigit():
                continue
            data = path.read_bytes()
            _, valid = read_records(data)
            if valid == 0:
                path.unlink()
                continue
            if valid != len(data):
                log.warning("spool: dropping a torn, unacknowledged tail of %d bytes in %s",
                            len(data) - valid, path.name)
                with open(path, "r+b") as fh:
                    fh.truncate(valid)
                    fh.flush()
                    os.fsync(fh.fileno())
            path.rename(path.with_suffix(SEALED_SUFFIX))
        self._fsync_dir()
        with self._lock:
            for path in sorted(self.dir.glob(f"*{SEALED_SUFFIX}"), key=lambda p: int(p.stem)):
                size = path.stat().st_size
                records, _ = read_records(path.read_bytes())
                spans = count_spans(records)
                self._sealed.append(Segment(int(path.stem), path, size=size, spans=spans,
                                            synced_size=size, synced_spans=spans))
                self._total += size
                self._pending_spans += spans
            self._next_id = max(ids, default=0) + 1
            return len(self._sealed)

    # -- intake ------------------------------------------------------------
    def append(self, payload: bytes, spans: int) -> None:
        """Write one request's spans and return once they are on disk.

        Raises :class:`SpoolFull`, :class:`SpoolUnavailable` or
        :class:`SpoolClosed` when the record is not durable; never once it is.
        """
        record = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        with self._lock:
            if self._closed:
                raise SpoolClosed("the collector is shutting down")
            if self._total + len(record) > self.max_bytes and self._total > 0:
                self._refusing = True
                raise SpoolFull(
                    f"spool holds {self._total // 1_000_000} MB waiting for storage "
                    f"(limit {self.max_bytes // 1_000_000} MB)"
                )
            seg = self._current
            if seg is None:
                seg = self._open_segment()
            try:
                _write_all(seg.fd, record)
            except OSError as exc:
                # the other records stay; a part of this one must not (or nothing after it)
                if not self._try_truncate(seg, seg.size):
                    self._detach_locked()
                raise SpoolUnavailable(f"cannot write to the spool ({exc}); retry later") \
                    from exc
            seg.size += len(record)
            seg.spans += spans
            self._total += len(record)
            self._pending_spans += spans
            self.appended_spans += spans
            self._seq += 1
            mine = self._seq
            if seg.size >= self.segment_bytes or seg.spans >= self.segment_spans:
                self._detach_locked()
        self._sync(mine)
        # durable from here on: whatever fails now is the spool's to retry, not the client's
        self._seal_ready()

    def _sync(self, mine: int) -> None:
        """Make records up to sequence number ``mine`` durable (one fsync for many)."""
        with self._sync_lock:
            if self._synced >= mine:
                return  # another request's fsync already covered this record
            if mine <= self._failed_seq:
                raise SpoolUnavailable("the spool's disk failed before this request was "
                                       "durable; retry later")
            with self._lock:
                target = self._seq
                segments = [s for s in self._writable() if s.synced_size < s.size]
                covered = [(s, s.size, s.spans) for s in segments]
                fds = [os.dup(s.fd) for s in segments]  # a dup: sealing may close the original
            try:
                for fd in fds:
                    os.fsync(fd)
            except OSError as exc:
                self._sync_failed(target, exc)
                raise SpoolUnavailable(f"cannot fsync the spool ({exc}); retry later") from exc
            finally:
                for fd in fds:
                    os.close(fd)
            with self._lock:
                for seg, size, spans in covered:
                    seg.synced_size = max(seg.synced_size, size)
                    seg.synced_spans = max(seg.synced_spans, spans)
            self._synced = max(self._synced, target)

    def _sync_failed(self, target: int, exc: OSError) -> None:
        """After a failed fsync nothing unsynced can be trusted: cut it off, refuse it."""
        log.error("spool: fsync failed (%s); refusing the requests it covered", exc)
        with self._lock:
            self._failed_seq = max(self._failed_seq, self._seq)
            for seg in list(self._writable()):
                self._cut_back(seg)

    def _writable(self) -> list[Segment]:
        segs = [s for s in self._unsealed if s.fd >= 0]
        if self._current is not None:
            segs.append(self._current)
        return segs

    def _cut_back(self, seg: Segment) -> None:
        """Drop what is not durable in ``seg`` and append no more to it (lock held)."""
        if seg.size > seg.synced_size and not self._try_truncate(seg, seg.synced_size):
            log.error("spool: could not cut %s back to its durable %d bytes yet (retried "
                      "when it is sealed)", seg.path.name, seg.synced_size)
        self._total -= seg.size - seg.synced_size
        self._pending_spans -= seg.spans - seg.synced_spans
        seg.size, seg.spans = seg.synced_size, seg.synced_spans
        if seg is self._current:
            self._detach_locked()

    def _try_truncate(self, seg: Segment, size: int) -> bool:
        try:
            if seg.fd >= 0:
                os.ftruncate(seg.fd, size)
            else:
                os.truncate(seg.path, size)
        except OSError:
            return False
        return True

    # -- sealing -------------------------------------------------------------
    def seal_if_due(self, force: bool = False) -> bool:
        """Seal the open segment when it is old enough (or ``force``); retry failed steps.

        Called by the writer: it also retries seals and deletions that failed
        before. Never raises for the disk: failures show in :attr:`error`.
        """
        due = False
        with self._lock:
            seg = self._current
            if seg is not None and seg.size > 0 and (
                    force or time.monotonic() - seg.created >= self.segment_age_s):
                self._detach_locked()
                due = True
            target = self._seq
        with contextlib.suppress(SpoolUnavailable):  # the error is recorded; retried next time
            self._sync(target)
        self._seal_ready()
        self._retry_deletes()
        return due

    def _open_segment(self) -> Segment:
        path = self.dir / f"{self._next_id:016d}{OPEN_SUFFIX}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise SpoolUnavailable(f"cannot create a spool segment ({exc}); retry later") \
                from exc
        seg = Segment(self._next_id, path, fd=fd)
        self._next_id += 1
        self._current = seg
        return seg

    def _detach_locked(self) -> None:
        """The open segment takes no more records; it is sealed once they are durable."""
        seg = self._current
        if seg is None:
            return
        self._current = None
        if seg.size == 0:
            self._close_fd(seg)
            with contextlib.suppress(OSError):
                seg.path.unlink()
            return
        self._unsealed.append(seg)

    def _seal_ready(self) -> None:
        """Seal every detached segment whose records are all durable; never raises."""
        with self._lock:
            ready = [s for s in self._unsealed if s.synced_size >= s.size]
            for seg in ready:
                try:
                    self._finish_seal(seg)
                except OSError as exc:
                    self._failed(f"cannot seal spool segment {seg.path.name}: {exc}")
                    return
                self._unsealed.remove(seg)
                self._insert_sealed(seg)
                self._sealed_cv.notify_all()
            if ready:
                self._fine()

    def _finish_seal(self, seg: Segment) -> None:
        """close, rename ``.open`` -> ``.seg``, fsync the directory: each step repeatable."""
        if seg.fd >= 0:
            if os.fstat(seg.fd).st_size > seg.size:  # a cut that did not happen before
                os.ftruncate(seg.fd, seg.size)
                os.fsync(seg.fd)
            self._close_fd(seg)
        if seg.path.suffix == OPEN_SUFFIX:
            sealed = seg.path.with_suffix(SEALED_SUFFIX)
            os.rename(seg.path, sealed)
            seg.path = sealed
        self._fsync_dir()

    def _insert_sealed(self, seg: Segment) -> None:
        """Keep ``_sealed`` in id order (a seal retried later is still the older one)."""
        if not self._sealed or self._sealed[-1].id < seg.id:
            self._sealed.append(seg)
            return
        ordered = sorted([*self._sealed, seg], key=lambda s: s.id)
        self._sealed.clear()
        self._sealed.extend(ordered)

    @staticmethod
    def _close_fd(seg: Segment) -> None:
        if seg.fd >= 0:
            fd, seg.fd = seg.fd, -1
            with contextlib.suppress(OSError):
                os.close(fd)

    def _fsync_dir(self) -> None:
        fsync_path(self.dir)

    def _failed(self, message: str) -> None:
        if self.error != message:
            log.error("spool: %s (retrying)", message)
        self.error = message
        self.errors += 1

    def _fine(self) -> None:
        if self.error is not None and not self._undeleted:
            log.info("spool: working again")
            self.error = None

    # -- writer side -----------------------------------------------------------
    def take(self, limit: int) -> list[Segment]:
        """Up to ``limit`` sealed segments, oldest first (they stay on disk until done())."""
        with self._lock:
            return list(self._sealed)[:limit]

    def wait_sealed(self, timeout: float) -> None:
        with self._lock:
            if not self._sealed:
                self._sealed_cv.wait(timeout)

    def done(self, seg: Segment) -> None:
        """The segment is in ClickHouse: forget it (a failed delete is retried later)."""
        with self._lock:
            try:
                self._sealed.remove(seg)
            except ValueError:
                return
            self._total -= seg.size
            self._pending_spans -= seg.spans
            self._refusing = False
            try:
                seg.path.unlink(missing_ok=True)
            except OSError as exc:
                # written already: a replay of it would be recognized by its dedup token
                self._undeleted.append(seg.path)
                self._failed(f"cannot delete written spool segment {seg.path.name}: {exc}")

    def _retry_deletes(self) -> None:
        with self._lock:
            while self._undeleted:
                try:
                    self._undeleted[0].unlink(missing_ok=True)
                except OSError:
                    return
                self._undeleted.pop(0)
            self._fine()

    # -- state ---------------------------------------------------------------
    @property
    def total_bytes(self) -> int:
        return self._total

    @property
    def pending_spans(self) -> int:
        """Spans acknowledged and not yet written (incl. segments replayed after a restart)."""
        return self._pending_spans

    @property
    def segments(self) -> int:
        with self._lock:
            return (len(self._sealed) + len(self._unsealed)
                    + (1 if self._current is not None else 0))

    @property
    def sealed_waiting(self) -> int:
        with self._lock:
            return len(self._sealed)

    @property
    def is_empty(self) -> bool:
        with self._lock:
            return (not self._sealed and not self._unsealed
                    and (self._current is None or self._current.size == 0))

    @property
    def full(self) -> bool:
        """True since a request was refused for space, until a segment is written."""
        return self._refusing

    def close_intake(self) -> None:
        """No more appends; seal what is open so the writer can flush it."""
        with self._lock:
            self._closed = True
            self._detach_locked()
            target = self._seq
        with contextlib.suppress(SpoolUnavailable):
            self._sync(target)
        self._seal_ready()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
