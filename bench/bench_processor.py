"""Per-span cost of the CostSpanProcessor against the bare SDK, in one run.

    python bench/bench_processor.py [--spans N] [--rounds R] [--public-api]

Four pipelines, each TracerProvider + BatchSpanProcessor + a no-op exporter:
bare SDK vs CostSpanProcessor wrapping the same batch processor, for plain
spans (the common case: HTTP, SQL, ... with attribution baggage set) and for
GenAI spans (the attributes opentelemetry-instrumentation-openai 0.62 sets on a
chat call). Rounds alternate between bare and wrapped and the best round of
each is kept, so machine noise hits both sides alike. Prints us/span and ratios.
Targets (2 cores): plain <= 1.08x, GenAI <= 1.25x.

``--public-api`` runs the processor with every SDK fast path of
``spanledger.processor.sdk_access`` on its public fallback: what a service gets
when a new SDK release changed the internals (the price of the safety net).
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable, Sequence

from opentelemetry import context
from opentelemetry.baggage import set_baggage
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from spanledger.pricing.catalog import PriceCatalog
from spanledger.processor.cost_processor import CostSpanProcessor

PLAIN_ATTRS = {
    "http.request.method": "GET",
    "url.path": "/api/items",
    "http.response.status_code": 200,
    "server.address": "inventory",
}
GENAI_ATTRS = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.is_streaming": False,
    "gen_ai.openai.api_base": "https://api.openai.com/v1/",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.response.id": "chatcmpl-123",
    "gen_ai.response.finish_reasons": ("stop",),
    "gen_ai.openai.response.system_fingerprint": "fp_1",
    "gen_ai.usage.total_tokens": 1500,
    "gen_ai.usage.output_tokens": 300,
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.cache_read.input_tokens": 1024,
    "gen_ai.usage.reasoning_tokens": 0,
    # recorded by default by the 0.62 instrumentation
    "gen_ai.input.messages": '[{"role": "system", "parts": [{"type": "text", "content": '
                             '"You are a helpful assistant."}]}, {"role": "user", "parts": '
                             '[{"type": "text", "content": "Where is my order #1234?"}]}]',
    "gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": "text", "content": '
                              '"Your order shipped yesterday."}], "finish_reason": "stop"}]',
}


def genai_variants(n: int = 64) -> list[dict[str, object]]:
    """Calls differ in usage, as real ones do (no cache can hide the pricing work)."""
    out = []
    for i in range(n):
        inp, outp = 800 + 37 * i, 100 + 11 * i
        out.append({**GENAI_ATTRS, "gen_ai.usage.input_tokens": inp,
                    "gen_ai.usage.output_tokens": outp, "gen_ai.usage.total_tokens": inp + outp,
                    "gen_ai.usage.cache_read.input_tokens": (i % 3) * 256})
    return out


class NoopExporter(SpanExporter):
    """Drops batches: we measure the in-service cost, not the network."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def make_provider(wrapped: bool, catalog: PriceCatalog) -> TracerProvider:
    batch = BatchSpanProcessor(NoopExporter(), max_queue_size=1 << 16, max_export_batch_size=512)
    provider = TracerProvider()
    provider.add_span_processor(CostSpanProcessor(batch, catalog=catalog) if wrapped else batch)
    return provider


def run(provider: TracerProvider, variants: list[dict[str, object]], n: int) -> float:
    """CPU us per span for ``n`` spans: a request root + 7 children, as a service makes them.

    CPU time of the process (both threads: the caller and the batch exporter),
    so other processes on this shared machine do not count.
    """
    tracer = provider.get_tracer("bench")
    start_span = tracer.start_as_current_span
    nv = len(variants)
    gc.collect()
    t0 = time.process_time()
    per_trace = 8
    for i in range(n // per_trace):
        with start_span("request"):
            for j in range(per_trace - 1):
                with start_span("work", attributes=variants[(i + j) % nv]):
                    pass
    elapsed = time.process_time() - t0
    provider.force_flush()
    return elapsed / (n // per_trace * per_trace) * 1e6


def best(fn: Callable[[], float], rounds: int) -> float:
    return min(fn() for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spans", type=int, default=20_000, help="spans per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--public-api", action="store_true",
                        help="force every SDK accessor onto the public API")
    args = parser.parse_args()
    if args.public_api:
        from spanledger.processor import sdk_access

        sdk_access.use_public()
    catalog = PriceCatalog()
    # attribution baggage is set, as in a real service using spanledger.attribute()
    ctx = context.get_current()
    for key, value in (("team", "search"), ("feature", "answers"), ("customer", "acme")):
        ctx = set_baggage(key, value, ctx)
    token = context.attach(ctx)
    try:
        results: dict[str, dict[str, float]] = {}
        for label, attrs in (("plain", [PLAIN_ATTRS]), ("genai", genai_variants())):
            bare_p, cost_p = make_provider(False, catalog), make_provider(True, catalog)
            run(bare_p, attrs, 2000)  # warm-up (imports, rate cards, caches)
            run(cost_p, attrs, 2000)
            bare, wrapped = [], []
            for _ in range(args.rounds):  # interleave so noise hits both sides
                bare.append(run(bare_p, attrs, args.spans))
                wrapped.append(run(cost_p, attrs, args.spans))
            results[label] = {"bare": min(bare), "cost": min(wrapped)}
            bare_p.shutdown()
            cost_p.shutdown()
    finally:
        context.detach(token)
    targets = {"plain": 1.08, "genai": 1.25}
    print(f"{'spans':<8}{'bare SDK us/span':>18}{'+CostSpanProcessor':>20}"
          f"{'ratio':>8}{'target':>8}")
    for label, r in results.items():
        ratio = r["cost"] / r["bare"]
        ok = "ok" if ratio <= targets[label] else "MISS"
        print(f"{label:<8}{r['bare']:>18.2f}{r['cost']:>20.2f}{ratio:>8.3f}"
              f"{'<=' + str(targets[label]):>8} {ok}")


if __name__ == "__main__":
    main()
