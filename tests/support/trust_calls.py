"""OTLP requests for the trust tests: a victim's honest calls and a hostile client's attempts.

Every span is a chat call of ``gpt-4o-mini`` with its own random ids, attributed to a
team through ``spanledger.team`` (what a service's processor writes from baggage);
``extra`` adds or overrides attributes (a forged cost, a claimed status, absurd counts).
"""

from __future__ import annotations

import datetime as dt
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spanledger.collector.metrics import Metrics
from spanledger.collector.spool import Spool
from spanledger.collector.writer import Writer
from spanledger.store import Store
from support.loadgen import _kv

MODEL = "gpt-4o-mini"
_rng = random.Random(int.from_bytes(os.urandom(8), "little"))


def ns(when: dt.datetime) -> int:
    return int(when.timestamp()) * 10**9 + when.microsecond * 1000


def call(team: str, *, input_tokens: int | str = 1000, output_tokens: int | str = 100,
         extra: Mapping[str, Any] | None = None, at: dt.datetime | None = None,
         trace_id: bytes | None = None, span_id: bytes | None = None,
         parent_id: bytes = b"", name: str = f"chat {MODEL}") -> Span:
    """One chat call with usage (no cost: the collector prices it unless ``extra`` says)."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": MODEL, "gen_ai.response.model": MODEL,
        "gen_ai.response.id": f"chatcmpl-{_rng.getrandbits(64):016x}",
        "gen_ai.usage.input_tokens": input_tokens, "gen_ai.usage.output_tokens": output_tokens,
        "spanledger.team": team,
    }
    attrs.update(extra or {})
    start = ns(at or dt.datetime.now(dt.UTC))
    return Span(trace_id=trace_id or _rng.getrandbits(128).to_bytes(16, "big"),
                span_id=span_id or _rng.getrandbits(64).to_bytes(8, "big"),
                parent_span_id=parent_id, name=name, kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=start, end_time_unix_nano=start + 500_000_000,
                attributes=[_kv(k, v) for k, v in attrs.items()])


def request(spans: Sequence[Span], service: str = "svc") -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([_kv("service.name", service),
                                   _kv("deployment.environment.name", "prod")])
    ss = rs.scope_spans.add()
    ss.scope.name = "opentelemetry.instrumentation.openai.v1"
    ss.scope.version = "0.62.4"
    ss.spans.extend(spans)
    return req


def ids(spans: Sequence[Span]) -> set[tuple[str, str]]:
    return {(s.trace_id.hex(), s.span_id.hex()) for s in spans}


def spool_at(directory: Path) -> Spool:
    return Spool(directory, max_bytes=1 << 30, segment_bytes=1 << 30, segment_spans=10**6,
                 segment_age_s=3600)


def append(spool: Spool, req: ExportTraceServiceRequest, *, seal: bool = False) -> None:
    """One request as one spool record; ``seal``: then close the segment (the next request
    lands in a later one, as a retry after a lost acknowledgement does)."""
    spool.append(req.SerializeToString(), sum(len(ss.spans) for rs in req.resource_spans
                                               for ss in rs.scope_spans))
    if seal:
        spool.seal_if_due(force=True)


def write_all(spool: Spool, store: Store, **options: Any) -> Metrics:
    """Run a writer over everything spooled, as the collector does (conversion in-process)."""
    metrics = Metrics()
    spool.seal_if_due(force=True)
    writer = Writer(spool, store, metrics, workers=0, pricing=True, prices_file=None, **options)
    writer.start()
    flushed = writer.stop(timeout=120)
    assert flushed, f"the writer is stuck: {writer.status()}"
    return metrics


def team_totals(store: Store, team: str, where: str = "1") -> tuple[int, str, int, int]:
    """(calls, cost, input tokens, output tokens) the daily rollup has for ``team``."""
    ((calls, cost, inp, out),) = store.query(
        "SELECT sumIf(Calls, Status NOT IN ('aggregate', 'duplicate')), "
        "toString(sumIf(Cost, Status = 'priced')), sum(InputTokens), sum(OutputTokens) "
        f"FROM llm_cost_daily WHERE Team = '{team}' AND {where}")
    return int(calls), str(cost), int(inp), int(out)


def quarantined(store: Store) -> dict[tuple[str, str], tuple[str, str]]:
    """(trace id, span id) -> (reason, detail) of the quarantine."""
    return {(t, s): (r, d) for t, s, r, d in store.query(
        "SELECT TraceId, SpanId, Reason, Detail FROM spanledger_quarantine")}
