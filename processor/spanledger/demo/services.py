"""The sample services: turn a :class:`~.scenario.TracePlan` into real client calls and spans.

Calls go through the real ``openai`` and ``anthropic`` clients, instrumented
by their OpenTelemetry instrumentations, to the local stub provider; the only
spans written by hand are the ones no instrumentation makes here: the request
or agent root, vector-database queries and tool executions, named and
attributed the way GenAI semantic conventions say. Outcomes go through the
public ``spanledger.outcome(...)``: at the end of a successful run, or from a
CRM webhook in its own trace that names the run (sales conversions).

The stub answers with the usage the plan chose: each request carries it in an
extra JSON field (``spanledger_demo_usage``) that :func:`stub_usage` reads.
That field is the demo's only departure from a production request.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanContext, SpanKind, Tracer, TracerProvider

from spanledger import attribute, outcome
from spanledger.demo.scenario import Chat, Embed, PlannedOutcome, TracePlan, VectorSearch
from spanledger.demo.staging import Stage, staged
from spanledger.demo.stub_provider import AnthropicUsage, ChatUsage

__all__ = ["DemoServices", "stub_usage"]

USAGE_FIELD = "spanledger_demo_usage"
#: the service that receives the CRM's conversion webhooks
WEBHOOK_SERVICE = "crm-webhooks"

_TOOLS: dict[str, str] = {
    "lookup_ticket": "Fetch a support ticket and its history by id.",
    "search_kb": "Search the internal knowledge base.",
    "web_search": "Search the public web.",
}


def stub_usage(endpoint: str, body: dict[str, Any]) -> ChatUsage | AnthropicUsage | int | None:
    """The stub provider's usage hook: answer with the usage the plan put in the request."""
    u = body.get(USAGE_FIELD)
    if u is None:
        return None
    if endpoint == "chat":
        return ChatUsage(prompt_tokens=u[0], completion_tokens=u[1], cached_tokens=u[2])
    if endpoint == "messages":
        return AnthropicUsage(input_tokens=u[0], output_tokens=u[1],
                              cache_read_input_tokens=u[2], cache_creation_input_tokens=u[3])
    if endpoint == "embeddings":
        return int(u)
    return None


def _tool_def(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name, "description": _TOOLS[name],
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                       "required": ["query"]}}}


class DemoServices:
    """Runs plans in this process; one client of each kind, reused (keep-alive)."""

    def __init__(self, tracer: Tracer, openai_client: openai.OpenAI,
                 anthropic_client: anthropic.Anthropic,
                 provider: TracerProvider | None = None) -> None:
        self._tracer = tracer
        #: where outcome spans go (the worker's provider; None: the global one)
        self._provider = provider
        self._openai = openai_client
        self._anthropic = anthropic_client
        self._resources: dict[tuple[str, str], Resource] = {}

    def _resource(self, service: str, environment: str) -> Resource:
        key = (service, environment)
        res = self._resources.get(key)
        if res is None:
            res = self._resources[key] = Resource.create({
                "service.name": service,
                "deployment.environment.name": environment,
                "service.namespace": "spanledger-demo",
            })
        return res

    def run(self, plan: TracePlan) -> None:
        """One trace: the root span, then each step in order, attributed through baggage."""
        stage = Stage(plan.start_ns, self._resource(plan.service, plan.environment))
        who = attribute(team=plan.team or None, feature=plan.feature or None,
                        customer=plan.customer or None, user=plan.user or None,
                        cost_center=plan.cost_center or None)
        if plan.agent:
            name, kind = plan.root_name, SpanKind.INTERNAL
            attrs: dict[str, Any] = {"gen_ai.operation.name": "invoke_agent",
                                     "gen_ai.agent.name": plan.agent}
        else:
            name, kind, attrs = plan.root_name, SpanKind.SERVER, {}
        with staged(stage), who, self._tracer.start_as_current_span(name, kind=kind,
                                                                    attributes=attrs) as root:
            messages: list[dict[str, Any]] = [
                {"role": "system", "content": f"You help with {plan.feature or 'batch jobs'}."},
                {"role": "user", "content": f"Please help with request #{plan.index}."},
            ]
            for step in plan.steps:
                if isinstance(step, Chat):
                    if step.provider == "anthropic":
                        self._anthropic_chat(step)
                    else:
                        self._openai_chat(step, messages)
                elif isinstance(step, Embed):
                    self._embed(step)
                elif isinstance(step, VectorSearch):
                    self._vector_search(step)
            for done in plan.outcomes:
                if done.later_ns is None:  # attributed by the run's baggage
                    outcome(done.name, done.value, tracer_provider=self._provider)
            run = root.get_span_context()
        for done in plan.outcomes:
            if done.later_ns is not None:
                self._webhook(plan, done, run)

    def _webhook(self, plan: TracePlan, done: PlannedOutcome, run: SpanContext) -> None:
        """The CRM reports a conversion later, in a trace of its own that names the run.

        The webhook knows the customer, not the team or feature: the reports take
        those from the run it names.
        """
        stage = Stage(plan.start_ns + (done.later_ns or 0),
                      self._resource(WEBHOOK_SERVICE, plan.environment))
        with staged(stage), self._tracer.start_as_current_span("POST /webhooks/crm",
                                                               kind=SpanKind.SERVER):
            outcome(done.name, done.value, trace_id=run.trace_id, span_id=run.span_id,
                    customer=plan.customer or None, tracer_provider=self._provider)

    def _openai_chat(self, step: Chat, messages: list[dict[str, Any]]) -> None:
        usage = [step.input_tokens, step.output_tokens, step.cache_read_tokens]
        if step.tool is None:
            self._openai.chat.completions.create(model=step.model, messages=messages,
                                                 extra_body={USAGE_FIELD: usage})
            return
        resp = self._openai.chat.completions.create(
            model=step.model, messages=messages, tools=[_tool_def(step.tool)],
            extra_body={USAGE_FIELD: usage})
        call = (resp.choices[0].message.tool_calls or [None])[0]
        call_id = call.id if call is not None else "call_none"
        with self._tracer.start_as_current_span(f"execute_tool {step.tool}", attributes={
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": step.tool,
            "gen_ai.tool.call.id": call_id,
            "gen_ai.tool.type": "function",
        }):
            result = f"{step.tool} found 3 results"
        # The agent keeps only its last tool exchange verbatim (older ones are summarized
        # into the token counts the plan chose): the client's request building stays
        # cheap even for the runaway's 45 rounds.
        del messages[2:]
        messages.append({"role": "assistant", "content": None, "tool_calls": [{
            "id": call_id, "type": "function",
            "function": {"name": step.tool, "arguments": '{"query": "demo"}'}}]})
        messages.append({"role": "tool", "tool_call_id": call_id, "content": result})

    def _anthropic_chat(self, step: Chat) -> None:
        fresh = step.input_tokens - step.cache_read_tokens - step.cache_write_tokens
        self._anthropic.messages.create(
            model=step.model, max_tokens=1024,
            system="You answer from the retrieved documents.",
            messages=[{"role": "user", "content": "Answer the question from the context."}],
            extra_body={USAGE_FIELD: [fresh, step.output_tokens, step.cache_read_tokens,
                                      step.cache_write_tokens]},
        )

    def _embed(self, step: Embed) -> None:
        self._openai.embeddings.create(model=step.model, input=["text"] * step.inputs,
                                       encoding_format="float",
                                       extra_body={USAGE_FIELD: step.tokens})

    def _vector_search(self, step: VectorSearch) -> None:
        with self._tracer.start_as_current_span(
            f"search {step.collection}", kind=SpanKind.CLIENT, attributes={
                "db.system.name": step.db_system,
                "db.operation.name": "search",
                "db.collection.name": step.collection,
                "db.vector.query.top_k": step.top_k,
                "server.address": "qdrant.internal",
            },
        ):
            pass
