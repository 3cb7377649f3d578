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


def _count_from(value: Any, attrs: Mapping[str, Any], legacy: str) -> int | None:
    """The first valid count: ``value`` (read under the current name), else the legacy name.

    The slow half of a count: :func:`read_counts` takes a plain non-negative int inline
    and calls this only for anything else (absent, a string, a float, junk).
    """
    if value is not None:
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
    counts = read_counts(attrs)
    return None if counts is None else TokenUsage(*counts)


def read_counts(attrs: Mapping[str, Any]) -> tuple[int, int, int, int, int] | None:
    """:func:`read_usage` as a plain tuple (input, output, cache_read, cache_write, reasoning).

    The per-span form: a tuple costs a tenth of a frozen dataclass, and each
    count is read inline with one ``get`` when it is a plain int under the
    current name (what the 0.62 instrumentations send); anything else takes
    :func:`_count_from`.
    """
    get = attrs.get
    v = get(_INPUT)
    inp = v if type(v) is int and v >= 0 else _count_from(v, attrs, _PROMPT)
    v = get(_OUTPUT)
    out = v if type(v) is int and v >= 0 else _count_from(v, attrs, _COMPLETION)
    v = get(_CACHE_READ)
    cr = v if type(v) is int and v >= 0 else _count_from(v, attrs, _CACHE_READ_LEGACY)
    v = get(_CACHE_WRITE)
    if type(v) is int and v >= 0:
        cw = v
    elif v is None:  # often absent under both names: no call for that
        v = get(_CACHE_WRITE_LEGACY)
        cw = v if v is None or (type(v) is int and v >= 0) else to_count(v)
    else:
        cw = _count_from(v, attrs, _CACHE_WRITE_LEGACY)
    if inp is None and out is None and cr is None and cw is None:
        return None
    v = get(_REASONING)
    if type(v) is int and v >= 0:
        reasoning = v
    elif v is None:  # the 0.62 instrumentations use the legacy name
        v = get(_REASONING_LEGACY)
        reasoning = (v if v is None or (type(v) is int and v >= 0) else to_count(v)) or 0
    else:
        reasoning = _count_from(v, attrs, _REASONING_LEGACY) or 0
    inp, out, cr, cw = inp or 0, out or 0, cr or 0, cw or 0
    if cr + cw > inp:  # impossible under semconv: legacy "input excludes cache"
        inp += cr + cw
    if reasoning > out:  # likewise for "output excludes reasoning"
        out += reasoning
    return (inp, out, cr, cw, reasoning)


def first_text(attrs: Mapping[str, Any], names: tuple[str, ...] | list[str]) -> str | None:
    """The first non-empty string under ``names`` (an int or an empty string is no name)."""
    for name in names:
        value = attrs.get(name)
        if type(value) is str and value:
            return value
    return None


_PROVIDER, _PROVIDER_LEGACY = semconv.PROVIDER


def read_provider_model(attrs: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(provider, model): :func:`read_provider` and :func:`read_model` in one call.

    The per-span form (pricing reads both on every GenAI span): the rule of
    :func:`first_text`, unrolled for its two names each.
    """
    get = attrs.get
    provider = get(_PROVIDER)
    if type(provider) is not str or not provider:
        provider = get(_PROVIDER_LEGACY)
        if type(provider) is not str or not provider:
            provider = None
    model = get(semconv.RESPONSE_MODEL)
    if type(model) is not str or not model:
        model = get(semconv.REQUEST_MODEL)
        if type(model) is not str or not model:
            model = None
    return provider, model


def read_model(attrs: Mapping[str, Any]) -> str | None:
    """The model that answered (response model), else the one asked for."""
    return read_provider_model(attrs)[1]


def read_provider(attrs: Mapping[str, Any]) -> str | None:
    """``gen_ai.provider.name``, else the legacy ``gen_ai.system``."""
    return read_provider_model(attrs)[0]
