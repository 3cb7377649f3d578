"""A downstream service in its own process: TracerProvider + CostSpanProcessor + the openai
instrumentation + spanledger.guard, serving ``GET /rank?limit=USD`` on 127.0.0.1.

Each request extracts the caller's context (W3C trace context and baggage), makes one LLM
call to the stub provider inside ``guard(max_run_usd=limit)`` and answers JSON: the
``spanledger.trace.cost_to_date`` baggage it received, and whether the call was refused.
Run: ``python downstream_service.py STUB_BASE_URL``; it prints ``port N`` when ready.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import openai
from opentelemetry import baggage, context, propagate
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanledger
from spanledger import semconv as sc

PROCESSOR = spanledger.CostSpanProcessor(SimpleSpanProcessor(InMemorySpanExporter()))
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(PROCESSOR)
OpenAIInstrumentor().instrument(tracer_provider=PROVIDER)


class Handler(BaseHTTPRequestHandler):
    client: openai.OpenAI

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        limit = parse_qs(urlparse(self.path).query)["limit"][0]
        # as server instrumentations do: the caller's context (and baggage) becomes current
        ctx = propagate.extract(dict(self.headers))
        token = context.attach(ctx)
        out: dict[str, Any] = {"cost_to_date": baggage.get_baggage(sc.TRACE_COST_TO_DATE)}
        tracer = PROVIDER.get_tracer("downstream")
        with tracer.start_as_current_span("GET /rank") as span, \
                spanledger.guard(max_run_usd=limit, name="rank"):
            out["trace_id"] = f"{span.get_span_context().trace_id:032x}"
            try:
                self.client.chat.completions.create(
                    model="gpt-4o", max_tokens=100,
                    messages=[{"role": "user", "content": "keep going"}])
                out["refused"] = None
            except spanledger.BudgetExceeded as exc:
                out["refused"] = str(exc)
        context.detach(token)
        body = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    Handler.client = openai.OpenAI(base_url=sys.argv[1], api_key="test", max_retries=0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
