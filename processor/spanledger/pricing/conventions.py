"""Usage conventions as data: which span attributes mean what, per instrumentation.

Instrumentations agree on little. The same call is described as
``gen_ai.usage.input_tokens`` (GenAI semconv: cache INCLUDED), as
``llm.token_count.prompt`` (OpenInference), as ``gen_ai.usage.input_tokens`` again
but with the cache EXCLUDED (OpenLLMetry's Bedrock spans, openlit's Anthropic spans),
with the one-hour cache writes split out (the anthropic SDK's own span) or not at all.
Guessing from the numbers ("cache larger than input, so input must exclude it")
fails as soon as the uncached part is the larger one, so each convention says
what its attributes mean, once, here.

A :class:`Convention` is one entry: the attribute names (first present wins) for
provider, model, every token count, the service tier, the response id and a cost
another tool reported, and whether its input count includes cached tokens. Adding
the next instrumentation is one entry in :data:`CONVENTIONS` plus one captured-span
fixture under ``tests/fixtures/spans/``.

Recognition (:func:`recognize`): the first entry whose instrumentation scope
prefix or marker attribute the span carries, else :data:`GENAI` (the GenAI
semantic conventions, current names first, then the legacy ones). An entry may be
limited to some providers (openlit reports Anthropic input without the cache,
OpenAI input with it). The readers in :mod:`spanledger.pricing.usage` are the only
consumers; the processor and the collector both go through them, and the
``llm_calls`` view reads the same names for spans that nobody priced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from spanledger import semconv


@dataclass(frozen=True, slots=True)
class Convention:
    """What one instrumentation's attributes mean. Each field lists names, first present wins."""

    #: short id, shown in README's table and in tests
    name: str
    #: instrumentation scope names (prefixes) that identify the convention
    scopes: tuple[str, ...] = ()
    #: attribute names whose presence identifies it (checked when no scope matched)
    markers: tuple[str, ...] = ()
    #: the entry applies only to these providers (lower case values of ``provider``); () = all
    providers: tuple[str, ...] = ()
    provider: tuple[str, ...] = semconv.PROVIDER
    #: the provider to price with whatever the attributes say (a gateway's own id scheme)
    fixed_provider: str | None = None
    response_model: tuple[str, ...] = (semconv.RESPONSE_MODEL,)
    request_model: tuple[str, ...] = (semconv.REQUEST_MODEL,)
    input: tuple[str, ...] = semconv.INPUT_TOKENS
    output: tuple[str, ...] = semconv.OUTPUT_TOKENS
    cache_read: tuple[str, ...] = semconv.CACHE_READ_TOKENS
    #: every cache write, whatever its time to live
    cache_write: tuple[str, ...] = semconv.CACHE_WRITE_TOKENS
    #: the writes with a 5-minute and a 1-hour time to live (parts of ``cache_write``)
    cache_write_5m: tuple[str, ...] = ()
    cache_write_1h: tuple[str, ...] = ()
    reasoning: tuple[str, ...] = semconv.REASONING_TOKENS
    #: the service tier the call was SERVED at, then the one asked for
    tier: tuple[str, ...] = semconv.SERVICE_TIER
    #: attributes holding the request parameters as JSON, with a ``service_tier`` key
    tier_in_json: tuple[str, ...] = ()
    response_id: tuple[str, ...] = (semconv.RESPONSE_ID,)
    #: a cost (USD) another tool put on the span
    reported_cost: tuple[str, ...] = semconv.REPORTED_COST_SOURCES
    #: the input count includes cache reads and writes (GenAI semconv); False: they come on top
    input_includes_cache: bool = True
    #: the output count includes reasoning tokens (GenAI semconv); False: they come on top
    output_includes_reasoning: bool = True
    #: what a user runs to get these spans (README's table)
    emitted_by: str = ""

    def usage_names(self) -> tuple[str, ...]:
        """Every token-count attribute of this convention (presence = the span has usage)."""
        return (*self.input, *self.output, *self.cache_read, *self.cache_write,
                *self.cache_write_5m, *self.cache_write_1h)


#: GenAI semantic conventions, current names first then the legacy ones (the default)
GENAI = Convention(
    name="genai-semconv",
    emitted_by="opentelemetry-instrumentation-openai / -anthropic (OpenLLMetry), "
               "opentelemetry-instrumentation-openai-v2, anything on GenAI semconv",
)

#: the anthropic SDK's own span (anthropic >= 2: ``anthropic.messages.create``)
ANTHROPIC_SDK = Convention(
    name="anthropic-sdk",
    scopes=("com.anthropic.sdk",),
    markers=(semconv.ANTHROPIC_CACHE_WRITE, semconv.ANTHROPIC_CACHE_WRITE_1H),
    cache_write=(semconv.ANTHROPIC_CACHE_WRITE, *semconv.CACHE_WRITE_TOKENS),
    cache_write_5m=(semconv.ANTHROPIC_CACHE_WRITE_5M,),
    cache_write_1h=(semconv.ANTHROPIC_CACHE_WRITE_1H,),
    emitted_by="anthropic >= 2 (traces itself)",
)

#: the mistralai SDK's own span (mistralai 1.x: ``chat_completion_v1_chat_completions_post``)
MISTRAL_SDK = Convention(
    name="mistral-sdk",
    scopes=("mistralai_sdk_tracer",),
    markers=(semconv.MISTRAL_OPERATION_ID,),
    emitted_by="mistralai 1.x (traces itself)",
)

#: OpenLLMetry's Bedrock spans: Bedrock's own counts, input WITHOUT the cache, and the
#: model id without its vendor prefix (``nova-pro-v1:0``; the catalog restores it)
OPENLLMETRY_BEDROCK = Convention(
    name="openllmetry-bedrock",
    scopes=("opentelemetry.instrumentation.bedrock",),
    input_includes_cache=False,
    emitted_by="opentelemetry-instrumentation-bedrock (OpenLLMetry)",
)

#: OpenInference (Arize Phoenix): ``llm.*`` names, no gen_ai usage
OPENINFERENCE = Convention(
    name="openinference",
    scopes=("openinference.instrumentation",),
    markers=(semconv.OPENINFERENCE_INPUT, semconv.OPENINFERENCE_OUTPUT,
             *semconv.OPENINFERENCE_MODEL, semconv.OPENINFERENCE_KIND),
    provider=semconv.OPENINFERENCE_PROVIDER,
    response_model=semconv.OPENINFERENCE_MODEL,
    request_model=(),
    input=(semconv.OPENINFERENCE_INPUT,),
    output=(semconv.OPENINFERENCE_OUTPUT,),
    cache_read=(semconv.OPENINFERENCE_CACHE_READ,),
    cache_write=(semconv.OPENINFERENCE_CACHE_WRITE,),
    reasoning=(semconv.OPENINFERENCE_REASONING,),
    tier=(),
    tier_in_json=(semconv.OPENINFERENCE_INVOCATION,),
    response_id=(),
    reported_cost=(semconv.OPENINFERENCE_COST, *semconv.REPORTED_COST_SOURCES),
    emitted_by="openinference-instrumentation-openai (and the other OpenInference packages)",
)

#: openlit on Anthropic: Anthropic's own counts, input WITHOUT the cache
OPENLIT_ANTHROPIC = Convention(
    name="openlit-anthropic",
    scopes=("openlit",),
    providers=("anthropic",),
    input_includes_cache=False,
    emitted_by="openlit (Anthropic)",
)

#: openlit on everything else (OpenAI reports input with its cached part)
OPENLIT = Convention(
    name="openlit",
    scopes=("openlit",),
    emitted_by="openlit",
)

#: litellm's OpenTelemetry callback: its ``provider/model`` ids (``anthropic/claude-...``,
#: ``openai/text-embedding-3-small``) priced through genai-prices' litellm handling
LITELLM = Convention(
    name="litellm",
    scopes=("litellm",),
    markers=(semconv.LITELLM_COST, semconv.LITELLM_MODEL),
    fixed_provider="litellm",
    response_model=(semconv.LITELLM_MODEL, semconv.RESPONSE_MODEL),
    emitted_by="litellm (callbacks=['otel'])",
)

#: pydantic-ai / logfire: GenAI semconv names, cache counts under ``gen_ai.usage.details.*``
PYDANTIC_AI = Convention(
    name="pydantic-ai",
    scopes=("pydantic-ai", "logfire"),
    markers=(semconv.PYDANTIC_AI_CACHE_READ, semconv.PYDANTIC_AI_CACHE_WRITE),
    cache_read=(semconv.PYDANTIC_AI_CACHE_READ, *semconv.CACHE_READ_TOKENS),
    cache_write=(semconv.PYDANTIC_AI_CACHE_WRITE, *semconv.CACHE_WRITE_TOKENS),
    reasoning=(semconv.PYDANTIC_AI_REASONING, *semconv.REASONING_TOKENS),
    emitted_by="pydantic-ai (instrument=True) / logfire",
)

#: recognition order: the first entry whose scope prefix, then marker, fits wins
CONVENTIONS: tuple[Convention, ...] = (
    ANTHROPIC_SDK, MISTRAL_SDK, OPENLLMETRY_BEDROCK, OPENINFERENCE, OPENLIT_ANTHROPIC, OPENLIT,
    LITELLM, PYDANTIC_AI, GENAI,
)
_SPECIAL = CONVENTIONS[:-1]

#: marker attributes of every entry but GENAI: a span with none of them (and no special
#: scope) is read the GENAI way without looking further (the fast path)
MARKERS: frozenset[str] = frozenset(m for c in _SPECIAL for m in c.markers)


def _names(fields: Iterable[str]) -> frozenset[str]:
    out: set[str] = set()
    for c in CONVENTIONS:
        for f in fields:
            out.update(getattr(c, f))
    return frozenset(out)


#: every token-count attribute of every convention: a span with one of them has usage
USAGE_KEYS: frozenset[str] = frozenset(n for c in CONVENTIONS for n in c.usage_names())
#: every attribute that makes a span a model call worth reading (usage, model, provider, ...)
CALL_KEYS: frozenset[str] = (
    USAGE_KEYS | MARKERS | _names(("provider", "response_model", "request_model"))
    | {semconv.OPERATION, *semconv.TOTAL_TOKENS}
)

#: names that send a span off the fast path when present: other conventions' markers,
#: service tiers and costs other tools reported (rare on a span; one set walk finds them all)
RARE_KEYS: frozenset[str] = (
    MARKERS | frozenset(semconv.SERVICE_TIER) | frozenset(semconv.REPORTED_COST_SOURCES)
)

#: scope name -> the special entries whose prefix it has (() for a plain GenAI scope); read
#: directly on the per-span path, filled by :func:`scope_entries`
SCOPES: dict[str, tuple[Convention, ...]] = {}
_scope_cache = SCOPES
_MAX_SCOPES = 1024


def scope_entries(scope: str) -> tuple[Convention, ...]:
    """:data:`SCOPES` ``[scope]``, computed and cached on first sight."""
    return _by_scope(scope)


def _by_scope(scope: str) -> tuple[Convention, ...]:
    """The special entries whose scope prefix ``scope`` has (cached: scopes are few)."""
    found = _scope_cache.get(scope)
    if found is None:
        found = tuple(c for c in _SPECIAL if any(scope.startswith(p) for p in c.scopes))
        if len(_scope_cache) >= _MAX_SCOPES:
            _scope_cache.clear()
        _scope_cache[scope] = found
    return found


def _provider_value(attrs: Mapping[str, Any], convention: Convention) -> str:
    for name in convention.provider:
        value = attrs.get(name)
        if type(value) is str and value:
            return value.lower()
    return ""


def _fits(convention: Convention, attrs: Mapping[str, Any]) -> bool:
    return not convention.providers or _provider_value(attrs, convention) in convention.providers


def recognize(attrs: Mapping[str, Any], scope: str | None = None) -> Convention:
    """The convention a span's attributes follow (see the module docstring for the order)."""
    if scope:
        for c in _by_scope(scope):
            if _fits(c, attrs):
                return c
    if MARKERS.isdisjoint(attrs):
        return GENAI
    for c in _SPECIAL:
        if c.markers and any(m in attrs for m in c.markers) and _fits(c, attrs):
            return c
    return GENAI


def is_special_scope(scope: str | None) -> bool:
    """Does ``scope`` name an instrumentation with its own entry (not plain GenAI semconv)?"""
    return bool(scope) and bool(_by_scope(scope))  # type: ignore[arg-type]
