"""The real openai/anthropic clients + their 0.62 instrumentations, against the local stub.

What a user sees: every instrumented call carries the exact cost (checked
against genai-prices' own calc_price), attribution from baggage, steps and
running totals; agents run in thread pools and asyncio tasks stay attributed
and are never double counted; a downstream service over real HTTP gets the
attribution through W3C baggage.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest
import requests
from opentelemetry import propagate, trace

import spanledger
from spanledger import semconv as sc
from spanledger.demo.stub_provider import AnthropicUsage, ChatUsage, StubProvider
from support.local_http import LocalHttpServer, QuietHandler
from support.processor import (
    TOLERANCE,
    Capture,
    assert_cost,
    attribution,
    capture,
    cost_of,
    expected_cost,
    instrumented,
    openai_client,
)
from support.trust import baggage_settings

CHAT = ChatUsage(prompt_tokens=1200, completion_tokens=300, cached_tokens=1024, reasoning_tokens=0)
CLAUDE = AnthropicUsage(input_tokens=150, output_tokens=80, cache_read_input_tokens=2000,
                        cache_creation_input_tokens=500)
TOOLS = [{"type": "function", "function": {
    "name": "lookup", "description": "look something up",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]


def chat_cost(usage: ChatUsage = CHAT, model: str = "gpt-4o-mini") -> Decimal:
    return expected_cost(model, "openai", input_tokens=usage.prompt_tokens,
                         output_tokens=usage.completion_tokens, cache_read=usage.cached_tokens)


def claude_cost(usage: AnthropicUsage = CLAUDE) -> Decimal:
    total_in = (usage.input_tokens + usage.cache_read_input_tokens
                + usage.cache_creation_input_tokens)
    return expected_cost("claude-sonnet-4-5", "anthropic", input_tokens=total_in,
                         output_tokens=usage.output_tokens,
                         cache_read=usage.cache_read_input_tokens,
                         cache_write=usage.cache_creation_input_tokens)


@pytest.fixture(scope="module")
def stub() -> Iterator[StubProvider]:
    with StubProvider(chat_usage=CHAT, anthropic_usage=CLAUDE, embedding_tokens=42) as s:
        yield s


@pytest.fixture
def cap(stub: StubProvider) -> Iterator[Capture]:
    c = capture()
    with instrumented(c.provider):
        yield c


def test_openai_chat_streaming_and_embeddings_are_priced(stub: StubProvider, cap: Capture) -> None:
    client = openai_client(stub)
    with spanledger.attribute(team="search", feature="answers"):
        client.chat.completions.create(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": "hi"}])
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True})
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert "stub" in text
    chats = cap.named("openai.chat")
    assert len(chats) == 2
    for span in chats:
        assert_cost(span, chat_cost())
        assert (span.attributes or {})[sc.COST_CACHE_READ] > 0  # cached tokens discounted
        assert attribution(span) == {"team": "search", "feature": "answers"}
    assert {(s.attributes or {})["gen_ai.is_streaming"] for s in chats} == {True, False}
    emb = cap.one("openai.embeddings")
    assert_cost(emb, expected_cost("text-embedding-3-small", "openai", input_tokens=42))


def test_streaming_without_usage_is_no_usage_not_zero(stub: StubProvider, cap: Capture) -> None:
    stream = openai_client(stub).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True)
    for _ in stream:
        pass
    attrs = cap.one("openai.chat").attributes or {}
    assert attrs[sc.COST_STATUS] == sc.STATUS_NO_USAGE and sc.COST not in attrs


def test_anthropic_cache_reads_and_writes(stub: StubProvider, cap: Capture) -> None:
    client = anthropic.Anthropic(base_url=stub.root_url, api_key="test", max_retries=0)
    with spanledger.attribute(team="support"):
        client.messages.create(model="claude-sonnet-4-5", max_tokens=100,
                               messages=[{"role": "user", "content": "hi"}])
        with client.messages.stream(model="claude-sonnet-4-5", max_tokens=100,
                                    messages=[{"role": "user", "content": "hi"}]) as stream:
            for _ in stream.text_stream:
                pass
    spans = cap.named("anthropic.chat")
    assert len(spans) == 2
    for span in spans:
        attrs = span.attributes or {}
        assert attrs["gen_ai.usage.cache_read.input_tokens"] == 2000
        assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 500
        assert_cost(span, claude_cost())
        assert attrs[sc.COST_CACHE_WRITE] > 0 and attrs[sc.COST_CACHE_READ] > 0
        assert attribution(span) == {"team": "support"}


def run_agent(client: openai.OpenAI, tracer: trace.Tracer, pool: ThreadPoolExecutor) -> str:
    """A minimal tool loop: chat -> tool_calls -> execute_tool (in the pool) -> chat."""
    with tracer.start_as_current_span("invoke_agent helper", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "helper"}) as agent:
        messages: list[dict[str, Any]] = [{"role": "user", "content": "find it"}]
        for _ in range(5):
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages,
                                                   tools=TOOLS)  # type: ignore[arg-type]
            msg = reply.choices[0].message
            if not msg.tool_calls:
                return msg.content or ""
            messages.append(msg.model_dump(exclude_none=True))
            for call in msg.tool_calls:
                # Frameworks hand the worker the parent span, not the context: baggage is lost.
                result = pool.submit(execute_tool, tracer, agent, call.function.name).result()
                messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        raise AssertionError("agent did not finish")


def execute_tool(tracer: trace.Tracer, parent: trace.Span, name: str) -> str:
    with tracer.start_as_current_span(f"execute_tool {name}", context=trace.set_span_in_context(
            parent), attributes={"gen_ai.operation.name": "execute_tool",
                                 "gen_ai.tool.name": name}):
        return json.dumps({"answer": 42})


def check_agent_trace(cap: Capture, agent: Any, want_attr: dict[str, str]) -> None:
    trace_id = agent.context.trace_id
    spans = [s for s in cap.spans() if s.context.trace_id == trace_id]
    chats = [s for s in spans if s.name == "openai.chat"]
    tools = [s for s in spans if s.name.startswith("execute_tool")]
    assert len(chats) == 2 and len(tools) == 1
    for span in spans:
        assert attribution(span) == want_attr, span.name
    for span in chats:
        assert_cost(span, chat_cost())
    attrs = agent.attributes or {}
    assert attrs[sc.COST_STATUS] == sc.STATUS_AGGREGATE and sc.COST not in attrs
    assert abs(Decimal(repr(attrs[sc.COST_ROLLUP])) - 2 * chat_cost()) <= TOLERANCE
    assert sorted((s.attributes or {})[sc.STEP] for s in chats) == [1, 2]
    final = max(Decimal(repr((s.attributes or {})[sc.TRACE_COST_TO_DATE])) for s in chats)
    assert abs(final - 2 * chat_cost()) <= TOLERANCE
    # nothing counted twice: the trace's gen_ai.usage.cost sums to the two leaf calls
    total = sum((cost_of(s) or Decimal(0)) for s in spans)
    assert abs(total - 2 * chat_cost()) <= TOLERANCE


def test_agent_in_thread_pool_inherits_attribution(stub: StubProvider, cap: Capture) -> None:
    tracer = cap.tracer("agent")
    client = openai_client(stub)
    with ThreadPoolExecutor(max_workers=2) as pool, ThreadPoolExecutor(max_workers=2) as tools, \
            spanledger.attribute(team="agents", feature="helper", customer="acme"), \
            tracer.start_as_current_span("POST /ask") as root:
        # The whole agent runs on a pool thread from the bare parent span: no baggage there.
        def in_pool() -> str:
            with trace.use_span(root, end_on_exit=False):
                return run_agent(client, tracer, tools)
        assert "stub" in pool.submit(in_pool).result()
    check_agent_trace(cap, cap.one("invoke_agent helper"),
                      {"team": "agents", "feature": "helper", "customer": "acme"})


def test_agents_as_asyncio_tasks(stub: StubProvider, cap: Capture) -> None:
    tracer = cap.tracer("agent")
    client = openai.AsyncOpenAI(base_url=stub.base_url, api_key="test", max_retries=0)

    async def tool_step(parent: trace.Span) -> None:
        with tracer.start_as_current_span("execute_tool lookup", context=trace.set_span_in_context(
                parent), attributes={"gen_ai.operation.name": "execute_tool",
                                     "gen_ai.tool.name": "lookup"}):
            await asyncio.sleep(0)

    async def agent(customer: str) -> None:
        async with spanledger.attribute(team="agents", customer=customer):
            with tracer.start_as_current_span(f"invoke_agent {customer}", attributes={
                    "gen_ai.operation.name": "invoke_agent"}) as span:
                messages: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
                first = await client.chat.completions.create(
                    model="gpt-4o-mini", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
                call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
                # a task started from an empty context: only the span is handed over
                await asyncio.get_running_loop().create_task(tool_step(span),
                                                             context=contextvars.Context())
                messages += [first.choices[0].message.model_dump(exclude_none=True),
                             {"role": "tool", "tool_call_id": call.id, "content": "42"}]
                await client.chat.completions.create(model="gpt-4o-mini", messages=messages,
                                                     tools=TOOLS)  # type: ignore[arg-type]

    async def main() -> None:
        await asyncio.gather(*(agent(c) for c in ("c1", "c2", "c3")))
        await client.close()

    asyncio.run(main())
    for customer in ("c1", "c2", "c3"):
        check_agent_trace(cap, cap.one(f"invoke_agent {customer}"),
                          {"team": "agents", "customer": customer})


class _Downstream(QuietHandler):
    """A second service: its own TracerProvider + CostSpanProcessor; baggage via the headers."""

    server: Any

    def do_GET(self) -> None:
        cap: Capture = self.server.cap
        ctx = propagate.extract(dict(self.headers))
        tracer = cap.tracer("downstream")
        with tracer.start_as_current_span("GET /rank", context=ctx, kind=trace.SpanKind.SERVER), \
                tracer.start_as_current_span("chat gpt-4o-mini", attributes={
                    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 500,
                    "gen_ai.usage.output_tokens": 50}):
            pass
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_downstream_service_gets_signed_attribution_over_http(cap: Capture) -> None:
    """Both services hold the baggage key: attribute() signs, the downstream verifies and
    takes the attribution (without a key it is not taken: tests/test_trust_baggage.py)."""
    with baggage_settings(baggage_keys="platform:shared-secret"):
        _downstream_gets_attribution(cap)


def _downstream_gets_attribution(cap: Capture) -> None:
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    downstream = capture()
    local = LocalHttpServer(_Downstream)
    local.server.cap = downstream  # type: ignore[attr-defined]
    RequestsInstrumentor().instrument(tracer_provider=cap.provider)
    try:
        with spanledger.attribute(team="search", customer="acme"), \
                cap.tracer().start_as_current_span("POST /search") as root:
            assert requests.get(f"{local.base_url}/rank", timeout=5).text == "ok"
    finally:
        RequestsInstrumentor().uninstrument()
        local.close()
    assert attribution(cap.one("GET")) == {"team": "search", "customer": "acme"}  # client span
    served = downstream.one("GET /rank")
    assert served.context.trace_id == root.get_span_context().trace_id
    assert attribution(served) == {"team": "search", "customer": "acme"}
    call = downstream.one("chat gpt-4o-mini")
    assert attribution(call) == {"team": "search", "customer": "acme"}
    assert_cost(call, expected_cost("gpt-4o-mini", "openai", input_tokens=500, output_tokens=50))
