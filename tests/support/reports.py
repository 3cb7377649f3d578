"""Report fixtures: otel_traces rows as a collector writes them, into a fresh chdb store.

The reports read the rollups the materialized views build, so test data goes
in at the top (``otel_traces``) and flows through ``llm_calls`` into
``llm_cost_daily`` and ``llm_cost_by_trace`` exactly as in production.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from spanledger.store import Store, open_store, otel_traces_schema

_ids = itertools.count(1)


def llm_span(
    *,
    trace: str,
    ts: dt.datetime,
    team: str = "",
    feature: str = "",
    customer: str = "",
    cost_center: str = "",
    model: str = "gpt-4o",
    provider: str = "openai",
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_read_tokens: int = 0,
    cost: str | None = None,
    parts: tuple[str, str, str, str] | None = None,
    status: str = "priced",
    service: str = "svc",
    env: str = "prod",
    duration_ms: int = 100,
    operation: str = "chat",
    status_code: str = "Ok",
) -> dict[str, Any]:
    """One GenAI span row: usage and cost as the string attributes the exporter writes."""
    attrs = {
        "gen_ai.provider.name": provider,
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": str(input_tokens),
        "gen_ai.usage.output_tokens": str(output_tokens),
        "spanledger.cost.status": status,
    }
    if cache_read_tokens:
        attrs["gen_ai.usage.cache_read.input_tokens"] = str(cache_read_tokens)
    for key, value in (("team", team), ("feature", feature), ("customer", customer),
                       ("cost_center", cost_center)):
        if value:
            attrs[f"spanledger.{key}"] = value
    if cost is not None:
        attrs["gen_ai.usage.cost"] = cost
        p = parts or (cost, "0", "0", "0")
        for name, v in zip(("input", "output", "cache_read", "cache_write"), p, strict=True):
            attrs[f"spanledger.cost.{name}"] = v
        attrs["spanledger.price.source"] = "test"
    return {
        "Timestamp": ts,
        "TraceId": trace,
        "SpanId": f"{next(_ids):016x}",
        "ParentSpanId": "",
        "TraceState": "",
        "SpanName": f"{operation} {model}",
        "SpanKind": "Client",
        "ServiceName": service,
        "ResourceAttributes": {"service.name": service, "deployment.environment.name": env},
        "ScopeName": "test",
        "ScopeVersion": "1",
        "SpanAttributes": attrs,
        "Duration": duration_ms * 1_000_000,
        "StatusCode": status_code,
        "StatusMessage": "",
    }


def spans_table(spans: Sequence[dict[str, Any]]) -> pa.Table:
    schema = otel_traces_schema()
    cols: dict[str, list[Any]] = {f.name: [] for f in schema}
    for s in spans:
        for f in schema:
            if f.name.startswith(("Events.", "Links.")):
                cols[f.name].append([])
            elif f.name in ("ResourceAttributes", "SpanAttributes"):
                cols[f.name].append(list(s[f.name].items()))
            else:
                cols[f.name].append(s[f.name])
    return pa.table(cols, schema=schema)


@contextlib.contextmanager
def store_with(path: Path, spans: Sequence[dict[str, Any]] = ()) -> Iterator[Store]:
    """A migrated chdb store at ``path`` holding ``spans``; closed on exit."""
    store = open_store(f"chdb://{path}", migrate=True)
    try:
        if spans:
            store.insert_arrow("otel_traces", spans_table(spans))
        yield store
    finally:
        store.close()


def load_store(path: Path, spans: Sequence[dict[str, Any]]) -> str:
    """Write ``spans`` into a store at ``path``, close it, return its URL (for the CLI)."""
    with store_with(path, spans):
        pass
    return f"chdb://{path}"


# -- the shared hand-computed data set -----------------------------------------------------

OCT = dt.datetime(2026, 10, 1, 12, 0, tzinfo=dt.UTC)


def day(n: int, hour: int = 12) -> dt.datetime:
    """2026-10-<n> at ``hour`` UTC."""
    return OCT.replace(day=n, hour=hour)


def october_spans() -> list[dict[str, Any]]:
    """Spend in October 2026 that the tests' expectations were computed from by hand.

    team/feature  traces                         calls  tokens (in+out)      cost
    search/rag    r1 (2 calls), r2 (1 call)          3  1200+600+360 = 2160  1.10+0.40+0.30 = 1.80
    support/chat  c1, c2 (5 calls: runaway), c3      7  7 x 2500 = 17500     7 x 2.00 = 14.00
                  c4 (1 unpriced call, mystery-1)    1  770                  (unpriced)
    (none)        u1 (environment staging)           1  110                  0.20
    total                                           12  20540                16.00

    Not counted: an aggregate invoke_agent span in c2 (it carries its children's
    cost as a rollup) and a search call on 2026-11-01 (outside October).
    """
    s = [
        llm_span(trace="r1", ts=day(1), team="search", feature="rag", input_tokens=1000,
                 output_tokens=200, cost="1.1", parts=("0.6", "0.5", "0", "0"), duration_ms=900),
        llm_span(trace="r1", ts=day(1), team="search", feature="rag", input_tokens=500,
                 output_tokens=100, cost="0.4", duration_ms=400),
        llm_span(trace="r2", ts=day(10), team="search", feature="rag", input_tokens=300,
                 output_tokens=60, cost="0.3"),
        llm_span(trace="c1", ts=day(2), team="support", feature="chat", input_tokens=2000,
                 output_tokens=500, cost="2"),
    ]
    s += [llm_span(trace="c2", ts=day(3, 8), team="support", feature="chat", input_tokens=2000,
                   output_tokens=500, cost="2.0", duration_ms=1000) for _ in range(5)]
    agent = llm_span(trace="c2", ts=day(3, 8), team="support", feature="chat", status="aggregate",
                     operation="invoke_agent", input_tokens=10000, output_tokens=2500)
    agent["SpanAttributes"]["spanledger.cost.rollup"] = "10.0"
    s += [
        agent,
        llm_span(trace="c3", ts=day(4), team="support", feature="chat", input_tokens=2000,
                 output_tokens=500, cost="2.00"),
        llm_span(trace="c4", ts=day(5), team="support", feature="chat", model="mystery-1",
                 input_tokens=700, output_tokens=70, status="unpriced"),
        llm_span(trace="u1", ts=day(6), input_tokens=100, output_tokens=10, cost="0.2",
                 service="batch", env="staging"),
        llm_span(trace="n1", ts=dt.datetime(2026, 11, 1, 0, 0, 1, tzinfo=dt.UTC), team="search",
                 feature="rag", input_tokens=1, output_tokens=1, cost="99"),
    ]
    return s


def assert_rows_sum_to_total(doc: dict[str, Any]) -> None:
    """Every money column of a report's JSON: the rows add up to the TOTAL, exactly."""
    for col in doc["columns"]:
        if col["kind"] == "money" and doc["total"].get(col["key"]) is not None:
            rows = [Decimal(r[col["key"]]) for r in doc["rows"] if r.get(col["key"]) is not None]
            assert sum(rows, Decimal(0)) == Decimal(doc["total"][col["key"]]), col["key"]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``spanledger ARGV`` in this process: (exit code, stdout, stderr)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from spanledger.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()
