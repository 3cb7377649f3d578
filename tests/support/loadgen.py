"""Synthetic OTLP trace requests with realistic GenAI attributes.

Not part of the package: the collector tests and ``bench/bench_collector.py``
(which puts ``tests/`` on its path) need many requests whose spans look like what the
OpenAI/Anthropic instrumentations plus the cost processor send (about twenty
attributes, some numeric), with unique ids, without running an SDK per span.
"""

from __future__ import annotations

import os
import random
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

MODELS = ("gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5")
TEAMS = ("search", "support", "growth")
FEATURES = ("chat", "rag", "agent")


def _kv(key: str, value: str | int | float | bool) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def genai_request(spans: int, *, service: str = "loadgen", priced: bool = True,
                  rng: random.Random | None = None,
                  start_ns: int | None = None) -> ExportTraceServiceRequest:
    """One request of ``spans`` chat spans (unique random ids), priced or not.

    ``priced=True`` spans carry a cost status like the in-service processor
    writes; ``priced=False`` spans carry only usage (the collector prices them).
    """
    rng = rng or random.Random(int.from_bytes(os.urandom(8), "little"))
    start_ns = start_ns or time.time_ns()
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([
        _kv("service.name", service),
        _kv("deployment.environment.name", "bench"),
        _kv("telemetry.sdk.language", "python"),
        _kv("telemetry.sdk.name", "opentelemetry"),
        _kv("telemetry.sdk.version", "1.45.2"),
    ])
    ss = rs.scope_spans.add()
    ss.scope.name = "opentelemetry.instrumentation.openai.v1"
    ss.scope.version = "0.62.4"
    for i in range(spans):
        model = MODELS[i % len(MODELS)]
        inp, out = rng.randint(50, 4000), rng.randint(10, 800)
        t0 = start_ns + i * 1000
        attrs = [
            _kv("gen_ai.operation.name", "chat"),
            _kv("gen_ai.provider.name", "anthropic" if model.startswith("claude") else "openai"),
            _kv("gen_ai.request.model", model),
            _kv("gen_ai.response.model", model),
            _kv("gen_ai.response.id", f"chatcmpl-{rng.getrandbits(64):016x}"),
            _kv("gen_ai.request.temperature", 0.2),
            _kv("gen_ai.request.max_tokens", 1024),
            _kv("gen_ai.usage.input_tokens", inp),
            _kv("gen_ai.usage.output_tokens", out),
            _kv("gen_ai.usage.cache_read.input_tokens", inp // 4),
            _kv("gen_ai.usage.total_tokens", inp + out),
            _kv("llm.is_streaming", False),
            _kv("server.address", "api.example.com"),
            _kv("spanledger.team", TEAMS[i % len(TEAMS)]),
            _kv("spanledger.feature", FEATURES[i % len(FEATURES)]),
            _kv("spanledger.customer", f"cust-{i % 17}"),
        ]
        if priced:
            attrs += [
                _kv("gen_ai.usage.cost", 0.000123),
                _kv("spanledger.cost.input", 0.0001),
                _kv("spanledger.cost.output", 0.000023),
                _kv("spanledger.cost.status", "priced"),
                _kv("spanledger.price.source", "genai-prices@0.2.3"),
                _kv("spanledger.step", i % 7 + 1),
            ]
        span = Span(
            trace_id=rng.getrandbits(128).to_bytes(16, "big"),
            span_id=rng.getrandbits(64).to_bytes(8, "big"),
            parent_span_id=rng.getrandbits(64).to_bytes(8, "big"),
            name=f"chat {model}",
            kind=Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=t0,
            end_time_unix_nano=t0 + rng.randint(1_000_000, 900_000_000),
            attributes=attrs,
            status=Status(code=Status.STATUS_CODE_UNSET),
        )
        ss.spans.append(span)
    return req
