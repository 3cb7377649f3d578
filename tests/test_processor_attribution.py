"""Attribution: baggage -> spanledger.* on every span, inheritance when baggage is lost."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from concurrent.futures import ThreadPoolExecutor

from opentelemetry import baggage, context, trace

import spanledger
from support.processor import attribution, capture


def test_context_manager_attributes_every_plain_span() -> None:
    cap = capture()
    tracer = cap.tracer()
    with spanledger.attribute(team="search", feature="answers", customer="acme"), \
            tracer.start_as_current_span("root"), tracer.start_as_current_span("child"):
        pass
    with tracer.start_as_current_span("outside"):
        pass
    want = {"team": "search", "feature": "answers", "customer": "acme"}
    assert attribution(cap.one("root")) == want
    assert attribution(cap.one("child")) == want
    assert attribution(cap.one("outside")) == {}
    assert baggage.get_all() == {}  # detached on exit


def test_nesting_overrides_and_none_keeps_outer() -> None:
    cap = capture()
    tracer = cap.tracer()
    with spanledger.attribute(team="search", feature="answers", user="u1"):
        with spanledger.attribute(feature="rerank", user=None), \
                tracer.start_as_current_span("inner"):
            pass
        with tracer.start_as_current_span("after"):
            pass
    assert attribution(cap.one("inner")) == {"team": "search", "feature": "rerank", "user": "u1"}
    assert attribution(cap.one("after")) == {"team": "search", "feature": "answers", "user": "u1"}


def test_decorator_sync_and_async() -> None:
    cap = capture()
    tracer = cap.tracer()

    @spanledger.attribute(team="billing", cost_center="cc-42")
    def work(n: int) -> int:
        with tracer.start_as_current_span("sync"):
            return n + 1

    @spanledger.attribute(team="support", feature="triage")
    async def handle(name: str) -> str:
        with tracer.start_as_current_span(name):
            await asyncio.sleep(0)
        return name

    assert work(1) == 2
    assert inspect.iscoroutinefunction(handle)
    assert asyncio.run(handle("async")) == "async"
    assert attribution(cap.one("sync")) == {"team": "billing", "cost_center": "cc-42"}
    assert attribution(cap.one("async")) == {"team": "support", "feature": "triage"}


def test_concurrent_async_calls_keep_their_own_attribution() -> None:
    cap = capture()
    tracer = cap.tracer()

    async def one(customer: str) -> None:
        async with spanledger.attribute(team="t", customer=customer):
            await asyncio.sleep(0)
            with tracer.start_as_current_span(f"call-{customer}"):
                await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(one(f"c{i}") for i in range(5)))

    asyncio.run(main())
    for i in range(5):
        assert attribution(cap.one(f"call-c{i}")) == {"team": "t", "customer": f"c{i}"}


def test_thread_pool_inherits_from_parent_span_not_just_root() -> None:
    """The worker thread's context has only the parent span (as frameworks pass it), no baggage."""
    cap = capture()
    tracer = cap.tracer()

    def worker(parent: trace.Span, name: str) -> None:
        assert baggage.get_all() == {}  # the pool lost the baggage
        with tracer.start_as_current_span(name, context=trace.set_span_in_context(parent)), \
                tracer.start_as_current_span(name + "-grandchild"):
            pass

    with ThreadPoolExecutor(max_workers=2) as pool, \
            spanledger.attribute(team="search", feature="answers"), \
            tracer.start_as_current_span("root") as root:
        pool.submit(worker, root, "from-root").result()
        with spanledger.attribute(feature="rerank"), \
                tracer.start_as_current_span("stage") as stage:
            pool.submit(worker, stage, "from-stage").result()
    assert attribution(cap.one("from-root")) == {"team": "search", "feature": "answers"}
    assert attribution(cap.one("from-root-grandchild")) == {"team": "search", "feature": "answers"}
    # parent first: the stage's feature, not the root's
    assert attribution(cap.one("from-stage")) == {"team": "search", "feature": "rerank"}
    assert attribution(cap.one("from-stage-grandchild")) == {"team": "search", "feature": "rerank"}


def test_ended_parent_still_passes_its_attribution() -> None:
    """A callback that runs after its parent span ended inherits from that parent."""
    cap = capture()
    tracer = cap.tracer()
    with spanledger.attribute(team="search", feature="answers"), \
            tracer.start_as_current_span("root"):
        with spanledger.attribute(feature="rerank"), tracer.start_as_current_span("stage") as stage:
            pass
        ended_parent = trace.set_span_in_context(stage, context.Context())
        t = threading.Thread(target=lambda: tracer.start_span("late", context=ended_parent).end())
        t.start()
        t.join(5)
    assert attribution(cap.one("late")) == {"team": "search", "feature": "rerank"}


def test_falls_back_to_trace_root_when_only_a_span_context_is_passed() -> None:
    """Frameworks that carry a bare SpanContext (no span object, no baggage) get the root's."""
    cap = capture()
    tracer = cap.tracer()
    with spanledger.attribute(team="search", feature="answers"), \
            tracer.start_as_current_span("root"), spanledger.attribute(feature="rerank"), \
            tracer.start_as_current_span("stage") as stage:
        bare = trace.set_span_in_context(trace.NonRecordingSpan(stage.get_span_context()),
                                         context.Context())
        t = threading.Thread(target=lambda: tracer.start_span("callback", context=bare).end())
        t.start()
        t.join(5)
    callback = cap.one("callback")
    assert callback.parent is not None
    assert callback.parent.span_id == stage.get_span_context().span_id
    assert attribution(callback) == {"team": "search", "feature": "answers"}


def test_asyncio_task_with_fresh_context_inherits_from_parent() -> None:
    cap = capture()
    tracer = cap.tracer()

    async def step(parent: trace.Span) -> None:
        with tracer.start_as_current_span("task-step", context=trace.set_span_in_context(parent)):
            await asyncio.sleep(0)

    async def main() -> None:
        with spanledger.attribute(team="agents", customer="acme"), \
                tracer.start_as_current_span("agent") as agent:
            # A task started from an empty context (as some frameworks do): baggage is gone.
            await asyncio.get_running_loop().create_task(step(agent), context=contextvars.Context())

    asyncio.run(main())
    assert attribution(cap.one("task-step")) == {"team": "agents", "customer": "acme"}


def test_baggage_set_in_a_worker_wins_over_inheritance() -> None:
    """Inheritance fills in only when the context has no attribution at all."""
    cap = capture()
    tracer = cap.tracer()
    with spanledger.attribute(team="search", customer="acme"), \
            tracer.start_as_current_span("root") as root:
        def worker() -> None:
            with spanledger.attribute(team="batch"), tracer.start_as_current_span(
                    "worker", context=trace.set_span_in_context(root, context.get_current())):
                pass
        t = threading.Thread(target=worker)
        t.start()
        t.join(5)
    assert attribution(cap.one("worker")) == {"team": "batch"}


def test_attribution_keys_are_configurable() -> None:
    cap = capture(attribution_keys=["team", "tenant"])
    tracer = cap.tracer()
    with spanledger.attribute(team="search", feature="ignored", tenant="t-7"), \
            tracer.start_as_current_span("s"):
        pass
    assert attribution(cap.one("s")) == {"team": "search", "tenant": "t-7"}


def test_plain_span_passes_through_uncopied() -> None:
    """No GenAI attributes: the exporter gets the SDK's own ReadableSpan, with attribution."""
    cap = capture()
    with spanledger.attribute(team="a"), cap.tracer().start_as_current_span("plain") as span:
        span.set_attribute("http.request.method", "GET")
    (out,) = cap.spans()
    assert dict(out.attributes or {}) == {"spanledger.team": "a", "http.request.method": "GET"}
    assert cap.processor.stats.enriched == 0
