"""Read token usage, model and provider from span attributes.

Instrumentations disagree on names (current GenAI semconv vs. older
``prompt_tokens``/``completion_tokens`` and friends, all listed in
:mod:`spanledger.semconv`) and on types: OTLP from some SDKs carries numbers as
strings. A bad value must never crash the span pipeline, and must never be
mistaken for a count: junk is treated as absent.

Meaning: ``input_tokens`` INCLUDES cache reads and cache writes (GenAI semconv;
what opentelemetry-instrumentation-openai and -anthropic 0.62 report). One
repair: the old Anthropic convention reported input EXCLUDING the cache. When a
span says cache_read + cache_write > input_tokens, which cannot happen under
semconv, the input is taken as exclusive and the cache counts are added to it,
so cached tokens are neither dropped nor charged twice. (An old-convention span
whose uncached input happens to exceed its cache counts cannot be told apart
and is read the semconv way.) Output tokens are handled the same way for
reasoning tokens (semconv: output includes reasoning).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from spanledger import semconv
from spanledger.pricing.types import TokenUsage


def to_count(value: Any) -> int | None:
    """A non-negative whole token count from an int, float or numeric string; else None."""
    kind = type(value)
    if kind is int:
        return value if value >= 0 else None
    if kind is str:
        try:
            number = int(value)
        except ValueError:
            try:
                as_float = float(value)
            except ValueError:
                return None
            return _float_count(as_float)
        return number if number >= 0 else None
    if kind is float:
        return _float_count(value)
    return None  # bool, None, lists, bytes...: not a count


def _float_count(value: float) -> int | None:
    if not math.isfinite(value) or value < 0 or value != int(value):
        return None
    return int(value)


def _count(attrs: Mapping[str, Any], current: str, legacy: str) -> int | None:
    """First valid count under the current, then the legacy name (ints take the fast path)."""
    value = attrs.get(current)
    if value is not None:
        if type(value) is int and value >= 0:
            return value
        count = to_count(value)
        if count is not None:
            return count
    value = attrs.get(legacy)
    return None if value is None else to_count(value)


_INPUT, _PROMPT = semconv.INPUT_TOKENS
_OUTPUT, _COMPLETION = semconv.OUTPUT_TOKENS
_CACHE_READ, _CACHE_READ_LEGACY = semconv.CACHE_READ_TOKENS
_CACHE_WRITE, _CACHE_WRITE_LEGACY = semconv.CACHE_WRITE_TOKENS
_REASONING, _REASONING_LEGACY = semconv.REASONING_TOKENS


def read_usage(attrs: Mapping[str, Any]) -> TokenUsage | None:
    """Usage of the call, or None when the span carries no (valid) usage at all."""
    input_tokens = _count(attrs, _INPUT, _PROMPT)
    output_tokens = _count(attrs, _OUTPUT, _COMPLETION)
    cache_read = _count(attrs, _CACHE_READ, _CACHE_READ_LEGACY)
    cache_write = _count(attrs, _CACHE_WRITE, _CACHE_WRITE_LEGACY)
    counts = (input_tokens, output_tokens, cache_read, cache_write)
    if counts == (None, None, None, None):
        return None
    reasoning = _count(attrs, _REASONING, _REASONING_LEGACY) or 0
    inp, out = input_tokens or 0, output_tokens or 0
    cr, cw = cache_read or 0, cache_write or 0
    if cr + cw > inp:  # impossible under semconv: legacy "input excludes cache"
        inp += cr + cw
    if reasoning > out:  # likewise for "output excludes reasoning"
        out += reasoning
    return TokenUsage(inp, out, cr, cw, reasoning)


def _first_text(attrs: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = attrs.get(name)
        if type(value) is str and value:
            return value
    return None


_MODEL_NAMES = (semconv.RESPONSE_MODEL, semconv.REQUEST_MODEL)


def read_model(attrs: Mapping[str, Any]) -> str | None:
    """The model that answered (response model), else the one asked for."""
    return _first_text(attrs, _MODEL_NAMES)


def read_provider(attrs: Mapping[str, Any]) -> str | None:
    """``gen_ai.provider.name``, else the legacy ``gen_ai.system``."""
    return _first_text(attrs, semconv.PROVIDER)
