"""``spanledger.outcome(...)``: one small span per outcome, attributed like the run, and
counted for the run it names, also when a later webhook in another process records it."""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanledger
from spanledger import semconv as sc
from spanledger.reports.period import Period
from spanledger.reports.queries import fetch_outcomes, fetch_run_groups
from spanledger.store import open_store
from support.demo import clean_env


@pytest.fixture
def pipeline() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(spanledger.CostSpanProcessor(SimpleSpanProcessor(exporter)))
    return provider, exporter


def test_outcome_in_the_run_is_a_child_span_attributed_by_the_runs_baggage(
        pipeline: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = pipeline
    tracer = provider.get_tracer("svc")
    with spanledger.attribute(team="support", feature="ticket-triage", customer="acme"), \
            tracer.start_as_current_span("invoke_agent triage") as root:
        done = spanledger.outcome("ticket_resolved", tracer_provider=provider)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    span = spans["outcome ticket_resolved"]
    assert dict(span.attributes or {}) == {
        sc.OUTCOME_NAME: "ticket_resolved", sc.OUTCOME_VALUE: 1,
        "spanledger.team": "support", "spanledger.feature": "ticket-triage",
        "spanledger.customer": "acme"}
    run = root.get_span_context()
    assert span.context is not None and span.parent is not None
    assert span.context.trace_id == run.trace_id and span.parent.span_id == run.span_id
    assert done is not None
    assert done.run_trace_id == done.trace_id == f"{run.trace_id:032x}"
    assert done.span_id == f"{span.context.span_id:016x}"
    assert not span.links  # same trace: nothing to link


def test_outcome_for_an_earlier_run_names_it_and_links_to_it(
        pipeline: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = pipeline
    run_trace, run_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with spanledger.attribute(team="crm", customer="ignored"):
        done = spanledger.outcome("conversion", 2.5, trace_id=run_trace.upper(),
                                  span_id=run_span, customer="acme", tracer_provider=provider)
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert attrs[sc.OUTCOME_TRACE_ID] == run_trace
    assert attrs[sc.OUTCOME_VALUE] == 2.5
    assert attrs["spanledger.customer"] == "acme"  # the explicit value wins over baggage
    assert attrs["spanledger.team"] == "crm"
    (link,) = span.links
    assert (f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}") == (run_trace,
                                                                                 run_span)
    assert done is not None and done.run_trace_id == run_trace != done.trace_id


def test_a_trace_id_alone_names_the_run_without_a_link(
        pipeline: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    """OTLP links need both ids (the collector refuses a zero span id): no link then."""
    provider, exporter = pipeline
    spanledger.outcome("conversion", trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
                       tracer_provider=provider)
    (span,) = exporter.get_finished_spans()
    assert dict(span.attributes or {})[sc.OUTCOME_TRACE_ID] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert not span.links


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    (("",), {}, "name must be a non-empty string"),
    (("x" * 257,), {}, "longer than 256"),
    (("ok", -1), {}, "must be >= 0"),
    (("ok", math.nan), {}, "must be finite"),
    (("ok", math.inf), {}, "must be finite"),
    (("ok", True), {}, "must be a number"),
    (("ok", "3"), {}, "must be a number"),
    (("ok", 10**18), {}, "< 1e18"),
    (("ok",), {"trace_id": "xyz"}, "trace_id must be 32 hex digits"),
    (("ok",), {"trace_id": "0" * 32}, "not all zero"),
    (("ok",), {"trace_id": "1" * 32, "span_id": "0" * 16}, "span_id must be 16 hex digits"),
    (("ok",), {"span_id": "1" * 16}, "give trace_id= too"),
])
def test_mistakes_are_refused_before_anything_is_recorded(
        pipeline: tuple[TracerProvider, InMemorySpanExporter], args: tuple[object, ...],
        kwargs: dict[str, object], message: str) -> None:
    provider, exporter = pipeline
    with pytest.raises(ValueError, match=message):
        spanledger.outcome(*args, tracer_provider=provider, **kwargs)  # type: ignore[arg-type]
    assert not exporter.get_finished_spans()


def test_whole_float_and_decimal_values_are_sent_as_numbers(
        pipeline: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = pipeline
    spanledger.outcome("a", 3.0, tracer_provider=provider)
    spanledger.outcome("b", Decimal("0.25"), tracer_provider=provider)
    values = {s.name: dict(s.attributes or {})[sc.OUTCOME_VALUE]
              for s in exporter.get_finished_spans()}
    assert values == {"outcome a": 3, "outcome b": 0.25}
    assert isinstance(values["outcome a"], int)


def test_without_tracing_nothing_is_recorded_and_none_returned() -> None:
    assert spanledger.outcome("x", tracer_provider=trace.NoOpTracerProvider()) is None


# -- through OTLP, from another process ------------------------------------------------------

WEBHOOK = textwrap.dedent("""
    import sys
    import spanledger
    provider = spanledger.configure(service_name="crm-webhooks", endpoint=sys.argv[1],
                                    batch=False, set_global=False)
    tracer = provider.get_tracer("crm")
    with tracer.start_as_current_span("POST /webhooks/crm"):
        spanledger.outcome("conversion", trace_id=sys.argv[2], span_id=sys.argv[3],
                           customer="acme", tracer_provider=provider)
    provider.shutdown()
""")


def test_an_outcome_recorded_in_another_process_lands_on_the_run(tmp_path: Path) -> None:
    """A priced run in this process, a webhook in a child process naming it: both reach
    ClickHouse through OTLP and the collector, and the outcome counts for the run's
    team and feature (which the webhook never knew)."""
    from spanledger.collector.app import Collector
    from spanledger.collector.config import CollectorConfig

    cfg = CollectorConfig()
    cfg.clickhouse.url = f"chdb://{tmp_path / 'store'}"
    cfg.grpc.port = 0
    cfg.http.enabled = False
    cfg.sql_http.enabled = False
    cfg.telemetry.port = 0
    cfg.batch.workers = 0
    cfg.batch.timeout_ms = 50
    collector = Collector(cfg).start()
    try:
        endpoint = "http://" + collector.endpoints()["otlp_grpc"]
        provider = spanledger.configure(service_name="sales-assist", endpoint=endpoint,
                                        batch=False, set_global=False)
        tracer = provider.get_tracer("sales")
        usage = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                 "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1000,
                 "gen_ai.usage.output_tokens": 100}
        with spanledger.attribute(team="sales", feature="email-drafts", customer="acme"), \
                tracer.start_as_current_span("POST /sales/draft") as root, \
                tracer.start_as_current_span("chat gpt-4o-mini", attributes=usage):
            pass
        run = root.get_span_context()
        provider.shutdown()
        run_trace, run_span = f"{run.trace_id:032x}", f"{run.span_id:016x}"
        child = subprocess.run([sys.executable, "-c", WEBHOOK, endpoint, run_trace, run_span],
                               env=clean_env(), capture_output=True, text=True, timeout=60,
                               check=False)
        assert child.returncode == 0, child.stderr[-2000:]
    finally:
        assert collector.stop()
    store = open_store(cfg.clickhouse.url, read_only=True)
    try:
        by_trace = store.query("SELECT RunTraceId, Name, sum(Outcomes), toString(sum(Value)), "
                               "max(Customer), max(Team) FROM outcomes_by_trace "
                               "GROUP BY RunTraceId, Name")
        own = store.query("SELECT TraceId FROM otel_traces "
                          "WHERE SpanAttributes['spanledger.outcome.name'] = 'conversion'")
        today = dt.datetime.now(dt.UTC).date()
        period = Period(today - dt.timedelta(days=1), today + dt.timedelta(days=1))
        outcomes = fetch_outcomes(store, period, ("team", "feature"))
        customers = fetch_outcomes(store, period, ("customer",))
        runs = fetch_run_groups(store, period, ("team", "feature"))
    finally:
        store.close()
    assert by_trace == [(run_trace, "conversion", 1, "1", "acme", "")]
    assert own[0][0] != run_trace  # recorded in a trace of its own
    (row,) = outcomes
    assert (row.group, row.name, row.runs, row.outcomes, row.unlinked) == (
        ("sales", "email-drafts"), "conversion", 1, 1, 0)
    assert [(c.group, c.runs) for c in customers] == [(("acme",), 1)]
    (group,) = runs
    assert (group.group, group.runs, group.runs_with_outcome, group.waste) == (
        ("sales", "email-drafts"), 1, 1, Decimal(0))
    assert group.cost > 0  # the run was priced in this process
