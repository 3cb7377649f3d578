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
DB_SYSTEM = ("db.system.name", "db.system")
TOOL_NAME = "gen_ai.tool.name"
#: set by agent frameworks on invoke_agent spans; llm_calls keeps it per call
AGENT_NAME = "gen_ai.agent.name"

#: Operations whose spans sum their children's usage (never counted themselves).
AGGREGATE_OPERATIONS = frozenset({"invoke_agent", "invoke_workflow"})

# --- resource attributes ----------------------------------------------------
SERVICE_NAME = "service.name"
ENVIRONMENT = ("deployment.environment.name", "deployment.environment")
