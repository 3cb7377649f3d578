"""One converted segment into the store, with the rows the store refuses set aside.

A segment is normally one insert. When ClickHouse refuses it for its data (a
value out of range, spans on too many days for one insert; see
:attr:`~spanledger.store.base.StoreError.is_data_error`), retrying the same
insert can never succeed, and before this module it stopped all ingestion.
Instead the segment's rows are split and the pieces inserted one by one, each
failing piece split again, down to the single rows that fail: those are
returned for the quarantine, everything else is written.

Replays stay exact. Pieces are cut deterministically from the segment's
table (halves by row position; for "too many partitions", groups of days),
and each piece's dedup token is its parent's plus its place (``token:0-512``),
so a crash halfway replays the same pieces with the same tokens and
ClickHouse skips the ones it already has.

Two limits:

- Splitting stops after :data:`BISECT_BUDGET` inserts per segment (pieces
  already cut are still tried, one more per level); a piece still failing then
  is set aside whole (its spans all quarantined, with the error, good ones
  too), so a segment of nothing but bad rows cannot take hours.
- A materialized view that fails after the table took the rows (ClickHouse
  writes the table first and views are not transactional) cannot be undone.
  Splitting would then insert the rows into ``otel_traces`` a second time, so
  instead the same insert is repeated with the same token while ignoring view
  errors: the table and every view that took the block keep it once, the failed
  view lacks it, and its spans are recorded as ``view_failed``. The collector
  takes out beforehand every value known to break the views (times past the
  types' ranges, see :mod:`~spanledger.collector.segment_conversion`), so this
  is the path for the unforeseen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from spanledger.collector import quarantine as q
from spanledger.collector.segment_conversion import write_stream
from spanledger.store.base import Inserted, StoreError

log = logging.getLogger(__name__)

#: inserts one segment may spend on finding its bad rows
BISECT_BUDGET = 256
#: days per piece when a block spans too many partitions (ClickHouse allows 100 per
#: insert; the table partitions by the engine's local day, so a margin for time zones)
DAYS_PER_PIECE = 50
_NS_PER_DAY = 86_400 * 1_000_000_000
_IGNORE_VIEW_ERRORS = {"materialized_views_ignore_errors": 1}

#: (file, dedup token, extra settings) -> what the store did; raises StoreError
InsertFile = Callable[[str, str, dict[str, Any] | None], Inserted]


@dataclass
class Outcome:
    """What became of a segment's rows."""

    rows: int
    #: rows the table gained (a replay the store recognized adds nothing)
    written: int = 0
    #: spans for the quarantine: refused by the store, or missed by a failing view
    rejected: list[q.QuarantinedSpan] = field(default_factory=list)
    #: rows refused (not written anywhere)
    refused: int = 0

    @property
    def deduplicated(self) -> int:
        """Rows the store already had (a replay after a crash)."""
        return max(self.rows - self.written - self.refused, 0)


def _written(inserted: Inserted) -> int:
    return inserted.rows if inserted.written is None else inserted.written


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Isolation:
    """Insert one segment's file; on a data error, find and set aside the failing rows.

    ``scratch`` is a path prefix for the pieces' temporary files (in the spool
    directory, so a leftover is cleaned up with the segment's other files).
    """

    def __init__(self, insert: InsertFile, scratch: str, segment: str) -> None:
        self._insert = insert
        self._scratch = scratch
        self._segment = segment
        self._budget = BISECT_BUDGET
        self._files = 0

    def run(self, file: str, token: str, rows: int) -> Outcome:
        """Raises StoreError for anything but a data error (the caller retries later)."""
        outcome = Outcome(rows)
        try:
            outcome.written = _written(self._insert(file, token, None))
            return outcome
        except StoreError as exc:
            if not exc.is_data_error:
                raise
            first = exc
        log.warning("segment %s: the store refused its rows (%s); isolating the rows it "
                    "refuses", self._segment, _first_line(first))
        with pa.memory_map(file) as source:
            table = pa.ipc.open_stream(source).read_all()
        self._isolate(table, token, first, outcome)
        return outcome

    def _isolate(self, table: pa.Table, token: str, error: StoreError, outcome: Outcome) -> None:
        """Depth first, left to right: the same order, pieces and tokens on every replay."""
        work: list[tuple[pa.Table, str, StoreError | None]] = [(table, token, error)]
        while work:
            piece, piece_token, failed = work.pop()
            if failed is None:
                failed = self._try(piece, piece_token, outcome)
                if failed is None:
                    continue
            if failed.in_view:
                self._view_failed(piece, piece_token, failed, outcome)
                continue
            children = self._split(piece, piece_token, failed)
            if not children:
                self._refuse(piece, failed, outcome)
                continue
            work.extend((child, child_token, None) for child, child_token in reversed(children))

    def _try(self, piece: pa.Table, token: str, outcome: Outcome) -> StoreError | None:
        """Insert one piece; its data error, or None once it is in."""
        self._budget -= 1
        path = self._write(piece)
        try:
            outcome.written += _written(self._insert(path, token, None))
        except StoreError as exc:
            if not exc.is_data_error:
                raise
            return exc
        finally:
            Path(path).unlink(missing_ok=True)
        return None

    def _split(self, piece: pa.Table, token: str,
               error: StoreError) -> list[tuple[pa.Table, str]]:
        """The piece's parts, or [] when it is one row or the budget is spent."""
        n = piece.num_rows
        if n <= 1 or self._budget <= 0:
            return []
        if error.code == 252 and "Timestamp" in piece.column_names:  # too many partitions
            groups = _day_groups(piece)
            if len(groups) > 1:
                return [(piece.take(idx), f"{token}:days{i}") for i, idx in enumerate(groups)]
        mid = n // 2
        return [(piece.slice(0, mid), f"{token}:0-{mid}"), (piece.slice(mid), f"{token}:{mid}-{n}")]

    def _refuse(self, piece: pa.Table, error: StoreError, outcome: Outcome) -> None:
        detail = _first_line(error)
        if piece.num_rows > 1:
            detail += (f" (refused with {piece.num_rows - 1} other span(s) of a block that "
                       f"was not split further: {BISECT_BUDGET} inserts spent)")
        outcome.refused += piece.num_rows
        outcome.rejected += [q.QuarantinedSpan.from_row(row, q.STORE_REJECTED, detail,
                                                        self._segment)
                             for row in q.rows_of(piece)]
        log.error("segment %s: %d span(s) quarantined: %s", self._segment, piece.num_rows,
                  _first_line(error))

    def _view_failed(self, piece: pa.Table, token: str, error: StoreError,
                     outcome: Outcome) -> None:
        """The table has the rows; repeat the insert so every other view has them once."""
        path = self._write(piece)
        try:
            again = self._insert(path, token, _IGNORE_VIEW_ERRORS)
        finally:
            Path(path).unlink(missing_ok=True)
        outcome.written += (error.written if error.written is not None else piece.num_rows)
        outcome.written += _written(again) if again.written is not None else 0
        detail = ("stored in otel_traces, but a materialized view failed on its block: "
                  + _first_line(error))
        outcome.rejected += [q.QuarantinedSpan.from_row(row, q.VIEW_FAILED, detail,
                                                        self._segment)
                             for row in q.rows_of(piece)]
        log.error("segment %s: a materialized view failed on %d span(s) that are in "
                  "otel_traces: %s", self._segment, piece.num_rows, _first_line(error))

    def _write(self, piece: pa.Table) -> str:
        self._files += 1
        path = f"{self._scratch}.{self._files}.piece.arrows"
        write_stream(piece, path)
        return path


def _day_groups(piece: pa.Table) -> list[pa.Array]:
    """Row indices per run of :data:`DAYS_PER_PIECE` consecutive UTC days, rows kept in order."""
    days = pc.divide(piece["Timestamp"].cast(pa.int64()), _NS_PER_DAY)
    distinct = pc.unique(days).sort()
    slot = pc.divide(pc.index_in(days, value_set=distinct), DAYS_PER_PIECE)
    groups = []
    for value in pc.unique(slot).sort().to_pylist():
        groups.append(pc.indices_nonzero(pc.equal(slot, value)))
    return groups
