"""SDK internals behind one door: a broken fast path falls back, and spans keep their cost.

Each fast path of ``spanledger.processor.sdk_access`` is broken on purpose in the
two ways a new SDK release can break it: the internal is gone (the fast path
raises) or it changed meaning (the fast path answers wrong, e.g. no attributes,
which would otherwise turn every span into "no cost"). The self-check must catch
both, switch that accessor to the public API, warn once naming it and count it;
and a processor built afterwards must export exactly the attributes (cost,
parts, status, step, running total, rollup, attribution) of the fast paths.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry import context, propagate
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import spanledger
from spanledger import semconv as sc
from spanledger.pricing.span_pricing import price_span
from spanledger.processor import sdk_access
from support.processor import capture, expected_cost, run_scenario, shared_catalog

EAGER = [n for n, a in sdk_access.ACCESSORS.items() if not a.lazy]


def _raises() -> Callable[..., Any]:
    raise AttributeError("module 'opentelemetry.sdk.trace' has no attribute '_renamed'")


def _const(value: Any) -> Callable[[], Callable[..., Any]]:
    return lambda: (lambda *args: value)


#: accessor -> a fast path whose internal changed meaning (it answers, wrongly)
WRONG: dict[str, Callable[[], Callable[..., Any]]] = {
    "current_context": lambda: context.Context,  # a fresh, empty context every call
    "baggage_of": _const({}),  # baggage never found: every span unattributed
    "context_span_attributes": _const(None),
    "local_parent_id": _const(None),  # every span a root
    "trace_id_of": lambda: sdk_access.ACCESSORS["span_id_of"].fast(),  # positions swapped
    "span_id_of": lambda: sdk_access.ACCESSORS["trace_id_of"].fast(),
    "span_facts": _const((0, None, 0, 0)),  # trace id, parent and times lost
    "read_attributes": _const({}),  # no attributes: every span "plain", none priced
    "add_attributes": _const(None),  # attribution silently not written
    "with_attributes": lambda: (lambda span, attributes: span),  # cost never attached
    "plain_mapping": _const({}),
    "propagator_members": _const([]),
    "forward_hook": _const(None),  # the wrapped processor's own hooks skipped
    "sdk_configurator": _const(int),  # not a configurator
}


@pytest.fixture(scope="module")
def baseline() -> dict[str, tuple[dict[str, Any], int]]:
    """The scenario's exported spans with every fast path in place."""
    assert sdk_access.check(EAGER) == dict.fromkeys(EAGER)
    return run_scenario(capture())


@pytest.fixture
def fresh_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which accessors already warned, so each test sees its own warning."""
    monkeypatch.setattr(sdk_access, "_warned", set())


@pytest.fixture
def break_fast_path(fresh_log: None) -> Iterator[Callable[[str, Callable[[], Any]], None]]:
    """Replace accessors' fast builders; afterwards restore them and re-run the check."""
    saved: dict[str, sdk_access.Accessor] = {}

    def apply(name: str, builder: Callable[[], Any]) -> None:
        saved.setdefault(name, sdk_access.ACCESSORS[name])
        sdk_access.ACCESSORS[name] = dataclasses.replace(saved[name], fast=builder)

    yield apply
    sdk_access.ACCESSORS.update(saved)
    assert all(reason is None for reason in sdk_access.check(list(saved)).values())


def test_every_fast_path_holds_on_the_installed_sdk() -> None:
    """This is what CI runs against the newest and the lowest supported SDK."""
    results = sdk_access.check([*EAGER, "sdk_configurator"])
    assert results == dict.fromkeys([*EAGER, "sdk_configurator"])
    assert sdk_access.fallbacks() == {}


@pytest.mark.parametrize("how", ["internal-gone", "wrong-answer"])
@pytest.mark.parametrize("name", list(sdk_access.ACCESSORS))
def test_broken_fast_path_falls_back_and_prices_exactly(
    name: str, how: str, baseline: dict[str, tuple[dict[str, Any], int]],
    break_fast_path: Callable[[str, Callable[[], Any]], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = sdk_access.STATS.fallbacks
    break_fast_path(name, _raises if how == "internal-gone" else WRONG[name])
    with caplog.at_level(logging.WARNING, logger="spanledger.processor"):
        reason = sdk_access.check([name])[name]
        sdk_access.check([name])  # a second check: still public, not logged or counted again
    assert reason is not None
    assert set(sdk_access.fallbacks()) == {name}
    assert sdk_access.STATS.fallbacks == before + 1
    assert getattr(sdk_access, name) is sdk_access.ACCESSORS[name].public
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"({name}: " in warnings[0], warnings
    assert "public API" in warnings[0]

    assert run_scenario(capture()) == baseline
    if name == "plain_mapping":
        _assert_proxy_priced_like_dict()
    if name == "propagator_members":
        _assert_baggage_propagated()


def test_the_scenario_prices_what_genai_prices_says(
        baseline: dict[str, tuple[dict[str, Any], int]]) -> None:
    """The baseline the fallbacks are compared with is itself right (not just consistent)."""
    chat1, _ = baseline["chat-1"]
    want = expected_cost("gpt-4o-mini", "openai", input_tokens=1200, output_tokens=300,
                         cache_read=1024)
    assert abs(Decimal(repr(chat1[sc.COST])) - want) <= Decimal("1e-9")
    assert chat1["spanledger.team"] == "search" and chat1[sc.STEP] == 1
    agent, _ = baseline["agent"]
    assert agent[sc.COST_STATUS] == sc.STATUS_AGGREGATE and agent[sc.COST_ROLLUP] > 0
    assert baseline["worker-chat"][0]["spanledger.customer"] == "acme"  # from the parent span
    assert baseline["ids-only"][0]["spanledger.team"] == "search"  # from the trace root
    assert baseline["unknown-model"][0][sc.COST_STATUS] == sc.STATUS_UNPRICED
    assert sc.COST not in baseline["unknown-model"][0]
    assert baseline["from-remote"][0]["spanledger.team"] == "edge"
    assert baseline["from-remote"][0][sc.COST_STATUS] == sc.STATUS_PRICED


def test_all_public_at_once_prices_exactly(
    baseline: dict[str, tuple[dict[str, Any], int]],
    break_fast_path: Callable[[str, Callable[[], Any]], None],
) -> None:
    for name in EAGER:
        break_fast_path(name, _raises)
    sdk_access.check(EAGER)
    assert set(sdk_access.fallbacks()) == set(EAGER)
    assert run_scenario(capture()) == baseline


def test_a_broken_self_check_trusts_no_fast_path(
    baseline: dict[str, tuple[dict[str, Any], int]], monkeypatch: pytest.MonkeyPatch,
    fresh_log: None,
) -> None:
    """If the probe spans cannot even be built, every accessor goes public."""
    from spanledger.processor import sdk_check

    def no_probes() -> None:
        raise TypeError("TracerProvider() got an unexpected keyword argument 'span_limits'")

    monkeypatch.setattr(sdk_check, "Probes", no_probes)
    try:
        results = sdk_access.check(EAGER)
        assert all(r is not None and "could not build" in r for r in results.values())
        assert run_scenario(capture()) == baseline
    finally:
        monkeypatch.undo()
        assert all(r is None for r in sdk_access.check(EAGER).values())


def test_fallbacks_are_an_opentelemetry_counter(
    break_fast_path: Callable[[str, Callable[[], Any]], None],
) -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    meter.create_observable_counter("spanledger.sdk_access.fallbacks",
                                    callbacks=[sdk_access.observe_fallbacks])
    break_fast_path("read_attributes", WRONG["read_attributes"])
    before = _fallback_points(reader).get("read_attributes", 0)
    sdk_access.check(["read_attributes"])
    assert _fallback_points(reader)["read_attributes"] == before + 1


def test_forced_public_by_environment(
    monkeypatch: pytest.MonkeyPatch, baseline: dict[str, tuple[dict[str, Any], int]],
) -> None:
    """``SPANLEDGER_SDK_PUBLIC`` keeps named accessors public, without a warning."""
    monkeypatch.setenv("SPANLEDGER_SDK_PUBLIC", "read_attributes,with_attributes")
    try:
        results = sdk_access.check(EAGER)
        assert {n for n, r in results.items() if r} == {"read_attributes", "with_attributes"}
        assert run_scenario(capture()) == baseline
    finally:
        monkeypatch.delenv("SPANLEDGER_SDK_PUBLIC")
        assert all(r is None for r in sdk_access.check(EAGER).values())


def _fallback_points(reader: InMemoryMetricReader) -> dict[str, int]:
    data = reader.get_metrics_data()
    points: dict[str, int] = {}
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "spanledger.sdk_access.fallbacks":
                    for p in metric.data.data_points:
                        points[str(p.attributes["spanledger.accessor"])] = int(p.value)
    return points


def _assert_proxy_priced_like_dict() -> None:
    """``price_span`` of the SDK's attribute proxy equals that of the plain dict."""
    cap = capture()
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
             "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 900,
             "gen_ai.usage.output_tokens": 90}
    with cap.tracer().start_as_current_span("probe", attributes=attrs):
        pass
    (span,) = cap.spans()
    start = span.start_time or 0
    assert price_span(shared_catalog(), span.attributes or {}, start) == price_span(
        shared_catalog(), attrs, start)


def _assert_baggage_propagated() -> None:
    before = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator()]))
    try:
        spanledger.configure(exporter=capture().exporter, set_global=False,
                             catalog=shared_catalog()).shutdown()
        carrier: dict[str, str] = {}
        with spanledger.attribute(team="search"):
            propagate.inject(carrier)
        assert carrier.get("baggage") == "team=search"
    finally:
        propagate.set_global_textmap(before)
