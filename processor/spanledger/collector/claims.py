"""Claims a span makes that its own attributes cannot prove, and how they are checked.

Two statuses take a span out of every sum: ``aggregate`` (its usage is already
carried by the calls below it) and ``duplicate`` (another span of the same
provider call carries the cost). A client could write either on a real call and
make it vanish from the bill, and an ``invoke_agent`` operation name does the
same for the collector's own aggregate rule. So the collector takes such a claim
only with evidence, in its trace, of the calls that carry the cost:

- ``aggregate``: the counted calls (``priced`` / ``unpriced``) of the span's trace
  carry at least its input and its output tokens;
- ``duplicate``: the span it names (``spanledger.duplicate_of``) is a counted call
  with the same input and output tokens.

A claim whose span has nothing to count (no usage, no per-call price) hides
nothing and is taken as it is.

Where the evidence is looked for, in order (the first place that has enough wins):

1. the converted chunk (the enricher: whole export requests; a service exports
   children before their parents, and the keeper of a call before its duplicate);
2. the whole spool segment (every chunk of the insert), by the writer;
3. the store: ``llm_cost_by_trace`` (the trace's counted tokens so far) and
   ``llm_calls`` (the keeper, in the same trace), by the writer, before the insert.

Evidence that arrives only later (a child exported after its parent by another
process) is not waited for: the claim is rejected, the span is stored as the call
it would be (priced or unpriced, with ``spanledger.claim.rejected``), counted,
and shown (``/metrics``, ``report spend`` notes). That choice and its cost are in
ARCHITECTURE.md ("Claims"): a hostile client cannot hide a call; an honest agent
span whose children reach the collector after it is counted twice, visibly.

A client that fabricates the evidence itself (a child span with the same tokens)
can under-report its own calls, as it could by not sending them at all:
``spanledger reconcile`` against the provider's bill is the control for that.

This module has the writer's half; the enricher does step 1 and hands over what it
could not settle as :class:`Claim` records.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from spanledger import semconv
from spanledger.store.base import Store

AGGREGATE = semconv.STATUS_AGGREGATE
DUPLICATE = semconv.STATUS_DUPLICATE
_COUNTED = (semconv.STATUS_PRICED, semconv.STATUS_UNPRICED)
#: trace ids per store query (a handful per segment; the list is a literal in the SQL)
_BATCH = 500


class Claim(NamedTuple):
    """A claim the enricher could not settle within its chunk (picklable: workers send it).

    The row was written as claimed; ``rejected`` is the whole attribute map the span
    gets when the claim is rejected (the call priced as the collector prices it,
    flagged with ``spanledger.claim.rejected``), and ``status`` its status then.
    """

    kind: str  # AGGREGATE | DUPLICATE
    trace_id: str
    span_id: str
    input_tokens: int
    output_tokens: int
    #: the span a duplicate names as its keeper ('' for an aggregate)
    keeper: str
    rejected: dict[str, str]
    status: str


@dataclass
class Verdicts:
    """What the writer decided for a segment's claims."""

    accepted: int = 0
    rejected: list[Claim] = field(default_factory=list)


def latest(claims: Iterable[Claim]) -> list[Claim]:
    """One claim per span (a chunk converted again after a failure repeats its claims)."""
    out: dict[tuple[str, str], Claim] = {}
    for claim in claims:
        out[(claim.trace_id, claim.span_id)] = claim
    return list(out.values())


def decide(table: pa.Table, claims: Sequence[Claim], store: Store | None) -> Verdicts:
    """Check ``claims`` against the segment's own rows, then the store (see the module doc).

    Raises StoreError when the store cannot be read (the writer retries the segment).
    """
    verdicts = Verdicts()
    present = _rows_present(table, claims)
    claims = [c for c in claims if (c.trace_id, c.span_id) in present]
    if not claims:
        return verdicts
    sums, keepers = segment_evidence(table, {c.trace_id for c in claims})
    open_aggregates = [c for c in claims if c.kind == AGGREGATE
                       and not _covers(sums.get(c.trace_id), c)]
    open_duplicates = [c for c in claims if c.kind == DUPLICATE
                       and not _same_tokens(keepers.get(c.keeper), c)]
    stored_sums = stored_trace_tokens(store, {c.trace_id for c in open_aggregates})
    stored_keepers = stored_calls(store, open_duplicates)
    for claim in claims:
        if claim.kind == AGGREGATE:
            have = _add(sums.get(claim.trace_id), stored_sums.get(claim.trace_id))
            ok = _covers(have, claim)
        else:
            ok = (_same_tokens(keepers.get(claim.keeper), claim)
                  or _same_tokens(stored_keepers.get((claim.trace_id, claim.keeper)), claim))
        if ok:
            verdicts.accepted += 1
        else:
            verdicts.rejected.append(claim)
    return verdicts


def _covers(have: tuple[int, int] | None, claim: Claim) -> bool:
    return have is not None and have[0] >= claim.input_tokens and have[1] >= claim.output_tokens


def _same_tokens(have: tuple[int, int] | None, claim: Claim) -> bool:
    return have is not None and have == (claim.input_tokens, claim.output_tokens)


def _add(a: tuple[int, int] | None, b: tuple[int, int] | None) -> tuple[int, int] | None:
    if a is None or b is None:
        return a or b
    return a[0] + b[0], a[1] + b[1]


def _rows_present(table: pa.Table, claims: Sequence[Claim]) -> set[tuple[str, str]]:
    """The claims' spans that are rows of the table (one may have been dropped since)."""
    if not claims or table.num_rows == 0:
        return set()
    traces = pa.array(sorted({c.trace_id for c in claims}), pa.string())
    rows = table.filter(pc.is_in(table["TraceId"], value_set=traces))
    return set(zip(rows["TraceId"].to_pylist(), rows["SpanId"].to_pylist(), strict=True))


def segment_evidence(table: pa.Table, traces: set[str]
                     ) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """Counted calls of ``traces`` among the segment's rows: (input, output) summed per
    trace, and per span id (the keepers a duplicate may name)."""
    from spanledger.pricing.usage import read_call

    sums: dict[str, tuple[int, int]] = {}
    keepers: dict[str, tuple[int, int]] = {}
    if not traces or table.num_rows == 0:
        return sums, keepers
    wanted = pa.array(sorted(traces), pa.string())
    rows = table.filter(pc.is_in(table["TraceId"], value_set=wanted))
    cols = rows.select(["TraceId", "SpanId", "ScopeName", "SpanAttributes"]).to_pylist()
    for row in cols:
        attrs = dict(row["SpanAttributes"])
        if attrs.get(semconv.COST_STATUS) not in _COUNTED:
            continue
        counts = read_call(attrs, row["ScopeName"] or None).counts
        tokens = (counts[0], counts[1]) if counts is not None else (0, 0)
        trace = row["TraceId"]
        sums[trace] = _add(sums.get(trace), tokens) or tokens
        keepers[row["SpanId"]] = tokens
    return sums, keepers


def _quoted(values: Iterable[str]) -> str:
    # ids are lowercase hex (validated at intake); anything else cannot match a row
    return ", ".join(f"'{v}'" for v in values if v.isalnum())


def stored_trace_tokens(store: Store | None, traces: set[str]) -> dict[str, tuple[int, int]]:
    """The counted input and output tokens the store already has per trace."""
    out: dict[str, tuple[int, int]] = {}
    ids = sorted(t for t in traces if t.isalnum())
    if store is None or not ids:
        return out
    for start in range(0, len(ids), _BATCH):
        sql = ("SELECT TraceId, sum(InputTokens), sum(OutputTokens) FROM llm_cost_by_trace "
               f"WHERE TraceId IN ({_quoted(ids[start:start + _BATCH])}) GROUP BY TraceId")
        for trace, inp, outp in store.query(sql):
            out[str(trace)] = (int(inp), int(outp))
    return out


def stored_calls(store: Store | None, claims: Sequence[Claim]
                 ) -> dict[tuple[str, str], tuple[int, int]]:
    """Counted calls the store has among the keepers duplicates name (same trace)."""
    out: dict[tuple[str, str], tuple[int, int]] = {}
    pairs = sorted({(c.trace_id, c.keeper) for c in claims
                    if c.keeper.isalnum() and c.trace_id.isalnum()})
    if store is None or not pairs:
        return out
    for start in range(0, len(pairs), _BATCH):
        batch = pairs[start:start + _BATCH]
        sql = ("SELECT TraceId, SpanId, InputTokens, OutputTokens FROM llm_calls "
               f"WHERE TraceId IN ({_quoted(t for t, _ in batch)}) "
               f"AND SpanId IN ({_quoted(s for _, s in batch)}) "
               "AND Status IN ('priced', 'unpriced')")
        for trace, span, inp, outp in store.query(sql):
            out[(str(trace), str(span))] = (int(inp), int(outp))
    return out


def with_rejections(table: pa.Table, rejected: Sequence[Claim]) -> pa.Table:
    """The table with each rejected claim's row replaced by its row as a call."""
    if not rejected:
        return table
    by_key = {(c.trace_id, c.span_id): c for c in rejected}
    keys = pc.binary_join_element_wise(table["TraceId"], table["SpanId"], ":")
    wanted = pa.array([f"{t}:{s}" for t, s in by_key], pa.string())
    mask = pc.is_in(keys, value_set=wanted)
    rows = table.filter(mask).to_pylist()
    for row in rows:
        claim = by_key[(row["TraceId"], row["SpanId"])]
        row["SpanAttributes"] = list(claim.rejected.items())
    replaced = pa.Table.from_pylist(rows, schema=table.schema)
    return pa.concat_tables([table.filter(pc.invert(mask)), replaced]).combine_chunks()


def counter_moves(rejected: Sequence[Claim]) -> dict[str, int]:
    """How the conversion's counters change when these claims are rejected."""
    moves: dict[str, int] = {}

    def move(key: str, amount: int) -> None:
        moves[key] = moves.get(key, 0) + amount

    for claim in rejected:
        move("aggregate" if claim.kind == AGGREGATE else "duplicate", -1)
        target = {semconv.STATUS_PRICED: "priced", semconv.STATUS_UNPRICED: "unpriced"}.get(
            claim.status, "no_usage")
        move(target, 1)
    return moves

