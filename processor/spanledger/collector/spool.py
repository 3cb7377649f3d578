"""The on-disk spool (write-ahead log): a request is acknowledged only once it is durable.

Receivers append each request's validated spans as one record
(``<u32 length><u32 crc32><ExportTraceServiceRequest bytes>``) to the open
segment file and return only after ``fsync``. Concurrent requests share one
``fsync`` (group commit): whoever syncs first covers every record written
before it. Segments are sealed (fsynced, renamed ``*.open`` -> ``*.seg``) by
size, span count or age; the writer turns each sealed segment into one
ClickHouse insert whose dedup token is the sha256 of the segment's bytes,
then deletes it. After a crash, :meth:`Spool.recover` truncates a torn tail
(a record that never got its ``fsync``, so was never acknowledged) and seals
the leftovers; replaying a segment gives the same bytes, so the same token,
so ClickHouse inserts it at most once, through every materialized view.

Memory stays bounded: the spool holds nothing in RAM but counters. When the
segments waiting on disk exceed ``max_bytes`` (storage down for a while),
:meth:`append` raises :class:`SpoolFull` and receivers answer UNAVAILABLE /
503 so SDK exporters retry later.
"""

from __future__ import annotations

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


class SpoolFull(Exception):
    """Too much is waiting for storage: the client should retry later."""


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
        self._sealed: deque[Segment] = deque()
        self._total = 0
        self._seq = 0
        self._synced = 0
        self._next_id = 1
        self._closed = False
        self._refusing = False
        self.appended_spans = 0

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
                self._sealed.append(Segment(int(path.stem), path, size=size))
                self._total += size
            self._next_id = max(ids, default=0) + 1
            return len(self._sealed)

    # -- intake ------------------------------------------------------------
    def append(self, payload: bytes, spans: int) -> None:
        """Write one request's spans and return once they are on disk."""
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
            _write_all(seg.fd, record)
            seg.size += len(record)
            seg.spans += spans
            self._total += len(record)
            self.appended_spans += spans
            self._seq += 1
            mine = self._seq
            if seg.size >= self.segment_bytes or seg.spans >= self.segment_spans:
                self._seal_locked()
        self._sync(mine)

    def _sync(self, mine: int) -> None:
        with self._sync_lock:
            if self._synced >= mine:
                return  # another request's fsync already covered this record
            with self._lock:
                target = self._seq
                fd = os.dup(self._current.fd) if self._current is not None else -1
            if fd >= 0:  # a dup: sealing may close the original meanwhile
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            self._synced = max(self._synced, target)

    # -- sealing -------------------------------------------------------------
    def seal_if_due(self, force: bool = False) -> bool:
        with self._lock:
            seg = self._current
            if seg is None or seg.size == 0:
                return False
            if force or time.monotonic() - seg.created >= self.segment_age_s:
                self._seal_locked()
                return True
            return False

    def _open_segment(self) -> Segment:
        seg = Segment(self._next_id, self.dir / f"{self._next_id:016d}{OPEN_SUFFIX}")
        self._next_id += 1
        seg.fd = os.open(seg.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._current = seg
        return seg

    def _seal_locked(self) -> None:
        seg = self._current
        if seg is None:
            return
        self._current = None
        os.fsync(seg.fd)
        os.close(seg.fd)
        seg.fd = -1
        sealed = seg.path.with_suffix(SEALED_SUFFIX)
        seg.path.rename(sealed)
        seg.path = sealed
        self._fsync_dir()
        self._sealed.append(seg)
        self._sealed_cv.notify_all()

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

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
        """The segment is in ClickHouse: forget it."""
        with self._lock:
            try:
                self._sealed.remove(seg)
            except ValueError:
                return
            self._total -= seg.size
            self._refusing = False
        seg.path.unlink(missing_ok=True)

    # -- state ---------------------------------------------------------------
    @property
    def total_bytes(self) -> int:
        return self._total

    @property
    def segments(self) -> int:
        with self._lock:
            return len(self._sealed) + (1 if self._current is not None else 0)

    @property
    def is_empty(self) -> bool:
        with self._lock:
            return not self._sealed and (self._current is None or self._current.size == 0)

    @property
    def full(self) -> bool:
        """True since a request was refused for space, until a segment is written."""
        return self._refusing

    def close_intake(self) -> None:
        """No more appends; seal what is open so the writer can flush it."""
        with self._lock:
            self._closed = True
            if self._current is not None:
                if self._current.size:
                    self._seal_locked()
                else:
                    os.close(self._current.fd)
                    self._current.path.unlink(missing_ok=True)
                    self._current = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
