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

No span can stop a conversion: spans whose times do not fit the schema's
columns (they would overflow Arrow's int64 or a view's date arithmetic) are
found on the converted columns, taken out and the chunk converted again; if
converting a chunk still raises, it is done again request by request and then
span by span, so only the spans that really fail are set aside. Everything
set aside goes to a quarantine file beside the chunk's Arrow file (see
:mod:`~spanledger.collector.quarantine`), including records whose bytes fail
their checksum.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spanledger.collector import quarantine as q
from spanledger.collector.attribution_policy import unverified_rows
from spanledger.collector.bounds import Bounds
from spanledger.collector.claims import Claim, latest
from spanledger.collector.convert import Columns
from spanledger.collector.spool import ARROW_SUFFIX, read_records

if TYPE_CHECKING:
    from spanledger.collector.attribution_policy import AttributionPolicy
    from spanledger.collector.pricing_enricher import PricingEnricher

log = logging.getLogger(__name__)

#: one pricing enricher per prices file and bounds, per worker process (the catalog loads once)
_enrichers: dict[tuple[str | None, Bounds | None], PricingEnricher] = {}

#: ``Timestamp`` becomes a ``Date`` (the partition, ``llm_calls.Day``), which ends on
#: 2149-06-06: a later start would be filed under a wrapped-around day
START_LIMIT_NS = 65536 * 86_400 * 1_000_000_000
#: DateTime64(9) (and Arrow's int64 nanoseconds) end here; ``addNanoseconds(Timestamp,
#: Duration)`` in llm_cost_by_trace_mv overflows past it
TIME_LIMIT_NS = 1 << 63
#: suffix of a chunk's quarantine file (next to its Arrow file)
QUARANTINE_SUFFIX = ".quarantine" + ARROW_SUFFIX


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
    #: quarantine files written for this chunk (or segment): (path, spans by reason)
    quarantine: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    #: aggregate / duplicate claims the chunk could not settle (the writer checks them)
    claims: list[Claim] = field(default_factory=list)
    #: uint64 hashes of the GenAI rows' (TraceId, SpanId), for the writer's recent-keys index
    money_keys: bytes = b""

    @property
    def quarantined(self) -> int:
        return sum(sum(reasons.values()) for _, reasons in self.quarantine)

    def table(self) -> pa.Table:
        with pa.memory_map(self.file) as source:
            return pa.ipc.open_stream(source).read_all()


def _enricher(prices_file: str | None, bounds: Bounds | None = None) -> PricingEnricher:
    enricher = _enrichers.get((prices_file, bounds))
    if enricher is None:
        from spanledger.collector.pricing_enricher import PricingEnricher

        enricher = _enrichers[(prices_file, bounds)] = PricingEnricher(prices_file,
                                                                      bounds=bounds)
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
    """The segment split into (offset, length) chunks of whole records (headers only).

    Bytes after the last readable record header (a damaged length) stay in the
    last chunk, where conversion finds them failing their checksum and
    quarantines them instead of dropping them unseen.
    """
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
    if size > start:
        chunks.append((start, size - start))
    return chunks


def _chunk_file(segment: str | Path, offset: int) -> str:
    return f"{segment}.{offset}{ARROW_SUFFIX}"


def convert_chunk(path: str, offset: int, length: int, pricing: bool,
                  prices_file: str | None, policy: AttributionPolicy | None = None,
                  bounds: Bounds | None = None) -> Converted:
    """Decode, price and convert whole records at ``offset`` of a sealed segment.

    ``policy`` (a tokens file): each span's attribution checked against its token.

    The result goes to an Arrow file next to the segment, which the store reads
    its own way (no pickling through the pool, no copy in the writer's process);
    spans set aside go to a quarantine file beside it. Only I/O errors raise.
    ``bounds``: the per-call ceilings (default: :class:`~spanledger.collector.bounds.Bounds`).
    """
    started = time.perf_counter()
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(length)
    segment = Path(path).name
    records, valid = read_records(data)
    aside: list[q.QuarantinedSpan] = []
    if valid != len(data):
        log.error("spool segment %s: corrupt record at byte %d; the rest of the chunk is "
                  "quarantined as bytes", path, offset + valid)
        aside.append(q.QuarantinedSpan.from_bytes(
            data[valid:], q.UNDECODABLE,
            f"bytes {offset + valid}-{offset + len(data)} of the segment fail their checksum",
            segment))
    requests = []
    for number, payload in enumerate(records):
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(payload)
        except Exception as exc:  # a record that is not a request: keep its bytes
            aside.append(q.QuarantinedSpan.from_bytes(
                payload, q.UNDECODABLE, f"record {number} of the chunk at byte {offset}: "
                f"{type(exc).__name__}: {exc}", segment))
            continue
        requests.append(request)
    enricher = _enricher(prices_file, bounds) if pricing else None
    _forget_chunk(enricher)
    before = _snapshot(enricher)
    try:  # the fast path: nothing out of range (checked on the built columns), no error
        table, duplicates, keys = _convert(requests, enricher, policy=policy)
        clean = times_in_range(table)
    except Exception:
        clean = False
    if not clean:  # take out what the schema cannot hold, then try again
        for request in requests:
            aside += take_out_of_range(request, segment)
        before = _snapshot(enricher)
        try:
            table, duplicates, keys = _convert(requests, enricher, policy=policy)
        except Exception as exc:
            log.warning("spool segment %s: converting the chunk at byte %d failed (%s: %s); "
                        "converting it span by span", path, offset, type(exc).__name__, exc)
            before = _snapshot(enricher)
            table, duplicates, keys, failed = _convert_isolating(requests, enricher, segment,
                                                                 policy)
            aside += failed
    table, held, claims, money = _trusted(table, enricher, segment)
    aside += held
    out = _chunk_file(path, offset)
    write_stream(table, out)
    after = _snapshot(enricher)
    counters = {k: after[k] - before.get(k, 0) for k in after}
    if policy is not None:
        counters["unverified"] = unverified_rows(table)
    quarantined = []
    if aside:
        qfile = f"{path}.{offset}{QUARANTINE_SUFFIX}"
        q.write_entries(aside, qfile)
        quarantined.append((qfile, q.reasons_of(aside)))
    result = Converted(out, table.num_rows, duplicates, counters,
                       time.perf_counter() - started, keys, quarantined, claims, money)
    del requests, records, data, table
    _trim()
    return result


def _convert(requests: list[ExportTraceServiceRequest], enricher: PricingEnricher | None,
             seen: set[bytes] | None = None, policy: AttributionPolicy | None = None
             ) -> tuple[pa.Table, int, bytes]:
    """The requests' spans as one table (the fast path: one set of column lists)."""
    cols = Columns(policy)
    if seen is not None:
        cols.seen = seen
    for request in requests:
        cols.add(request, enricher)
    table = cols.table()
    return table, cols.duplicates, b"".join(cols.seen) if seen is None else b""


def _convert_isolating(requests: list[ExportTraceServiceRequest],
                       enricher: PricingEnricher | None, segment: str,
                       policy: AttributionPolicy | None = None
                       ) -> tuple[pa.Table, int, bytes, list[q.QuarantinedSpan]]:
    """Request by request, and span by span within a request that fails: only what fails
    is set aside. Slow, and only taken when the fast path raised."""
    tables: list[pa.Table] = []
    failed: list[q.QuarantinedSpan] = []
    seen: set[bytes] = set()
    duplicates = 0

    def attempt(batch: list[ExportTraceServiceRequest]) -> bool:
        nonlocal seen, duplicates
        trial = set(seen)  # a failure halfway must not leave its ids marked as seen
        try:
            table, dups, _ = _convert(batch, enricher, trial, policy)
        except Exception:
            return False
        tables.append(table)
        seen, duplicates = trial, duplicates + dups
        return True

    for request in requests:
        if attempt([request]):
            continue
        for rs, ss, span in spans_of(request):
            if not attempt([q.single_span_request(rs, ss, span)]):
                try:
                    _convert([q.single_span_request(rs, ss, span)], enricher, set(), policy)
                    reason = "it converts alone but not after the spans before it"
                except Exception as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                failed.append(q.QuarantinedSpan.from_otlp(
                    rs, ss, span, q.CONVERSION_FAILED, reason, segment))
    table = (pa.concat_tables(tables).combine_chunks() if tables
             else Columns().table())
    return table, duplicates, b"".join(seen), failed


def _forget_chunk(enricher: PricingEnricher | None) -> None:
    """Drop what an earlier chunk left in the enricher (a conversion that raised)."""
    if enricher is not None:
        enricher.take_set_aside()
        enricher.take_claims()


def _trusted(table: pa.Table, enricher: PricingEnricher | None, segment: str
             ) -> tuple[pa.Table, list[q.QuarantinedSpan], list[Claim], bytes]:
    """What the enricher decided about trust, applied to the chunk's table: spans out of
    bounds taken out for the quarantine, the claims for the writer, the GenAI rows' keys."""
    from spanledger.collector.recent_keys import money_keys

    if enricher is None:
        return table, [], [], b""
    table, held = hold_back(table, enricher.take_set_aside(), segment)
    return table, held, latest(enricher.take_claims()), money_keys(table).tobytes()


def hold_back(table: pa.Table, aside: list[tuple[str, str, str, str]], segment: str
              ) -> tuple[pa.Table, list[q.QuarantinedSpan]]:
    """Take the rows the enricher set aside (trace id, span id, reason, detail) out of
    ``table``, as quarantine entries; they are as they arrived (nothing was priced)."""
    if not aside or table.num_rows == 0:
        return table, []
    why = {(trace, span): (reason, detail) for trace, span, reason, detail in aside}
    keys = pc.binary_join_element_wise(table["TraceId"], table["SpanId"], ":")
    mask = pc.is_in(keys, value_set=pa.array([f"{t}:{s}" for t, s in why], pa.string()))
    entries = []
    for row in q.rows_of(table.filter(mask)):
        reason, detail = why[(row["TraceId"], row["SpanId"])]
        entries.append(q.QuarantinedSpan.from_row(row, reason, detail, segment))
    return table.filter(pc.invert(mask)), entries


def spans_of(request: ExportTraceServiceRequest) -> list[tuple[Any, Any, Any]]:
    return [(rs, ss, span) for rs in request.resource_spans for ss in rs.scope_spans
            for span in ss.spans]


def times_in_range(table: pa.Table) -> bool:
    """Do all starts and ends of a converted table fit the schema? (vectorized, ~free)

    Times past Arrow's int64 never get this far (building the columns fails);
    this catches the starts past the last ``Date`` and the ends (start + duration)
    past DateTime64(9).
    """
    if table.num_rows == 0:
        return True
    starts = table["Timestamp"].cast(pa.int64())
    if pc.max(starts).as_py() >= START_LIMIT_NS:
        return False
    room = pc.subtract(pa.scalar(TIME_LIMIT_NS - 1, pa.int64()), starts).cast(pa.uint64())
    return not pc.any(pc.greater(table["Duration"], room)).as_py()


def out_of_range(span: Any) -> str | None:
    """Why ``span``'s times cannot be stored, or None when they can."""
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if start >= START_LIMIT_NS:
        return (f"start time {start} ns is after 2149-06-06, the last day ClickHouse's "
                "Date holds")
    if end > start and end >= TIME_LIMIT_NS:
        return f"end time {end} ns is after 2262-04-11, the end of DateTime64(9)"
    for event in span.events:
        if event.time_unix_nano >= TIME_LIMIT_NS:
            return (f"event {event.name[:100]!r} time {event.time_unix_nano} ns is after "
                    "2262-04-11, the end of DateTime64(9)")
    return None


def take_out_of_range(request: ExportTraceServiceRequest,
                      segment: str) -> list[q.QuarantinedSpan]:
    """Remove the spans whose times do not fit the schema from ``request``; return them."""
    found: list[q.QuarantinedSpan] = []
    limit_start, limit_time = START_LIMIT_NS, TIME_LIMIT_NS
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            spans = ss.spans
            bad = []
            for i, span in enumerate(spans):
                # the common case costs two comparisons (no event loop, no function call)
                if (span.start_time_unix_nano < limit_start
                        and span.end_time_unix_nano < limit_time and not span.events):
                    continue
                why = out_of_range(span)
                if why is not None:
                    bad.append(i)
                    found.append(q.QuarantinedSpan.from_otlp(
                        rs, ss, span, q.TIMESTAMP_OUT_OF_RANGE, why, segment))
            for i in reversed(bad):
                del spans[i]
    return found


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
    ``merged_file``: one file is one insert (ClickHouse squashes its record batches
    into one block, measured: one part per table), so the dedup token always covers
    the same rows (several inserts would each travel the whole MV chain: measured
    4x slower). The merge copies record batches from file to file without
    assembling the table in memory; only when a (TraceId, SpanId) repeats across
    chunks (an SDK retry split by chunking) is the table built to drop the repeat.
    """
    with_rows = [p for p in parts if p.rows]
    seconds = max((p.seconds for p in parts), default=0.0)
    aside = [entry for p in parts for entry in p.quarantine]
    trust = {"claims": latest(c for p in parts for c in p.claims),
             "money_keys": b"".join(p.money_keys for p in parts)}
    if _repeats_across(parts):
        table, duplicates, counters = _merge(parts)
        write_stream(table.combine_chunks(), merged_file)
        return Converted(str(merged_file), table.num_rows, duplicates, counters, seconds,
                         quarantine=aside, **trust)
    if len(with_rows) > 1:
        _concatenate([p.file for p in with_rows], merged_file)
        return Converted(str(merged_file), sum(p.rows for p in parts),
                         sum(p.duplicates for p in parts), _counters_of(parts), seconds,
                         quarantine=aside, **trust)
    file = with_rows[0].file if with_rows else ""
    return Converted(file, sum(p.rows for p in parts), sum(p.duplicates for p in parts),
                     _counters_of(parts), seconds, quarantine=aside, **trust)


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


def _concatenate(files: list[str], merged_file: str | Path) -> None:
    """The record batches of several Arrow stream files, in order, as one stream file."""
    with pa.OSFile(str(merged_file), "wb") as sink:
        writer = None
        try:
            for file in files:
                with pa.memory_map(file) as source:
                    reader = pa.ipc.open_stream(source)
                    if writer is None:
                        writer = pa.ipc.new_stream(sink, reader.schema)
                    for batch in reader:
                        writer.write_batch(batch)
        finally:
            if writer is not None:
                writer.close()


def write_stream(table: pa.Table, path: str | Path) -> None:
    """``table`` as an Arrow IPC stream file (the format every store reads back)."""
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)


def _snapshot(enricher: PricingEnricher | None) -> dict[str, int]:
    return dict(vars(enricher.counters)) if enricher is not None else {}


def warm_up(pricing: bool, prices_file: str | None, bounds: Bounds | None = None) -> bool:
    """Load the catalog in a fresh worker before the first real job."""
    _arrow_without_pandas()
    if pricing:
        _enricher(prices_file, bounds)
    return True


def _trim() -> None:
    """Give the C heap's free memory back to the OS after a chunk (glibc; ~15 MB a worker).

    A chunk's protobuf messages and column lists are large, short-lived
    allocations; without this the worker's RSS stays at its high-water mark.
    """
    if _malloc_trim is not None:
        _malloc_trim(0)


def _load_malloc_trim() -> Any:
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return None


_malloc_trim = _load_malloc_trim() if sys.platform.startswith("linux") else None


class _NoPandas:
    """An import hook that says pandas is not installed (see :func:`_arrow_without_pandas`)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("not imported in a conversion worker")


def _arrow_without_pandas() -> None:
    """Keep pyarrow from importing pandas into a worker (~30 MB each, measured).

    pyarrow's first ``pa.array()`` imports pandas only to ask whether its input is
    a pandas object; conversion never hands it one. pyarrow asks once and
    remembers the answer, so the hook is in place for that one question only:
    anything that really wants pandas later still gets it.
    """
    if "pandas" in sys.modules:
        return
    hook = _NoPandas()
    sys.meta_path.insert(0, hook)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(hook)
