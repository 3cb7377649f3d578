"""One-line setup and zero-code: what arrives at an OTLP endpoint.

Subprocesses run a user's script exactly as they would (``spanledger.configure()``
with OTEL_* variables; ``opentelemetry-instrument python app.py``) against the
stub provider, exporting to a local OTLP/HTTP receiver.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry import propagate
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import spanledger
from spanledger import semconv as sc
from spanledger.demo.stub_provider import ChatUsage, StubProvider
from spanledger.processor.cost_processor import CostSpanProcessor
from spanledger.processor.setup import otlp_exporter
from support.processor import TOLERANCE, OtlpHttpReceiver, expected_cost, shared_catalog

BIN = Path(sys.executable).parent
USAGE = ChatUsage(prompt_tokens=2000, completion_tokens=150, cached_tokens=1024)
APP = textwrap.dedent("""
    import os, sys
    import openai
    import spanledger
    {setup}
    client = openai.OpenAI(base_url=os.environ["STUB_URL"], api_key="test", max_retries=0)
    with spanledger.attribute(team="zero", feature="code"):
        client.chat.completions.create(model="gpt-4o-mini",
                                       messages=[{{"role": "user", "content": "hi"}}])
    print("done")
""")


@pytest.fixture
def stub() -> Iterator[StubProvider]:
    with StubProvider(chat_usage=USAGE) as s:
        yield s


def run_app(tmp_path: Path, setup: str, env: dict[str, str], argv: list[str]) -> None:
    script = tmp_path / "app.py"
    script.write_text(APP.format(setup=setup))
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANLEDGER_"))}
    full_env.update(env)
    proc = subprocess.run([*argv, str(script)], env=full_env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "done" in proc.stdout


def check_chat(receiver: OtlpHttpReceiver, service: str) -> dict:
    """The call's one priced span. Zero-code runs every installed OpenAI instrumentation
    (OpenLLMetry's, the contrib openai-v2, openinference): the call then has one span per
    instrumentation, and exactly one of them is counted, the others are duplicates of it."""
    calls = [s for s in receiver.spans
             if s["attributes"].get(sc.COST_STATUS) in (sc.STATUS_PRICED, sc.STATUS_DUPLICATE)]
    (span,) = [s for s in calls if s["attributes"][sc.COST_STATUS] == sc.STATUS_PRICED]
    for other in calls:
        if other is not span:
            assert sc.COST not in other["attributes"]
            assert other["attributes"][sc.DUPLICATE_OF]
    attrs = span["attributes"]
    want = expected_cost("gpt-4o-mini", "openai", input_tokens=2000, output_tokens=150,
                         cache_read=1024)
    assert abs(Decimal(repr(attrs[sc.COST])) - want) <= TOLERANCE
    assert attrs[sc.COST_STATUS] == sc.STATUS_PRICED and attrs[sc.STEP] == 1
    assert attrs["spanledger.team"] == "zero" and attrs["spanledger.feature"] == "code"
    assert span["resource"]["service.name"] == service
    return span


def test_configure_one_liner_honours_otel_env(tmp_path: Path, stub: StubProvider) -> None:
    with OtlpHttpReceiver() as receiver:
        run_app(tmp_path, setup=(
            "from opentelemetry.instrumentation.openai import OpenAIInstrumentor\n"
            "spanledger.configure()\nOpenAIInstrumentor().instrument()"), env={
            "STUB_URL": stub.base_url,
            "OTEL_SERVICE_NAME": "checkout",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=blue",
        }, argv=[sys.executable])
        span = check_chat(receiver, "checkout")
    assert span["path"] == "/v1/traces"
    assert span["resource"]["deployment.environment.name"] == "prod"
    assert span["headers"]["x-tenant"] == "blue"


@pytest.mark.parametrize("public", ["", "all"], ids=["fast-paths", "public-api"])
def test_zero_code_opentelemetry_instrument(tmp_path: Path, stub: StubProvider,
                                            public: str) -> None:
    """Also with every SDK fast path forced onto the public API (what a new SDK release that
    changed an internal leads to): the same span, the same cost."""
    with OtlpHttpReceiver() as receiver:
        run_app(tmp_path, setup="", env={
            "SPANLEDGER_SDK_PUBLIC": public,
            "STUB_URL": stub.base_url,
            "OTEL_PYTHON_DISTRO": "spanledger",
            "OTEL_PYTHON_CONFIGURATOR": "spanledger",
            "OTEL_SERVICE_NAME": "zero-code-svc",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "SPANLEDGER_REQUIRE": "team",
        }, argv=[str(BIN / "opentelemetry-instrument"), sys.executable])
        check_chat(receiver, "zero-code-svc")


def test_configure_in_process_with_explicit_args() -> None:
    exporter = InMemorySpanExporter()
    provider = spanledger.configure(service_name="billing", exporter=exporter, batch=False,
                                    set_global=False, catalog=shared_catalog(),
                                    attribution_keys=["team"], require=["team"])
    assert provider.resource.attributes["service.name"] == "billing"
    (processor,) = provider._active_span_processor._span_processors
    assert isinstance(processor, CostSpanProcessor)
    assert processor.require == ("team",)
    tracer = provider.get_tracer("t")
    with spanledger.attribute(team="ops", feature="x"), tracer.start_as_current_span(
            "chat", attributes={"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                "gen_ai.request.model": "gpt-4o-mini",
                                "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5}):
        pass
    (span,) = exporter.get_finished_spans()
    attrs = span.attributes or {}
    assert attrs["spanledger.team"] == "ops" and "spanledger.feature" not in attrs
    want = expected_cost("gpt-4o-mini", "openai", input_tokens=10, output_tokens=5)
    assert abs(Decimal(repr(attrs[sc.COST])) - want) <= TOLERANCE
    provider.shutdown()


def test_exporter_choice_follows_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(otlp_exporter(), GrpcExporter)  # the SDK configurator's default too
    assert isinstance(otlp_exporter(protocol="http/protobuf"), HttpExporter)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    exporter = otlp_exporter(endpoint="http://127.0.0.1:4318")
    assert isinstance(exporter, HttpExporter)
    assert exporter._endpoint == "http://127.0.0.1:4318/v1/traces"
    with pytest.raises(ValueError, match="unsupported OTLP protocol"):
        otlp_exporter(protocol="thrift")


def test_configure_keeps_baggage_propagation(monkeypatch: pytest.MonkeyPatch) -> None:
    before = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator()]))
    try:
        spanledger.configure(exporter=InMemorySpanExporter(), set_global=False,
                             catalog=shared_catalog()).shutdown()
        carrier: dict[str, str] = {}
        with spanledger.attribute(team="search"):
            propagate.inject(carrier)
        assert carrier.get("baggage") == "team=search"
        members = propagate.get_global_textmap()._propagators  # type: ignore[attr-defined]
        assert [type(p) for p in members] == [TraceContextTextMapPropagator, W3CBaggagePropagator]
    finally:
        propagate.set_global_textmap(before)


def test_configure_options_are_keyword_only() -> None:
    """A positional call fails loudly instead of binding a value to the wrong option."""
    with pytest.raises(TypeError, match="positional"):
        spanledger.configure("billing")  # type: ignore[misc]
    with pytest.raises(TypeError, match="positional"):
        otlp_exporter("http://127.0.0.1:4318")  # type: ignore[misc]
