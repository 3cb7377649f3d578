"""One name per model and provider, whoever wrote it down: spans, bills, usage exports.

A span says ``gpt-4o-mini``, OpenAI's bill says ``gpt-4o-mini-2024-07-18, input``,
Bedrock's says ``anthropic.claude-sonnet-4-5-20250929-v1:0`` and AWS's cost export
``Claude4.5Sonnet``. Comparing them as strings would call every dated snapshot a
different model. So names go through genai-prices' own model matching (the same
matching that prices the spans), after the decorations providers add are taken
off: region and vendor prefixes, and dated or numbered version suffixes.

:func:`model_key` and :func:`provider_key` are what bills and metered rows are
joined on; the display name stays whatever the file or the span said.
"""

from __future__ import annotations

import functools
import re

from genai_prices.data_snapshot import get_snapshot

from spanledger.pricing.providers import NO_CATALOG, genai_prices_provider

#: inference-profile and region prefixes (Bedrock ``us.``, ``global.``; genai-prices ``regional.``)
_REGION_PREFIX = re.compile(r"^(?:us|eu|apac|jp|au|ca|global|regional)\.")
#: vendor prefixes written with a dot (Bedrock model ids)
_VENDOR_DOT = re.compile(r"^(?:anthropic|openai|meta|amazon|cohere|mistral|ai21|deepseek|"
                         r"google|qwen|writer|twelvelabs|stability)\.")
#: dated and numbered snapshot suffixes, tried repeatedly from the end
_SUFFIXES = (
    re.compile(r"-v\d+:\d+$"),            # Bedrock "-v1:0"
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),   # OpenAI "-2024-08-06"
    re.compile(r"[-@]\d{8}$"),            # Anthropic "-20250929", Vertex "@20250929"
    re.compile(r"-\d{4}$"),               # Azure deployment versions "-0718"
    re.compile(r"-\d{3}$"),               # Gemini "-001"
)


def strip_decorations(name: str) -> str:
    """``us.anthropic.claude-sonnet-4-5-20250929-v1:0`` -> ``claude-sonnet-4-5``.

    Lower case; a ``vendor/``, ``publishers/x/models/`` or ``models/`` path keeps
    its last segment. Only what is a decoration comes off: ``gpt-4.1`` keeps its dot.
    """
    out = name.strip().lower()
    if "/" in out:
        out = out.rsplit("/", 1)[1]
    while True:
        shorter = _VENDOR_DOT.sub("", _REGION_PREFIX.sub("", out))
        if shorter == out:
            break
        out = shorter
    changed = True
    while changed:
        changed = False
        for suffix in _SUFFIXES:
            shorter = suffix.sub("", out)
            if shorter != out and shorter:
                out, changed = shorter, True
    return out


def provider_key(provider: str) -> str:
    """The genai-prices provider id of an OpenTelemetry or export provider name.

    ``aws.bedrock`` -> ``aws``, ``azure.ai.openai`` -> ``azure``; self-hosted
    runtimes keep their own name; an unknown name is its lower-case self.
    """
    gp = genai_prices_provider(provider)
    if gp is None or gp == NO_CATALOG:
        return provider.strip().lower()
    return gp


@functools.lru_cache(maxsize=4096)
def catalog_model(provider: str, model: str) -> str | None:
    """The genai-prices id (undecorated) of ``model``, None when the catalog does not know it.

    Tried in this order: the undecorated name with the provider's catalog, then
    with any provider, then the name as written. Bedrock's
    ``anthropic.claude-sonnet-4-5-...`` and AWS's ``claude-sonnet-4-5`` therefore
    meet at ``claude-sonnet-4-5``, and OpenAI's dated snapshots at their model.
    """
    if not model.strip():
        return None
    snapshot = get_snapshot()
    gp = genai_prices_provider(provider) if provider else None
    hint = None if gp == NO_CATALOG else gp
    for name in dict.fromkeys((strip_decorations(model), model)):
        for pid in dict.fromkeys((hint, None)):
            try:
                _, info = snapshot.find_provider_model(name, None, pid, None)
            except Exception:  # LookupError, or odd catalog data: not a known model
                continue
            return strip_decorations(info.id)
    return None


def model_key(provider: str, model: str) -> str:
    """The model's genai-prices id when the catalog knows it, else its undecorated name."""
    return catalog_model(provider, model) or strip_decorations(model)
