"""Attribute names: the public contract of spanledger's spans, in one place.

Every module reads names from here so a rename is one edit, and so the
processor, the collector, the ClickHouse views and the dashboards cannot drift.
ARCHITECTURE.md ("Attribute contract") says what each name means, and
tests/test_semconv_contract.py checks that every name the ClickHouse
migrations read is defined here.
"""

from __future__ import annotations

# --- attribution (written on every span) -----------------------------------
ATTR_PREFIX = "spanledger."
#: baggage key -> span attribute. The key list is configurable; these are the defaults.
DEFAULT_ATTRIBUTION_KEYS: tuple[str, ...] = ("team", "feature", "customer", "user", "cost_center")


def attribution_attr(key: str) -> str:
    """Span attribute that carries baggage key ``key`` (``team`` -> ``spanledger.team``)."""
    return ATTR_PREFIX + key


# --- trust: who may say which team (collector tokens, signed baggage) --------
#: resource attribute the collector stamps on every ResourceSpans with the name of the
#: token the request presented (a value sent by a client is removed first)
AUTH_TOKEN = "spanledger.auth.token"
#: ``false`` on a span whose token may not claim its team, cost centre or service
ATTRIBUTION_VERIFIED = "spanledger.attribution.verified"
#: what an unverified span claimed, kept beside the ``(unverified)`` it is stored with
TEAM_CLAIMED = "spanledger.team.claimed"
COST_CENTER_CLAIMED = "spanledger.cost_center.claimed"
#: resource attribute: the ``service.name`` an unverified resource claimed
SERVICE_CLAIMED = "spanledger.service.claimed"
#: the team / cost centre / service an unverified claim is stored as (its own report row)
UNVERIFIED = "(unverified)"
#: baggage entry: HMAC over the attribution entries, written by ``spanledger.attribute()``
#: when a baggage key is configured, verified where the baggage arrives
BAGGAGE_SIGNATURE = "spanledger.sig"

# --- cost (written on GenAI spans) -----------------------------------------
COST = "gen_ai.usage.cost"
COST_INPUT = "spanledger.cost.input"
COST_OUTPUT = "spanledger.cost.output"
COST_CACHE_READ = "spanledger.cost.cache_read"
COST_CACHE_WRITE = "spanledger.cost.cache_write"
COST_STATUS = "spanledger.cost.status"
COST_ROLLUP = "spanledger.cost.rollup"
PRICE_SOURCE = "spanledger.price.source"
STEP = "spanledger.step"
TRACE_COST_TO_DATE = "spanledger.trace.cost_to_date"

STATUS_PRICED = "priced"
STATUS_UNPRICED = "unpriced"
STATUS_AGGREGATE = "aggregate"
STATUS_NO_USAGE = "no_usage"
#: a second span of a provider call another span already counts (an SDK's own span beside
#: an instrumentation's): no cost, never summed, counted as a duplicate
STATUS_DUPLICATE = "duplicate"
#: on a duplicate: the span id (hex) of the span that carries the call's cost
DUPLICATE_OF = "spanledger.duplicate_of"
#: a row of ``llm_calls`` the views count nowhere: a value past the schema's sanity bounds
#: (tokens, cost) or a date the schema cannot file (more than a day ahead, before 1970),
#: from a writer that does not enforce the collector's bounds; shown, never summed
STATUS_INVALID = "invalid"
#: the statuses spanledger's processor writes: the only ones the collector takes from a
#: client (and then only as claims it checks; see collector/pricing_enricher.py)
PROCESSOR_STATUSES = frozenset({STATUS_PRICED, STATUS_UNPRICED, STATUS_AGGREGATE,
                                STATUS_NO_USAGE, STATUS_DUPLICATE})
#: a cost (USD) the span arrived with, kept beside ours, never summed: the figure the
#: service priced it at (the collector re-prices every span) or another tool's
COST_REPORTED = "spanledger.cost.reported"
#: who reported it: ``service`` (a service's own spanledger processor) or the convention
#: of the tool that put it on the span (``openlit``, ``litellm``, ``genai-semconv``, ...)
COST_REPORTED_BY = "spanledger.cost.reported_by"
REPORTED_BY_SERVICE = "service"
#: ``true`` when the reported cost differs from the collector's beyond its tolerance
#: (counted and shown, never summed)
COST_DISAGREES = "spanledger.cost.disagrees"
#: a claim of the client the collector did not take (the span was re-derived): the
#: claimed status (``aggregate`` without the calls that carry its usage in its trace,
#: ``duplicate`` without its keeper, ``no_usage`` on a span with usage, a status that is
#: not one of :data:`PROCESSOR_STATUSES`), or ``cost`` (cost attributes on a span that is
#: no call)
CLAIM_REJECTED = "spanledger.claim.rejected"
#: the cost under the names the GenAI conventions are converging on (a setting; PR #443 of
#: semantic-conventions-genai): amount in USD and the currency code
COST_AMOUNT = "gen_ai.usage.cost.amount"
COST_CURRENCY = "gen_ai.usage.cost.currency"
#: environment variable (and CostSpanProcessor argument ``semconv_cost``) that turns it on
SEMCONV_COST_ENV = "SPANLEDGER_SEMCONV_COST"

# --- what spanledger priced from (normalized; written by the processor and the collector) ---
#: the usage, model and provider a cost was computed from, whatever convention the span
#: followed: input INCLUDES cache reads and writes, output includes reasoning; the
#: llm_calls view prefers these over the instrumentation's own names
USAGE_INPUT = "spanledger.usage.input_tokens"
USAGE_OUTPUT = "spanledger.usage.output_tokens"
USAGE_CACHE_READ = "spanledger.usage.cache_read_tokens"
USAGE_CACHE_WRITE = "spanledger.usage.cache_write_tokens"
USAGE_CACHE_WRITE_1H = "spanledger.usage.cache_write_1h_tokens"
USAGE_REASONING = "spanledger.usage.reasoning_tokens"
MODEL = "spanledger.model"
PROVIDER_NORMALIZED = "spanledger.provider"
#: the service tier or processing mode priced (``flex``, ``priority``, ``batch``)
PRICE_TIER = "spanledger.price.tier"
#: which usage convention the span was read with (pricing/conventions.py)
CONVENTION = "spanledger.convention"

# --- business outcomes (``spanledger.outcome(...)``: one small span per outcome) ----
#: what was achieved: ``ticket_resolved``, ``conversion``, ... (its presence marks the span)
OUTCOME_NAME = "spanledger.outcome.name"
#: how many / how much of it (a number, never money; default 1)
OUTCOME_VALUE = "spanledger.outcome.value"
#: the run (trace id, 32 lowercase hex) the outcome is counted for, when it was recorded
#: in another trace (a webhook, a CRM sync); absent: the outcome span's own trace
OUTCOME_TRACE_ID = "spanledger.outcome.trace_id"
#: name of the outcome span (``outcome ticket_resolved``) and of its tracer
OUTCOME_SPAN_PREFIX = "outcome "
OUTCOME_TRACER = "spanledger.outcome"

# --- GenAI semantic conventions we read (current first, then legacy) -------
PROVIDER = ("gen_ai.provider.name", "gen_ai.system")
OPERATION = "gen_ai.operation.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
CACHE_READ_TOKENS = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
)
CACHE_WRITE_TOKENS = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
)
REASONING_TOKENS = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
)
TOTAL_TOKENS = ("gen_ai.usage.total_tokens", "llm.usage.total_tokens")
RESPONSE_ID = "gen_ai.response.id"
#: the tier a call was served at, then the one asked for (OpenAI: flex, priority, ...);
#: first ``spanledger.price.tier``, which an application may set itself (a batch job:
#: ``batch``) and which spanledger writes with the tier it priced
SERVICE_TIER = ("spanledger.price.tier",
                "openai.response.service_tier", "gen_ai.openai.response.service_tier",
                "openai.request.service_tier", "gen_ai.openai.request.service_tier",
                "gen_ai.request.service_tier")
#: costs other tools put on spans (USD): ours while a span is unpriced, and the
#: converging name, then litellm's and logfire's
REPORTED_COST_SOURCES = ("gen_ai.usage.cost", "gen_ai.usage.cost.amount",
                         "gen_ai.cost.total_cost", "operation.cost")
DB_SYSTEM = ("db.system.name", "db.system")
TOOL_NAME = "gen_ai.tool.name"
#: set by agent frameworks on invoke_agent spans; llm_calls keeps it per call
AGENT_NAME = "gen_ai.agent.name"

#: Operations whose spans sum their children's usage (never counted themselves).
AGGREGATE_OPERATIONS = frozenset({"invoke_agent", "invoke_workflow"})
#: a tool call: ``execute_tool`` spans (``llm_calls.CallKind`` = 'tool')
TOOL_OPERATION = "execute_tool"
#: vector databases by ``db.system.name``: their spans are vector-database calls
#: (``llm_calls.CallKind`` = 'vector_db'); other databases count only when priced per call
VECTOR_DB_SYSTEMS = ("chroma", "pinecone", "qdrant", "weaviate", "milvus", "lancedb",
                     "marqo", "pgvector", "vespa", "turbopuffer", "mongodb_atlas_vector_search")

# --- other instrumentations' names (pricing/conventions.py, and llm_calls_mv for spans that
# --- arrive unpriced through a collector that does not price) -----------------------------
ANTHROPIC_CACHE_WRITE = "gen_ai.usage.cache_write.input_tokens"
ANTHROPIC_CACHE_WRITE_5M = "anthropic.usage.cache_creation.ephemeral_5m_input_tokens"
ANTHROPIC_CACHE_WRITE_1H = "anthropic.usage.cache_creation.ephemeral_1h_input_tokens"
MISTRAL_OPERATION_ID = "mistral_ai.operation.id"
OPENINFERENCE_PROVIDER = ("llm.provider", "llm.system")
OPENINFERENCE_MODEL = ("llm.model_name", "embedding.model_name")
OPENINFERENCE_INPUT = "llm.token_count.prompt"
OPENINFERENCE_OUTPUT = "llm.token_count.completion"
OPENINFERENCE_CACHE_READ = "llm.token_count.prompt_details.cache_read"
OPENINFERENCE_CACHE_WRITE = "llm.token_count.prompt_details.cache_write"
OPENINFERENCE_REASONING = "llm.token_count.completion_details.reasoning"
OPENINFERENCE_KIND = "openinference.span.kind"
OPENINFERENCE_INVOCATION = "llm.invocation_parameters"
OPENINFERENCE_COST = "llm.cost.total"
LITELLM_MODEL = "litellm.provider.model"
LITELLM_COST = "gen_ai.cost.total_cost"
PYDANTIC_AI_CACHE_READ = "gen_ai.usage.details.cache_read_tokens"
PYDANTIC_AI_CACHE_WRITE = "gen_ai.usage.details.cache_write_tokens"
PYDANTIC_AI_REASONING = "gen_ai.usage.details.reasoning_tokens"

# --- resource attributes ----------------------------------------------------
SERVICE_NAME = "service.name"
ENVIRONMENT = ("deployment.environment.name", "deployment.environment")
