"""The writer's last look at a converted segment before its insert: repeats and claims.

Conversion sees one chunk at a time; two things need more than a chunk:

- a span written in an EARLIER segment (an exporter retrying a request whose
  acknowledgement it lost) is dropped here, by its key in the
  :class:`~spanledger.collector.recent_keys.RecentKeys` window;
- aggregate and duplicate claims the chunk could not settle are checked against the
  whole segment and the store (:func:`spanledger.collector.claims.decide`); a rejected
  claim's row is replaced by the span as a call.

Both are rare for honest traffic, so the segment's file is read and written again
only when one of them applies; otherwise this costs one index lookup.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from spanledger.collector import claims as claim_check
from spanledger.collector.recent_keys import RecentKeys, hash_ids, money_rows
from spanledger.collector.segment_conversion import Converted, write_stream
from spanledger.store.base import Store


@dataclass
class Screened:
    """What the screen did to one segment."""

    #: GenAI spans dropped: written before, in an earlier segment
    repeats: int = 0
    accepted: int = 0
    #: claims rejected here, by kind
    rejected: Counter[str] = field(default_factory=Counter)


def money_key_array(result: Converted) -> np.ndarray:
    return np.frombuffer(result.money_keys, dtype=np.uint64)


def screen(result: Converted, recent: RecentKeys | None, store: Store | None,
           scratch: Path) -> Screened:
    """Apply repeats and claims to ``result`` (its file, rows and counters change in place
    when they do). Raises StoreError when the store cannot be asked about a claim."""
    done = Screened()
    keys = money_key_array(result)
    repeated = recent.contains(keys) if recent is not None and len(keys) else None
    has_repeats = repeated is not None and bool(repeated.any())
    if (not has_repeats and not result.claims) or not result.rows:
        return done
    with pa.memory_map(result.file) as source:
        table = pa.ipc.open_stream(source).read_all()
    before = table.num_rows
    if has_repeats:
        assert repeated is not None
        gone = np.unique(keys[repeated])
        row_keys = hash_ids(table["TraceId"], table["SpanId"])
        drop = np.isin(row_keys, gone) & money_rows(table).to_numpy(zero_copy_only=False)
        table = table.filter(pa.array(~drop))
        done.repeats = before - table.num_rows
    if result.claims:
        verdicts = claim_check.decide(table, result.claims, store)
        done.accepted = verdicts.accepted
        if verdicts.rejected:
            table = claim_check.with_rejections(table, verdicts.rejected)
            done.rejected.update(c.kind for c in verdicts.rejected)
            for key, amount in claim_check.counter_moves(verdicts.rejected).items():
                result.counters[key] = result.counters.get(key, 0) + amount
    if done.repeats or done.rejected:
        write_stream(table, scratch)
        result.file = str(scratch)
        result.rows = table.num_rows
    return done
