"""The conversion jobs: a sealed spool segment -> a priced ``otel_traces`` Arrow file.

They run in worker processes (``batch.workers``); the writer plans them,
submits them and merges their results into one insert per segment.

Reading protobuf attributes from Python costs about a microsecond per
attribute, and a GenAI span has twenty: one core cannot convert as fast as
the receivers accept. So conversion runs in a small process pool (spawned,
never forked: the parent holds gRPC and chdb state). Each job reads the
segment file itself and writes an Arrow file next to it, so only a path goes
in and a path comes out. With ``workers: 0`` everything runs in the writer
thread (handy for debugging).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spanledger.collector.convert import Columns
from spanledger.collector.spool import ARROW_SUFFIX, read_records

if TYPE_CHECKING:
    from spanledger.collector.pricing_enricher import PricingEnricher

log = logging.getLogger(__name__)

#: one pricing enricher per prices file, per worker process (the catalog loads once)
_enrichers: dict[str | None, PricingEnricher] = {}


@dataclass
class Converted:
    """One chunk of a segment (or a whole segment), ready to insert."""

    #: the Arrow IPC stream file the worker wrote (in the spool directory)
    file: str
    rows: int
    duplicates: int
    counters: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: TraceId+SpanId bytes of every row (24 bytes each), to find repeats across chunks
    keys: bytes = b""

    def table(self) -> pa.Table:
        with pa.memory_map(self.file) as source:
            return pa.ipc.open_stream(source).read_all()


def _enricher(prices_file: str | None) -> PricingEnricher:
    enricher = _enrichers.get(prices_file)
    if enricher is None:
        from spanledger.collector.pricing_enricher import PricingEnricher

        enricher = _enrichers[prices_file] = PricingEnricher(prices_file)
    return enricher


def segment_token(path: str | Path) -> str:
    """The segment's dedup token: sha256 of its bytes (runs in a worker: ~0.1 s per 40 MB).

    A replay after a crash inserts the very same bytes, so ClickHouse
    recognizes (and skips) it, in otel_traces and in every view below it.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(4 << 20):
            digest.update(block)
    return "spanledger-seg-" + digest.hexdigest()


def plan_segment(path: str | Path, chunk_bytes: int) -> list[tuple[int, int]]:
    """The segment split into (offset, length) chunks of whole records (headers only)."""
    chunks: list[tuple[int, int]] = []
    size = Path(path).stat().st_size
    start = pos = 0
    with open(path, "rb") as fh:
        while pos + 8 <= size:
            fh.seek(pos)
            length = int.from_bytes(fh.read(4), "little")
            if pos + 8 + length > size:
                break
            pos += 8 + length
            if pos - start >= chunk_bytes:
                chunks.append((start, pos - start))
                start = pos
    if pos > start:
        chunks.append((start, pos - start))
    return chunks


def _chunk_file(segment: str | Path, offset: int) -> str:
    return f"{segment}.{offset}{ARROW_SUFFIX}"


def convert_chunk(path: str, offset: int, length: int, pricing: bool,
                  prices_file: str | None) -> Converted:
    """Decode, price and convert whole records at ``offset`` of a sealed segment.

    The result goes to an Arrow file next to the segment, which the store reads
    its own way (no pickling through the pool, no copy in the writer's process).
    """
    started = time.perf_counter()
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(length)
    records, valid = read_records(data)
    if valid != len(data):
        log.error("spool segment %s: corrupt record at byte %d; the rest of the chunk is lost",
                  path, offset + valid)
    cols = Columns()
    enricher = _enricher(prices_file) if pricing else None
    before = _snapshot(enricher)
    for payload in records:
        request = ExportTraceServiceRequest()
        request.ParseFromString(payload)
        cols.add(request, enricher)
    table = cols.table()
    out = _chunk_file(path, offset)
    write_stream(table, out)
    after = _snapshot(enricher)
    counters = {k: after[k] - before.get(k, 0) for k in after}
    return Converted(out, table.num_rows, cols.duplicates, counters,
                     time.perf_counter() - started, b"".join(cols.seen))


def _repeats_across(parts: list[Converted]) -> bool:
    """Does a (TraceId, SpanId) occur in two chunks (an SDK retry split by chunking)?"""
    if len(parts) < 2:
        return False
    seen: set[bytes] = set()
    for part in parts:
        keys = part.keys
        mine = {keys[i : i + 24] for i in range(0, len(keys), 24)}
        if not seen.isdisjoint(mine):
            return True
        seen |= mine
    return False


def _counters_of(parts: list[Converted]) -> dict[str, int]:
    counters: dict[str, int] = {}
    for p in parts:
        for k, v in p.counters.items():
            counters[k] = counters.get(k, 0) + v
    return counters


def segment_result(parts: list[Converted], merged_file: str | Path) -> Converted:
    """The segment's chunks as one Arrow file: the one insert (and dedup token) of the segment.

    A single chunk with rows is used as it is. Several are merged into
    ``merged_file``: one file is one insert block, so the dedup token always covers
    the same rows (and several small blocks would each travel the whole MV chain:
    measured 4x slower); a (TraceId, SpanId) repeated across chunks (an SDK retry
    split by chunking) is dropped on the way.
    """
    with_rows = [p for p in parts if p.rows]
    seconds = max((p.seconds for p in parts), default=0.0)
    if len(with_rows) > 1 or _repeats_across(parts):
        table, duplicates, counters = _merge(parts)
        write_stream(table.combine_chunks(), merged_file)
        return Converted(str(merged_file), table.num_rows, duplicates, counters, seconds)
    file = with_rows[0].file if with_rows else ""
    return Converted(file, sum(p.rows for p in parts), sum(p.duplicates for p in parts),
                     _counters_of(parts), seconds)


def _merge(parts: list[Converted]) -> tuple[pa.Table, int, dict[str, int]]:
    """One table for the whole segment, a (TraceId, SpanId) repeated across chunks dropped."""
    tables = [p.table() for p in parts]
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    duplicates = sum(p.duplicates for p in parts)
    counters = _counters_of(parts)
    if len(tables) > 1 and table.num_rows:
        keys = pc.binary_join_element_wise(table["TraceId"], table["SpanId"], "")
        if pc.count_distinct(keys).as_py() < table.num_rows:
            indexed = pa.table({"k": keys, "i": pa.array(range(table.num_rows), pa.int64())})
            first = indexed.group_by("k").aggregate([("i", "min")])["i_min"]
            keep = pc.sort_indices(first)
            table = table.take(pc.take(first, keep))
            duplicates += len(keys) - table.num_rows
    return table, duplicates, counters


def write_stream(table: pa.Table, path: str | Path) -> None:
    """``table`` as an Arrow IPC stream file (the format every store reads back)."""
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)


def _snapshot(enricher: PricingEnricher | None) -> dict[str, int]:
    return dict(vars(enricher.counters)) if enricher is not None else {}


def warm_up(pricing: bool, prices_file: str | None) -> bool:
    """Load the catalog in a fresh worker before the first real job."""
    if pricing:
        _enricher(prices_file)
    return True
