"""One demo worker process: a service's whole in-process pipeline, as a user would set it up.

Why separate processes: ~20,000 instrumented client calls do not fit in 90 s
in one Python process on two cores next to the collector; two workers, each
with its own TracerProvider, stub provider thread and OTLP exporter, do.

Pipeline per worker, in span order::

    instrumentation (openai, anthropic) + the services' own spans
      -> StagingSpanProcessor   (demo only: backdate, pick the service resource)
      -> CostSpanProcessor      (the product: attribution + price + steps)
      -> BatchSpanProcessor -> counting OTLP/gRPC exporter -> collector

Counters (calls made, spans exported) go to shared memory the parent reads
for its progress line; each worker writes only its own slots.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["COUNTERS", "CountingExporter", "WorkerSpec", "run_worker"]

#: shared-memory slots per worker, in this order
COUNTERS = ("calls", "spans_exported", "export_failures", "done")


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    index: int
    workers: int
    calls: int
    days: int
    seed: int
    anchor_ns: int
    otlp_endpoint: str
    prices_file: str


class CountingExporter(SpanExporter):
    """Counts what the wrapped exporter really delivered (for the progress line)."""

    def __init__(self, inner: SpanExporter, counters: Any, base: int) -> None:
        self._inner = inner
        self._counters = counters
        self._exported = base + COUNTERS.index("spans_exported")
        self._failed = base + COUNTERS.index("export_failures")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self._inner.export(spans)
        slot = self._exported if result is SpanExportResult.SUCCESS else self._failed
        self._counters[slot] += len(spans)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def run_worker(spec: WorkerSpec, counters: Any) -> None:
    """Process entry point: run this worker's share of the plan, flush, exit."""
    # Ctrl-C is the parent's to handle (it terminates the workers): no traceback per worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The demo's prompts are fake; keep them off the spans (smaller, faster).
    os.environ.setdefault("TRACELOOP_TRACE_CONTENT", "false")
    os.environ.setdefault("TRACELOOP_METRICS_ENABLED", "false")
    # The unpriced fine-tune is unpriced on purpose; the reports show it as such,
    # so its "no price for model" warning (once per worker) would only interrupt
    # the progress line.
    logging.getLogger("spanledger.pricing").setLevel(logging.ERROR)

    import anthropic
    import openai
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from spanledger import CostSpanProcessor
    from spanledger.demo.scenario import build_plan
    from spanledger.demo.services import DemoServices, stub_usage
    from spanledger.demo.staging import StagingSpanProcessor
    from spanledger.demo.stub_provider import StubProvider

    base = spec.index * len(COUNTERS)
    calls_slot = base + COUNTERS.index("calls")
    # tool_rounds is a ceiling only: the agents decide when to stop offering tools
    stub = StubProvider(usage_hook=stub_usage, tool_rounds=1_000_000)
    exporter = CountingExporter(
        OTLPSpanExporter(endpoint=spec.otlp_endpoint, insecure=True), counters, base)
    batch = BatchSpanProcessor(exporter, max_queue_size=100_000, max_export_batch_size=2048,
                               schedule_delay_millis=250)
    provider = TracerProvider(resource=Resource.create({"service.name": "spanledger-demo"}))
    provider.add_span_processor(StagingSpanProcessor(CostSpanProcessor(batch,
                                                                       prices=spec.prices_file)))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    AnthropicInstrumentor().instrument(tracer_provider=provider)
    services = DemoServices(
        provider.get_tracer("spanledger.demo"),
        openai.OpenAI(base_url=stub.base_url, api_key="demo-key", max_retries=0),
        anthropic.Anthropic(base_url=stub.root_url, api_key="demo-key", max_retries=0),
        provider=provider,
    )
    try:
        plans = build_plan(spec.calls, spec.days, spec.seed, spec.anchor_ns)
        for plan in plans[spec.index::spec.workers]:
            services.run(plan)
            counters[calls_slot] += plan.provider_calls
    finally:
        provider.shutdown()  # drains the batch queue through the exporter
        stub.stop()
    counters[base + COUNTERS.index("done")] = 1
