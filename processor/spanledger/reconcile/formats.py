"""The provider exports spanledger reads, as data: one entry per format.

Each format says where a bucket's day is, where the money, the model, the token
type, the token counts and the service tier are, and what the provider's
words mean in ours. :mod:`.readers` interprets these entries and nothing else,
so supporting the next provider's export is one more entry here (and a sample
file), not new parsing code.

Our token types: ``input`` (input billed at the input rate, i.e. without cache
reads and writes), ``cache_read``, ``cache_write``, ``output`` (reasoning
included, as every provider bills it) and ``requests`` (per-request charges such
as web search). A line without a token type covers all of a model's tokens.
``type:variant`` marks a priced variant of a type, e.g. ``cache_write:1h``
(Anthropic's one-hour cache writes, billed above the five-minute ones).

Shapes follow the providers' public API references (field names, units, and
the kind of values they hold); the sample files in
``collector-config/reconcile-samples/`` are written by this project.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

TOKEN_TYPES = ("input", "cache_read", "cache_write", "output")
#: a per-request charge (web search, code execution sessions): counted, not tokens
REQUESTS = "requests"
#: a line or row that covers every token type of its model
ALL = "all"

Kind = Literal["cost", "usage"]


@dataclass(frozen=True, slots=True)
class LineItem:
    """A text field holding the model and the token type, e.g. ``gpt-4o-2024-08-06, input``."""

    path: str
    pattern: re.Pattern[str]
    #: the pattern's ``type`` group (lower case) -> our token type
    types: Mapping[str, str]
    #: the pattern's ``tier`` group (lower case) -> our tier
    tiers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JsonFormat:
    """A paged JSON report: ``data[]`` buckets (one per day) of ``results[]``."""

    name: str
    provider: str
    kind: Kind
    title: str
    #: what every result carries, so a file is recognised by content, not by its name
    signature: frozenset[str]
    #: ``object`` value of each result, when the API names it
    result_object: str | None
    #: bucket start: path and "unix" (seconds) or "rfc3339"
    bucket_start: str
    time: Literal["unix", "rfc3339"]
    #: money: path, and "usd" or "cents" (Anthropic's amounts are decimal strings in cents)
    amount: str | None = None
    amount_unit: Literal["usd", "cents"] = "usd"
    currency: str | None = None
    model: str | None = None
    line_item: LineItem | None = None
    #: path of the token type, and the provider's values -> ours
    token_type: str | None = None
    token_types: Mapping[str, str] = field(default_factory=dict)
    #: usage reports: our token type -> signed paths summed into it
    tokens: Mapping[str, tuple[tuple[int, str], ...]] = field(default_factory=dict)
    requests: str | None = None
    #: service tier: path, and the provider's values -> ours (standard, batch, priority, flex)
    tier: str | None = None
    tiers: Mapping[object, str] = field(default_factory=dict)
    #: operations the report covers: a completions usage report says nothing about embeddings
    covers_embeddings: bool = True


OPENAI_COSTS = JsonFormat(
    name="openai-costs",
    provider="openai",
    kind="cost",
    title="OpenAI Costs API (GET /v1/organization/costs, group_by=line_item)",
    signature=frozenset({"amount"}),
    result_object="organization.costs.result",
    bucket_start="start_time",
    time="unix",
    amount="amount.value",
    currency="amount.currency",
    line_item=LineItem(
        path="line_item",
        # "gpt-4o-2024-08-06, input", "gpt-4o-mini, cached input", "gpt-4o, batch output";
        # a line item without a type ("text-embedding-3-small") covers all its tokens
        pattern=re.compile(r"^(?P<model>[^,]+?)(?:,\s*(?:(?P<tier>batch|flex|priority)\s+)?"
                           r"(?P<type>input|cached input|output|cache write))?\s*$",
                           re.IGNORECASE),
        types={"input": "input", "cached input": "cache_read", "output": "output",
               "cache write": "cache_write"},
        tiers={"batch": "batch", "flex": "flex", "priority": "priority"},
    ),
)

OPENAI_USAGE = JsonFormat(
    name="openai-usage",
    provider="openai",
    kind="usage",
    title="OpenAI Usage API, completions (GET /v1/organization/usage/completions, group_by=model)",
    signature=frozenset({"input_tokens", "output_tokens", "num_model_requests"}),
    result_object="organization.usage.completions.result",
    bucket_start="start_time",
    time="unix",
    model="model",
    # input_tokens includes the cached ones; the cached ones are billed at the cache rate
    tokens={"input": ((1, "input_tokens"), (-1, "input_cached_tokens")),
            "cache_read": ((1, "input_cached_tokens"),),
            "output": ((1, "output_tokens"),)},
    tier="batch",
    tiers={True: "batch", False: "standard"},
    covers_embeddings=False,
)

ANTHROPIC_COST = JsonFormat(
    name="anthropic-cost",
    provider="anthropic",
    kind="cost",
    title="Anthropic cost report (GET /v1/organizations/cost_report, group_by=description)",
    signature=frozenset({"amount", "currency", "cost_type"}),
    result_object=None,
    bucket_start="starting_at",
    time="rfc3339",
    amount="amount",
    amount_unit="cents",
    currency="currency",
    model="model",
    token_type="token_type",
    token_types={"uncached_input_tokens": "input", "output_tokens": "output",
                 "cache_read_input_tokens": "cache_read",
                 "cache_creation.ephemeral_5m_input_tokens": "cache_write",
                 "cache_creation.ephemeral_1h_input_tokens": "cache_write:1h"},
    tier="service_tier",
    tiers={"standard": "standard", "batch": "batch", "priority": "priority"},
)

ANTHROPIC_USAGE = JsonFormat(
    name="anthropic-usage",
    provider="anthropic",
    kind="usage",
    title="Anthropic usage report (GET /v1/organizations/usage_report/messages, group_by=model)",
    signature=frozenset({"uncached_input_tokens", "output_tokens"}),
    result_object=None,
    bucket_start="starting_at",
    time="rfc3339",
    model="model",
    tokens={"input": ((1, "uncached_input_tokens"),),
            "cache_read": ((1, "cache_read_input_tokens"),),
            "cache_write": ((1, "cache_creation.ephemeral_5m_input_tokens"),),
            "cache_write:1h": ((1, "cache_creation.ephemeral_1h_input_tokens"),),
            "output": ((1, "output_tokens"),)},
    requests="server_tool_use.web_search_requests",
    tier="service_tier",
    tiers={"standard": "standard", "batch": "batch", "priority": "priority"},
    covers_embeddings=False,
)

JSON_FORMATS: tuple[JsonFormat, ...] = (OPENAI_COSTS, OPENAI_USAGE, ANTHROPIC_COST,
                                        ANTHROPIC_USAGE)


@dataclass(frozen=True, slots=True)
class Rewrite:
    """A model name as a cloud writes it -> names genai-prices may know (tried in order)."""

    pattern: re.Pattern[str]
    templates: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FocusDialect:
    """How one cloud's FOCUS rows name the model and the token type of an AI service."""

    name: str
    provider: str
    title: str
    #: ``ServiceName`` values (lower case) of the AI service in this cloud's rows
    services: frozenset[str]
    #: column whose text holds model and token type, and its pattern (groups model, type, tier)
    meter_column: str
    meter: re.Pattern[str]
    types: Mapping[str, str]
    tiers: Mapping[str, str] = field(default_factory=dict)
    rewrites: tuple[Rewrite, ...] = ()


#: ``Claude4.5Sonnet`` -> claude-sonnet-4-5 (Claude 4+ naming), claude-4-5-sonnet, ...
_CAMEL_MODEL = Rewrite(
    re.compile(r"^(?P<family>[a-z]+)(?P<major>\d+)(?:\.(?P<minor>\d+))?(?P<tier>[a-z]+)$",
               re.IGNORECASE),
    ("{family}-{tier}-{major}-{minor}", "{family}-{major}-{minor}-{tier}",
     "{family}-{tier}-{major}", "{family}-{major}-{tier}"),
)
#: ``Gemini 2.5 Flash`` -> gemini-2.5-flash
_SPACED_MODEL = Rewrite(re.compile(r"^(?P<words>.+ .+)$"), ("{slug}",))

AWS_BEDROCK = FocusDialect(
    name="focus-aws-bedrock",
    provider="aws",
    title="AWS Data Exports FOCUS (Amazon Bedrock rows; model in x_UsageType)",
    services=frozenset({"amazon bedrock"}),
    meter_column="x_UsageType",
    # USE1-Claude4.5Sonnet-input-tokens, USE1-Claude4.5Sonnet-batch-output-tokens,
    # USE1-Claude4.5Sonnet-cache-read-input-token-count
    meter=re.compile(r"^[A-Z0-9]+-(?P<model>[A-Za-z0-9.]+?)-(?:(?P<tier>batch|flex|priority)-)?"
                     r"(?P<type>input-tokens|output-tokens|cache-read-input-token-count|"
                     r"cache-write-input-token-count)$"),
    types={"input-tokens": "input", "output-tokens": "output",
           "cache-read-input-token-count": "cache_read",
           "cache-write-input-token-count": "cache_write"},
    tiers={"batch": "batch", "flex": "flex", "priority": "priority"},
    rewrites=(_CAMEL_MODEL,),
)

AZURE_OPENAI = FocusDialect(
    name="focus-azure-openai",
    provider="azure",
    title="Azure Cost Management FOCUS export (Azure OpenAI rows; model in x_SkuMeterName)",
    services=frozenset({"azure openai", "azure openai service", "foundry models"}),
    meter_column="x_SkuMeterName",
    # gpt-4o-mini-0718-Inp-glbl, gpt-4o-mini-0718-cached-Inp-glbl, gpt-4o-0806-Outp-batch-glbl
    meter=re.compile(r"^(?P<model>.+?)-(?P<type>cached-Inp|Inp|Outp)(?:-(?P<tier>batch))?"
                     r"(?:-(?:glbl|regnl|dzone))?$", re.IGNORECASE),
    types={"inp": "input", "cached-inp": "cache_read", "outp": "output"},
    tiers={"batch": "batch"},
)

GCP_VERTEX = FocusDialect(
    name="focus-gcp-vertex",
    provider="google",
    title="Google Cloud FOCUS export (Vertex AI rows; model in ChargeDescription)",
    services=frozenset({"vertex ai", "gemini api"}),
    meter_column="ChargeDescription",
    # "Gemini 2.5 Flash Input Text Tokens", "Gemini 2.5 Flash Cached Input Text Tokens",
    # "Gemini 2.5 Flash Batch Output Text Tokens"
    meter=re.compile(r"^(?P<model>.+?) (?:(?P<tier>Batch) )?(?P<type>Cached Input|Input|Output)"
                     r" Text Tokens$", re.IGNORECASE),
    types={"input": "input", "cached input": "cache_read", "output": "output"},
    tiers={"batch": "batch"},
    rewrites=(_SPACED_MODEL,),
)

FOCUS_DIALECTS: tuple[FocusDialect, ...] = (AWS_BEDROCK, AZURE_OPENAI, GCP_VERTEX)

#: ConsumedUnit (lower case) -> tokens per unit
TOKEN_UNITS: Mapping[str, int] = {
    "tokens": 1, "token": 1, "1k tokens": 1_000, "1k": 1_000, "1000 tokens": 1_000,
    "1m tokens": 1_000_000, "1000000 tokens": 1_000_000, "million tokens": 1_000_000,
}

FORMAT_NAMES: tuple[str, ...] = (*(f.name for f in JSON_FORMATS), "focus")
