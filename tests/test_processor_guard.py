"""The kill switch with the real openai client, its instrumentation and the cost processor,
against the stub provider that counts every request it receives.

What a user sees: BudgetExceeded names the budget and comes BEFORE the provider is called;
ten threads of one run stop within one reservation of the limit; the run's cost travels
to a downstream service in baggage; the collector's hard stops apply, and an unreachable
collector blocks nothing.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

import spanledger
from spanledger import semconv as sc
from spanledger.demo.stub_provider import ChatUsage, StubProvider
from spanledger.processor import guard_clients, guard_ledger, guard_remote
from support.processor import (
    Capture,
    capture,
    cost_of,
    expected_cost,
    instrumented,
    openai_client,
)

D = Decimal
#: what every stub call costs: gpt-4o, 20 input tokens, 100 output tokens (= max_tokens)
USAGE = ChatUsage(prompt_tokens=20, completion_tokens=100)
CALL_USD = expected_cost("gpt-4o", "openai", input_tokens=20, output_tokens=100)
MESSAGES = [{"role": "user", "content": "keep going"}]


@pytest.fixture(autouse=True)
def _clean_guard() -> Iterator[None]:
    yield
    guard_remote.stop_watching()
    guard_remote.uninstall_propagator()
    guard_clients.uninstall()
    guard_remote.LIMIT_SOURCE.clear()


@pytest.fixture(scope="module")
def stub() -> Iterator[StubProvider]:
    with StubProvider(chat_usage=USAGE) as s:
        yield s


@pytest.fixture
def cap(stub: StubProvider) -> Iterator[Capture]:
    c = capture()
    with instrumented(c.provider):
        yield c


def call(c: openai.OpenAI) -> Any:
    return c.chat.completions.create(model="gpt-4o", max_tokens=100, messages=MESSAGES)


def reservation_usd() -> Decimal:
    """What the guard reserves for ``call``: max_tokens output, input from the body size."""
    found = guard_clients.describe("openai", _Options(
        {"model": "gpt-4o", "max_tokens": 100, "messages": MESSAGES}))
    assert found is not None and found.max_output_tokens == 100
    assert found.input_tokens >= USAGE.prompt_tokens  # the stub stays within the reservation
    return expected_cost("gpt-4o", "openai", input_tokens=found.input_tokens,
                         output_tokens=100)


class _Options:
    method, url = "post", "/chat/completions"

    def __init__(self, body: dict[str, Any]) -> None:
        self.json_data = body


def test_refused_before_the_provider_is_called(stub: StubProvider, cap: Capture) -> None:
    c = openai_client(stub)
    before = stub.total_requests
    limit = CALL_USD * 3 + reservation_usd() / 2  # room for 3 calls, not for a 4th
    made = 0
    with pytest.raises(spanledger.BudgetExceeded) as err, \
            cap.tracer().start_as_current_span("agent run") as root, \
            spanledger.guard(max_run_usd=limit, name="triage-agent"):
        while made < 10:
            call(c)
            made += 1
    assert made == 3 and stub.total_requests - before == 3  # the 4th never left
    e = err.value
    assert e.budget == "triage-agent" and e.kind == "run" and e.model == "gpt-4o"
    assert e.limit_usd == limit and e.spent_usd == CALL_USD * 3
    assert e.trace_id == f"{root.get_span_context().trace_id:032x}"
    assert "budget 'triage-agent'" in str(e) and "max_run_usd" in str(e)
    priced = [s for s in cap.named("openai.chat") if cost_of(s) is not None]
    assert len(priced) == 3
    assert (priced[-1].attributes or {})[sc.TRACE_COST_TO_DATE] == pytest.approx(
        float(CALL_USD * 3))


def test_a_limit_is_reached_at_greater_or_equal() -> None:
    """A run whose cost so far equals its limit makes no further call, even a free one."""
    pico = guard_ledger.to_pico
    with spanledger.guard(max_run_usd="1.00"):
        r = guard_ledger.reserve_call("openai", "gpt-4o", input_tokens=0, max_output_tokens=0)
        r.settle(pico("0.999999999999"))
        guard_ledger.reserve_call("openai", "gpt-4o", input_tokens=0,
                                  max_output_tokens=0).settle(0)  # 1e-12 below: allowed
        guard_ledger.reserve_call("openai", "gpt-4o", input_tokens=0,
                                  max_output_tokens=0).settle(pico("0.000000000001"))
        with pytest.raises(spanledger.BudgetExceeded) as err:
            guard_ledger.reserve_call("openai", "gpt-4o", input_tokens=0, max_output_tokens=0)
    assert err.value.spent_usd == D(1) and err.value.reservation_usd == 0


def test_ten_threads_in_one_run_stop_within_one_reservation(stub: StubProvider,
                                                            cap: Capture) -> None:
    c = openai_client(stub)
    before = stub.total_requests
    limit = D("0.05")
    refused = []
    made = []

    def worker() -> None:
        n = 0
        try:
            while n < 100:
                call(c)
                n += 1
        except spanledger.BudgetExceeded as exc:
            refused.append(exc)
        made.append(n)

    with cap.tracer().start_as_current_span("agent run") as root, \
            spanledger.guard(max_run_usd=limit), ThreadPoolExecutor(10) as pool:
        # each thread runs in a copy of the run's context (the guard and the span)
        futures = [pool.submit(contextvars.copy_context().run, worker) for _ in range(10)]
        for f in futures:
            f.result()
    trace_id = root.get_span_context().trace_id
    spans = [s for s in cap.named("openai.chat") if s.context.trace_id == trace_id]
    total = sum((cost_of(s) or D(0) for s in spans), D(0))
    assert len(refused) == 10  # every thread was stopped
    assert sum(made) == stub.total_requests - before == len(
        [s for s in spans if cost_of(s) is not None])
    assert total <= limit + reservation_usd()  # never more than one reservation past
    assert total > limit - 2 * reservation_usd()  # and the budget was used, not wasted


@pytest.fixture
def downstream(stub: StubProvider) -> Iterator[str]:
    """tests/support/downstream_service.py in its own process: its URL."""
    script = Path(__file__).parent / "support" / "downstream_service.py"
    proc = subprocess.Popen([sys.executable, str(script), stub.base_url], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        assert line.startswith("port "), line + proc.stdout.read()
        yield f"http://127.0.0.1:{line.split()[1]}/rank"
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_baggage_carries_the_run_total_downstream(stub: StubProvider, cap: Capture,
                                                  downstream: str) -> None:
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    # downstream may spend 2.5 calls on the run, whatever the upstream already spent
    limit = str(CALL_USD * 2 + reservation_usd() / 2)
    RequestsInstrumentor().instrument(tracer_provider=cap.provider)
    try:
        with cap.tracer().start_as_current_span("POST /answer") as root, \
                spanledger.guard(max_run_usd=1):
            call(openai_client(stub))
            first = requests.get(downstream, params={"limit": limit}, timeout=30).json()
            call(openai_client(stub))
            before = stub.total_requests
            second = requests.get(downstream, params={"limit": limit}, timeout=30).json()
            after = stub.total_requests
    finally:
        RequestsInstrumentor().uninstrument()
    trace_id = f"{root.get_span_context().trace_id:032x}"
    assert first["trace_id"] == second["trace_id"] == trace_id  # one run across services
    # what the run had spent upstream when each request left
    assert D(first["cost_to_date"]) == CALL_USD and D(second["cost_to_date"]) == CALL_USD * 2
    assert first["refused"] is None
    # 2 upstream + 1 downstream (first request) + a reservation > 2.5 calls: refused there,
    # before the stub was called
    assert after == before and "budget 'rank'" in second["refused"]


def test_async_client_and_decorator(stub: StubProvider, cap: Capture) -> None:
    aclient = openai.AsyncOpenAI(base_url=stub.base_url, api_key="test", max_retries=0)
    before = stub.total_requests

    @spanledger.guard(max_run_usd=CALL_USD / 2)
    async def agent() -> None:
        await aclient.chat.completions.create(model="gpt-4o", max_tokens=100,
                                              messages=MESSAGES)

    async def main() -> None:
        with cap.tracer().start_as_current_span("async run"):
            await agent()

    with pytest.raises(spanledger.BudgetExceeded):
        asyncio.run(main())
    assert stub.total_requests == before


def test_on_exceed_log_lets_calls_through(stub: StubProvider, cap: Capture,
                                          caplog: pytest.LogCaptureFixture) -> None:
    c = openai_client(stub)
    logged = guard_ledger.STATS.logged
    before = stub.total_requests
    with cap.tracer().start_as_current_span("run"), \
            spanledger.guard(max_run_usd=CALL_USD / 2, on_exceed="log", name="soft"):
        for _ in range(3):
            call(c)
    assert stub.total_requests - before == 3
    assert guard_ledger.STATS.logged - logged == 3
    warnings = [r for r in caplog.records if "budget 'soft'" in r.getMessage()]
    assert len(warnings) == 1  # once per run and budget


STATE = {
    "version": 1, "stale_after_s": 600,
    "stops": [{"budget": "support-chat", "scope": {"team": "support", "feature": "chat"},
               "on_exceed": "raise"}],
    "run_limits": [{"budget": "triage-runs", "scope": {"feature": "triage"},
                    "max_run_usd": str(CALL_USD * D("1.5")), "on_exceed": "raise"}],
}


def test_budget_file_limits_from_the_collector(stub: StubProvider, cap: Capture) -> None:
    from spanledger.collector.receivers.http_receiver import HttpServer

    state = HttpServer("127.0.0.1", 0, intake=None, max_body_mb=1, health=None,
                       metrics_text=None, token="tok",
                       budgets_state=lambda: json.dumps(STATE).encode())
    state.start()
    c = openai_client(stub)
    try:
        watcher = spanledger.watch_budgets(f"http://127.0.0.1:{state.port}", token="tok",
                                           every_s=60)
        assert watcher.wait_polled(10) and watcher.fetches == 1
        before = stub.total_requests
        with spanledger.attribute(team="support", feature="chat"), \
                cap.tracer().start_as_current_span("chat"), \
                pytest.raises(spanledger.BudgetExceeded) as err:
            call(c)
        assert err.value.kind == "hard_stop" and err.value.budget == "support-chat"
        assert "reached its hard stop" in str(err.value)
        with spanledger.attribute(team="support", feature="triage"), \
                cap.tracer().start_as_current_span("triage run"):
            call(c)  # the run limit (1.5 calls) allows one call, not two
            with pytest.raises(spanledger.BudgetExceeded) as err:
                call(c)
        assert err.value.budget == "triage-runs" and err.value.kind == "run"
        with spanledger.attribute(team="search", feature="chat"), \
                cap.tracer().start_as_current_span("other"):
            call(c)  # another team: no stop applies
        assert stub.total_requests - before == 2
        wrong = spanledger.watch_budgets(f"http://127.0.0.1:{state.port}", token="nope",
                                         every_s=60)
        assert wrong.wait_polled(10) and wrong.failures == 1 and wrong.fetches == 0
    finally:
        state.stop()


def test_an_unreachable_collector_blocks_nothing(stub: StubProvider, cap: Capture) -> None:
    watcher = spanledger.watch_budgets("http://127.0.0.1:1", every_s=60, timeout_s=1)
    assert watcher.wait_polled(10) and watcher.failures >= 1
    unknown = guard_ledger.STATS.unknown_state
    before = stub.total_requests
    with spanledger.attribute(team="support", feature="chat"), \
            cap.tracer().start_as_current_span("chat"):
        call(openai_client(stub))
        call(openai_client(stub))
    assert stub.total_requests - before == 2  # allowed ...
    assert guard_ledger.STATS.unknown_state - unknown == 2  # ... and counted


@pytest.mark.parametrize("order", ["instrumented first", "guard first"])
def test_an_instrumentation_wrapping_request_neither_bypasses_nor_doubles_the_check(
        stub: StubProvider, cap: Capture, order: str) -> None:
    """OpenInference wraps ``OpenAI.request`` itself. Put there before the guard, its wrapper
    holds the SDK's own method; put there after, it calls the hooked one. Either way each
    call is checked exactly once: refused before it leaves, reserved once."""
    from openinference.instrumentation.openai import OpenAIInstrumentor

    instrumentor = OpenAIInstrumentor()
    if order == "guard first":
        guard_clients.install()
    instrumentor.instrument(tracer_provider=cap.provider)
    try:
        c = openai_client(stub)
        before = stub.total_requests
        checked = guard_ledger.STATS.checked
        limit = CALL_USD * 2 + reservation_usd() / 2  # room for 2 calls, not for a 3rd
        made = 0
        with pytest.raises(spanledger.BudgetExceeded), \
                cap.tracer().start_as_current_span("agent run"), \
                spanledger.guard(max_run_usd=limit):
            while made < 10:
                call(c)
                made += 1
        assert made == 2 and stub.total_requests - before == 2
        assert guard_ledger.STATS.checked - checked == 3  # one check per call, the 3rd refused
    finally:
        instrumentor.uninstrument()
