"""OpenTelemetry provider names -> genai-prices provider ids.

Spans name providers the GenAI semconv way (``aws.bedrock``, ``gcp.vertex_ai``,
``azure.ai.openai``; older instrumentations: ``vertex_ai``, ``az.ai.openai``...),
genai-prices names them its own way (``aws``, ``google``, ``azure``). A wrong
mapping prices Azure OpenAI at OpenAI's list price or Bedrock at Anthropic's,
so the table is explicit; genai-prices' own provider matching is only the
second try.
"""

from __future__ import annotations

from genai_prices.data_snapshot import find_provider_by_id, get_snapshot

#: explicit mapping, checked first (keys lower case)
OTEL_TO_GENAI_PRICES: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "aws.bedrock": "aws",
    "bedrock": "aws",
    "aws_bedrock": "aws",
    "gcp.vertex_ai": "google",
    "gcp.gemini": "google",
    "gcp.gen_ai": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "gemini": "google",
    "google": "google",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.openai": "azure",
    "az.ai.inference": "azure",
    "azure": "azure",
    "azure_openai": "azure",
    "azure_ai": "azure",
    "azure.ai": "azure",
    "az.ai": "azure",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "mistral": "mistral",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "together_ai": "together",
    "together": "together",
    "fireworks": "fireworks",
    "fireworks_ai": "fireworks",
    "openrouter": "openrouter",
    "moonshot": "moonshotai",
    "moonshotai": "moonshotai",
    "cerebras": "cerebras",
    "voyageai": "voyageai",
    # genai-prices' own litellm handling: "anthropic/claude-..." ids name their provider
    "litellm": "litellm",
}

#: providers that run models on your own hardware: no catalog price applies
#: (a cloud list price would be a made-up number); price them in the overrides file.
SELF_HOSTED: frozenset[str] = frozenset(
    {
        "ollama",
        "vllm",
        "lm_studio",
        "lmstudio",
        "llamacpp",
        "llama_cpp",
        "tgi",
        "local",
        "self_hosted",
        "self-hosted",
        "localai",
        "triton",
    }
)

#: sentinel: the provider is known and has no catalog (self-hosted)
NO_CATALOG = "<self-hosted>"


def genai_prices_provider(otel_name: str | None) -> str | None:
    """genai-prices provider id for an OTel provider name.

    Returns None when the name is unknown (the caller then matches the model
    alone), ``"litellm"`` for litellm (genai-prices splits its ``provider/model``
    ids itself) and :data:`NO_CATALOG` for self-hosted runtimes.
    """
    if not otel_name:
        return None
    name = otel_name.strip().lower()
    if name in OTEL_TO_GENAI_PRICES:
        return OTEL_TO_GENAI_PRICES[name]
    if name in SELF_HOSTED:
        return NO_CATALOG
    provider = find_provider_by_id(get_snapshot().providers, name)
    return provider.id if provider is not None else None
