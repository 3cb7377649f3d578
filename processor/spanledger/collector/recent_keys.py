"""A span is stored once: the (TraceId, SpanId) of recent GenAI spans, across segments.

Within a segment a repeated span is dropped by the conversion, and a whole segment
replayed after a crash is skipped by its insert deduplication token. What neither
sees is an exporter that retries the same request after its acknowledgement was lost:
the same bytes land in a LATER segment, with another token. So the writer keeps the
keys of the GenAI spans (the rows money depends on: those with a cost status) of the
segments it wrote, and drops a span whose key it has already written.

The index is numpy arrays of 64-bit hashes, 8 bytes a span, in generations: the open
one grows segment by segment (kept sorted by merging, which is linear), and is closed
when it holds ``generation`` keys; the oldest closed one is dropped when the window is
full. A lookup is a binary search per generation (a 35,000-span segment against a
4M-key window: about 12 ms). So the window it guarantees is exact: the last
``capacity`` GenAI spans written since the collector started, at least (up to one
generation more). It starts empty at each start; the replay of the spool after a
crash is written first, so a retry of a request that was in it is still caught.

A 64-bit hash of the 24 id bytes: two different spans collide with probability about
``capacity / 2**64`` per span (below 1e-12 at the default), and a collision drops a
span, never adds one.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spanledger import semconv

DEFAULT_CAPACITY = 4 * 1024 * 1024
GENERATION = 512 * 1024

_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xC2B2AE3D27D4EB4F)
_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10, dtype=np.uint8)
_HEX[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16, dtype=np.uint8)
_HEX[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16, dtype=np.uint8)
_SHIFTS = np.arange(60, -1, -4, dtype=np.uint64)


def _hex_words(column: pa.ChunkedArray | pa.Array, width: int) -> np.ndarray | None:
    """Fixed-width lowercase-hex strings as (rows, width/16) uint64 words; None when a
    value is not ``width`` hex digits (ids are validated at intake, so that is rare)."""
    try:
        fixed = column.cast(pa.binary(width))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    array = fixed.combine_chunks() if isinstance(fixed, pa.ChunkedArray) else fixed
    if array.null_count:
        return None
    raw = np.frombuffer(array.buffers()[1], dtype=np.uint8,
                        count=len(array) * width, offset=array.offset * width)
    nibbles = _HEX[raw]
    if nibbles.size and nibbles.max() == 255:
        return None
    nibbles = nibbles.astype(np.uint64).reshape(len(array), width // 16, 16)
    return np.bitwise_or.reduce(nibbles << _SHIFTS, axis=2)


def hash_ids(trace_ids: pa.ChunkedArray | pa.Array, span_ids: pa.ChunkedArray | pa.Array
             ) -> np.ndarray:
    """One uint64 per (TraceId, SpanId) row."""
    trace = _hex_words(trace_ids, 32)
    span = _hex_words(span_ids, 16)
    if trace is None or span is None:  # not canonical ids: hash the text instead
        return _hash_text(trace_ids, span_ids)
    with np.errstate(over="ignore"):
        return (trace[:, 0] * _K1) ^ (trace[:, 1] * _K2) ^ span[:, 0]


def _hash_text(trace_ids: pa.ChunkedArray | pa.Array,
               span_ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    import hashlib

    out = np.empty(len(trace_ids), dtype=np.uint64)
    for i, (t, s) in enumerate(zip(trace_ids.to_pylist(), span_ids.to_pylist(), strict=True)):
        digest = hashlib.blake2b(f"{t}:{s}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little")
    return out


def money_rows(table: pa.Table) -> pa.Array:
    """Rows that carry a cost status (what the rollups count: GenAI and priced calls)."""
    status = pc.map_lookup(table["SpanAttributes"], semconv.COST_STATUS, "first")
    return pc.is_valid(status)


def money_keys(table: pa.Table) -> np.ndarray:
    """The hashed ids of the table's GenAI rows (see :func:`money_rows`)."""
    if table.num_rows == 0:
        return np.empty(0, dtype=np.uint64)
    rows = table.filter(money_rows(table))
    return hash_ids(rows["TraceId"], rows["SpanId"])


class RecentKeys:
    """The hashed ids of the last ``capacity`` GenAI spans written (see the module doc)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, generation: int = GENERATION) -> None:
        self.capacity = capacity
        self.generation = max(1, min(generation, capacity))
        self._closed: list[np.ndarray] = []
        self._open = np.empty(0, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._open) + sum(len(g) for g in self._closed)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """A bool per key: written before (within the window)."""
        found = np.zeros(len(keys), dtype=bool)
        if not len(keys) or not len(self):
            return found
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        hit = np.zeros(len(keys), dtype=bool)
        for generation in (self._open, *self._closed):
            if not len(generation):
                continue
            at = np.searchsorted(generation, ordered)
            at[at == len(generation)] = 0
            hit |= generation[at] == ordered
        found[order] = hit
        return found

    def add(self, keys: np.ndarray) -> None:
        """Remember ``keys`` (a segment just written)."""
        if not len(keys) or self.capacity <= 0:
            return
        merged = np.concatenate([self._open, np.sort(keys)])
        self._open = np.sort(merged, kind="stable")  # two sorted runs: a linear merge
        if len(self._open) >= self.generation:  # closed whole: generations are in time order
            self._closed.insert(0, self._open)
            self._open = np.empty(0, dtype=np.uint64)
        # keep whole generations while the rest still covers the window
        while self._closed and len(self) - len(self._closed[-1]) >= self.capacity:
            self._closed.pop()
