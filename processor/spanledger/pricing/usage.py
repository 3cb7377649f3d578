"""Read token usage, model, provider, tier and a reported cost from span attributes.

Through the conventions of :mod:`spanledger.pricing.conventions`: each says which
attributes mean what and whether its input count includes cached tokens, so the
reading is the same in the in-service processor and in the collector (both call
:func:`read_call`), whatever instrumentation wrote the span. No guessing from the
numbers: an input that EXCLUDES the cache is declared so by its convention and the
cache counts are added to it; under a convention whose input includes the cache, a
cache count larger than the input (impossible data) leaves the uncached part at zero,
never negative.

The result is normalized to the GenAI semconv meaning (:class:`~spanledger.pricing.types.
TokenUsage`): input INCLUDES cache reads and writes, output includes reasoning, and
``cache_write_1h`` is the part of the cache writes made with a one-hour time to live.

Types: OTLP from some SDKs carries numbers as strings, and the collector sees every
value as a string. A bad value must never crash the span pipeline and must never be
mistaken for a count: junk is treated as absent.

The common case (current GenAI semconv names, int values, no other convention's
marker, tier or reported cost) is :func:`read_fast`, inline and without building a
reading; the processor runs it on every GenAI span end.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

from spanledger import semconv
from spanledger.pricing import conventions as conv
from spanledger.pricing.conventions import Convention
from spanledger.pricing.types import TokenUsage

#: (input incl. cache, output incl. reasoning, cache_read, cache_write, reasoning, cache_write_1h)
Counts = tuple[int, int, int, int, int, int]


class CallReading(NamedTuple):
    """What a span says about its call, normalized (see the module docstring)."""

    convention: Convention
    provider: str | None
    #: the model billed: the answering one, else the one asked for
    model: str | None
    request_model: str | None
    counts: Counts | None
    #: service tier / processing mode as reported (``flex``, ``priority``, ``batch``), or None
    tier: str | None
    response_id: str | None
    #: a cost (USD) another tool put on the span, or None
    reported_cost: float | None


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


def to_amount(value: Any) -> float | None:
    """A finite, non-negative USD amount from a number or numeric string; else None."""
    kind = type(value)
    if kind is float or kind is int:
        number = float(value)
    elif kind is str:
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _first_count(attrs: Mapping[str, Any], names: tuple[str, ...]) -> int | None:
    """The first valid count under ``names`` (a junk value falls through to the next name)."""
    get = attrs.get
    for name in names:
        value = get(name)
        if value is None:
            continue
        if type(value) is int and value >= 0:
            return value
        if type(value) is str and value.isascii() and value.isdigit():  # the collector's text
            return int(value)
        count = to_count(value)
        if count is not None:
            return count
    return None


def first_text(attrs: Mapping[str, Any], names: tuple[str, ...] | list[str]) -> str | None:
    """The first non-empty string under ``names`` (an int or an empty string is no name)."""
    for name in names:
        value = attrs.get(name)
        if type(value) is str and value:
            return value
    return None


def _reported(attrs: Mapping[str, Any], names: tuple[str, ...]) -> float | None:
    """The first cost another tool reported, in USD (a non-USD currency is not compared).

    A span spanledger already priced (it has a cost status) carries OUR cost: not reported.
    """
    get = attrs.get
    if semconv.COST_STATUS in attrs:
        return None
    for name in names:
        value = get(name)
        if value is None:
            continue
        if name == semconv.COST_AMOUNT:
            currency = get(semconv.COST_CURRENCY)
            if currency not in (None, "", "USD", "usd"):
                continue
        amount = to_amount(value)
        if amount is not None:
            return amount
    return None


def _tier_from_json(attrs: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        raw = attrs.get(name)
        if type(raw) is not str or "service_tier" not in raw:
            continue
        try:
            params = json.loads(raw)
        except ValueError:
            continue
        tier = params.get("service_tier") if isinstance(params, dict) else None
        if type(tier) is str and tier:
            return tier
    return None


def read_with(convention: Convention, attrs: Mapping[str, Any]) -> CallReading:
    """Read a span the way ``convention`` declares (the general form of :func:`read_call`)."""
    c = convention
    inp = _first_count(attrs, c.input)
    out = _first_count(attrs, c.output)
    cr = _first_count(attrs, c.cache_read)
    cw = _first_count(attrs, c.cache_write)
    cw5 = _first_count(attrs, c.cache_write_5m) if c.cache_write_5m else None
    cw1 = _first_count(attrs, c.cache_write_1h) if c.cache_write_1h else None
    counts: Counts | None = None
    if inp is not None or out is not None or cr is not None or cw is not None or (
            cw5 is not None or cw1 is not None):
        if cw is None and (cw5 is not None or cw1 is not None):
            cw = (cw5 or 0) + (cw1 or 0)
        cr_, cw_ = cr or 0, cw or 0
        one_hour = min(cw1 if cw1 is not None else (
            cw_ - cw5 if cw5 is not None and cw5 <= cw_ else 0), cw_)
        reasoning = _first_count(attrs, c.reasoning) or 0
        inp_, out_ = inp or 0, out or 0
        if not c.input_includes_cache:
            inp_ += cr_ + cw_
        if not c.output_includes_reasoning:
            out_ += reasoning
        counts = (inp_, out_, cr_, cw_, reasoning, one_hour)
    response = first_text(attrs, c.response_model)
    request = first_text(attrs, c.request_model)
    tier = first_text(attrs, c.tier)
    if tier is None and c.tier_in_json:
        tier = _tier_from_json(attrs, c.tier_in_json)
    provider = c.fixed_provider or first_text(attrs, c.provider)
    return CallReading(c, provider, response or request, request, counts,
                       tier, first_text(attrs, c.response_id), _reported(attrs, c.reported_cost))


_INPUT, _PROMPT = semconv.INPUT_TOKENS
_OUTPUT, _COMPLETION = semconv.OUTPUT_TOKENS
_CACHE_READ, _CACHE_READ_LEGACY = semconv.CACHE_READ_TOKENS
_CACHE_WRITE, _CACHE_WRITE_LEGACY = semconv.CACHE_WRITE_TOKENS
_REASONING, _REASONING_LEGACY = semconv.REASONING_TOKENS
_PROVIDER, _PROVIDER_LEGACY = semconv.PROVIDER
_RESPONSE_MODEL, _REQUEST_MODEL, _RESPONSE_ID = (
    semconv.RESPONSE_MODEL, semconv.REQUEST_MODEL, semconv.RESPONSE_ID)
_RARE = conv.RARE_KEYS
_SCOPES = conv.SCOPES
_scope_entries = conv.scope_entries
_GENAI = conv.GENAI
_new = tuple.__new__


def read_fast(attrs: Mapping[str, Any], scope: str | None = None
              ) -> tuple[str | None, str | None, Counts | None] | None:
    """(provider, billed model, counts) of a plain GenAI semconv span; None = not one.

    The per-span fast path of pricing: a span of no special instrumentation scope, with no
    other convention's marker, service tier or reported cost (one set walk tells), read
    under the current names inline when they hold plain ints. Anything else is None and
    goes through :func:`read_call`, which gives the same numbers for these spans.
    """
    if scope:
        special = _SCOPES.get(scope)
        if special is None:
            special = _scope_entries(scope)
        if special:
            return None
    if not _RARE.isdisjoint(attrs):  # one walk: other conventions, tiers, reported costs
        return None
    get = attrs.get
    v = get(_INPUT)
    inp = v if type(v) is int and v >= 0 else _first_count(attrs, semconv.INPUT_TOKENS)
    v = get(_OUTPUT)
    out = v if type(v) is int and v >= 0 else _first_count(attrs, semconv.OUTPUT_TOKENS)
    v = get(_CACHE_READ)
    cr = v if type(v) is int and v >= 0 else _first_count(attrs, semconv.CACHE_READ_TOKENS)
    v = get(_CACHE_WRITE)
    if type(v) is int and v >= 0:
        cw = v
    elif v is None:  # usually absent under both names: no call for that
        v = get(_CACHE_WRITE_LEGACY)
        cw = v if v is None or (type(v) is int and v >= 0) else to_count(v)
    else:
        cw = _first_count(attrs, semconv.CACHE_WRITE_TOKENS)
    counts: Counts | None = None
    if inp is not None or out is not None or cr is not None or cw is not None:
        v = get(_REASONING)
        if type(v) is int and v >= 0:
            reasoning = v
        elif v is None:  # OpenLLMetry 0.62 writes the legacy name: read it inline too
            v = get(_REASONING_LEGACY)
            reasoning = (v if v is None or (type(v) is int and v >= 0) else to_count(v)) or 0
        else:
            reasoning = _first_count(attrs, semconv.REASONING_TOKENS) or 0
        counts = (inp or 0, out or 0, cr or 0, cw or 0, reasoning, 0)
    provider = get(_PROVIDER)
    if type(provider) is not str or not provider:
        provider = get(_PROVIDER_LEGACY)
        if type(provider) is not str or not provider:
            provider = None
    model = get(_RESPONSE_MODEL)
    if type(model) is not str or not model:
        model = get(_REQUEST_MODEL)
        if type(model) is not str or not model:
            model = None
    return provider, model, counts


def read_call(attrs: Mapping[str, Any], scope: str | None = None) -> CallReading:
    """Everything pricing needs from a span, through its convention (``scope``: the
    instrumentation scope name, when the caller knows it)."""
    fast = read_fast(attrs, scope)
    if fast is None:
        return read_with(conv.recognize(attrs, scope), attrs)
    provider, model, counts = fast
    request = attrs.get(_REQUEST_MODEL)
    rid = attrs.get(_RESPONSE_ID)
    # tuple.__new__: the NamedTuple constructor is a Python frame (the collector reads every
    # GenAI span with this)
    return _new(CallReading, (_GENAI, provider, model, request if type(request) is str
                              and request else None, counts, None,
                              rid if type(rid) is str and rid else None, None))


def read_counts(attrs: Mapping[str, Any], scope: str | None = None) -> Counts | None:
    """The normalized counts of :func:`read_call` (None: the span carries no usage)."""
    return read_call(attrs, scope).counts


def read_usage(attrs: Mapping[str, Any], scope: str | None = None) -> TokenUsage | None:
    """Usage of the call, or None when the span carries no (valid) usage at all."""
    counts = read_call(attrs, scope).counts
    return None if counts is None else TokenUsage(*counts)


def read_provider_model(attrs: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(provider, billed model) as :func:`read_call` reads them."""
    reading = read_call(attrs)
    return reading.provider, reading.model


def read_model(attrs: Mapping[str, Any]) -> str | None:
    """The model that answered (response model), else the one asked for."""
    return read_call(attrs).model


def read_provider(attrs: Mapping[str, Any]) -> str | None:
    """``gen_ai.provider.name``, else the legacy ``gen_ai.system`` (or the convention's own)."""
    return read_call(attrs).provider
