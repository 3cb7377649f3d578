"""Example instrumented service for the compose stack: what a team adds to its code.

Three lines matter: ``spanledger.configure()`` (a TracerProvider with the cost
processor and an OTLP exporter, configured by the standard ``OTEL_*``
variables), ``OpenAIInstrumentor().instrument()`` (GenAI spans with token usage),
and ``spanledger.attribute(...)`` (who pays: team and feature travel as W3C
baggage to every span below, in this process and downstream).

The OpenAI client reads ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` from the
environment; compose points it at the offline mock provider by default.
The loop is bounded by ``EXAMPLE_MAX_REQUESTS`` (0 = run until stopped).
"""

from __future__ import annotations

import logging
import os
import time

import openai
from opentelemetry import trace
from opentelemetry.instrumentation.openai import OpenAIInstrumentor

import spanledger

log = logging.getLogger("example-service")

#: (team, feature, prompt): two owners, so the dashboards have something to split
WORK = (
    ("support", "ticket-summary", "Summarise this support ticket in one line: printer on fire."),
    ("search", "rag-answer", "Answer from the context: what is our refund window?"),
)


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    spanledger.configure()
    OpenAIInstrumentor().instrument()
    client = openai.OpenAI()
    model = os.environ.get("EXAMPLE_MODEL", "gpt-4o-mini")
    interval = float(os.environ.get("EXAMPLE_INTERVAL_SECONDS", "5"))
    limit = int(os.environ.get("EXAMPLE_MAX_REQUESTS", "0"))
    tracer = trace.get_tracer("example-service")
    sent = 0
    while limit == 0 or sent < limit:
        team, feature, prompt = WORK[sent % len(WORK)]
        with (
            spanledger.attribute(team=team, feature=feature),
            tracer.start_as_current_span(f"handle {feature}"),
        ):
            reply = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": prompt}]
            )
        sent += 1
        log.info(
            "%s/%s: %s tokens", team, feature, reply.usage.total_tokens if reply.usage else "?"
        )
        if limit == 0 or sent < limit:
            time.sleep(interval)
    # flush the last spans before exiting
    provider = trace.get_tracer_provider()
    if hasattr(provider, "shutdown"):
        provider.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
