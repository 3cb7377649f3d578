"""The openai and anthropic clients, checked by the guard before each request leaves.

Where the hook sits, and why: both SDKs send every API call through one
method, ``SyncAPIClient.request`` / ``AsyncAPIClient.request`` of their
``_base_client`` module (retries happen inside it), and it runs strictly
before the HTTP request: a refused call never reaches the provider. Most
OpenTelemetry instrumentations wrap the resource methods above it
(``Completions.create``, ``Messages.create``, ...); some (OpenInference)
wrap ``request`` itself on the client classes (``OpenAI.request``). Such a
wrapper, put there before the guard was installed, holds the SDK's own
method and would bypass a hook on the base class; so every install also
hooks ``request`` wherever a subclass defines its own, and a per-context
flag makes the outermost hook the only one that checks (a wrapper put there
after the guard calls the hooked base method: checked once, not twice).
(A span processor cannot refuse a call: the SDK swallows what its
``on_start`` raises, and the instrumentation sets the model after the span
started.)

What is guarded: ``POST`` requests to chat completions, completions,
embeddings, responses and (anthropic) messages. The body gives the model,
the output cap (``max_tokens``, ``max_completion_tokens`` or
``max_output_tokens``; :data:`~.guard.DEFAULT_OUTPUT_TOKENS` when absent;
times ``n`` choices) and, by its size, the input estimate. The response's
``usage`` settles the call.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import json
import logging
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

from .guard_ledger import (
    ACTIVE,
    BYTES_PER_TOKEN,
    DEFAULT_OUTPUT_TOKENS,
    LIMIT_SOURCE,
    Reservation,
    price_pico,
    reserve_call,
)

log = logging.getLogger("spanledger.guard")

#: (module, class, provider) whose ``request`` method is hooked
TARGETS: tuple[tuple[str, str, str], ...] = (
    ("openai._base_client", "SyncAPIClient", "openai"),
    ("openai._base_client", "AsyncAPIClient", "openai"),
    ("anthropic._base_client", "SyncAPIClient", "anthropic"),
    ("anthropic._base_client", "AsyncAPIClient", "anthropic"),
)
#: path suffix -> the body keys that cap output tokens, in order of preference
_ENDPOINTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("/chat/completions", ("max_completion_tokens", "max_tokens")),
    ("/completions", ("max_tokens",)),
    ("/embeddings", ()),
    ("/responses", ("max_output_tokens",)),
    ("/messages", ("max_tokens",)),
)
_MARK = "__spanledger_guard__"
_LOCK = threading.Lock()
#: (module, class qualname) -> (the class, the ``request`` it had before the hook)
_INSTALLED: dict[tuple[str, str], tuple[type, Any]] = {}
#: set while a hooked ``request`` of this context runs: an inner hook passes straight through
_IN_HOOK: contextvars.ContextVar[bool] = contextvars.ContextVar("spanledger_guard_hook",
                                                               default=False)


class Call:
    """One guarded request: provider, model, token caps, and the processor to price with."""

    __slots__ = ("input_tokens", "max_output_tokens", "model", "provider")

    def __init__(self, provider: str, model: str | None, input_tokens: int,
                 max_output_tokens: int) -> None:
        self.provider, self.model = provider, model
        self.input_tokens, self.max_output_tokens = input_tokens, max_output_tokens


def describe(provider: str, options: Any) -> Call | None:
    """The call an SDK request options object describes, None when it is not a billed call."""
    if str(getattr(options, "method", "")).lower() != "post":
        return None
    url = str(getattr(options, "url", "") or "").split("?", 1)[0].rstrip("/")
    body = getattr(options, "json_data", None)
    if not isinstance(body, dict):
        return None
    cap_keys = next((keys for suffix, keys in _ENDPOINTS if url.endswith(suffix)), None)
    if cap_keys is None:
        return None
    cap = next((body[k] for k in cap_keys if isinstance(body.get(k), int)), None)
    output = 0 if not cap_keys else (cap if cap is not None else DEFAULT_OUTPUT_TOKENS)
    choices = body.get("n")
    if isinstance(choices, int) and choices > 1:
        output *= choices
    try:
        size = len(json.dumps(body, default=str).encode("utf-8"))
    except (TypeError, ValueError):
        size = 0
    model = body.get("model")
    return Call(provider, str(model) if model else None, math.ceil(size / BYTES_PER_TOKEN),
                output)


def _get(obj: Any, name: str) -> int:
    value = getattr(obj, name, None)
    return value if isinstance(value, int) else 0


def usage_counts(provider: str, response: Any) -> tuple[str | None, tuple[int, int, int, int, int]
                                                         ] | None:
    """(billed model, token counts) of a parsed response; None when it carries no usage."""
    usage = getattr(response, "usage", None)
    if usage is None:
        return None
    model = getattr(response, "model", None)
    model = str(model) if isinstance(model, str) and model else None
    if provider == "anthropic":
        read = _get(usage, "cache_read_input_tokens")
        write = _get(usage, "cache_creation_input_tokens")
        return model, (_get(usage, "input_tokens") + read + write, _get(usage, "output_tokens"),
                       read, write, 0)
    if hasattr(usage, "prompt_tokens"):  # chat / completions / embeddings
        details = getattr(usage, "prompt_tokens_details", None)
        return model, (_get(usage, "prompt_tokens"), _get(usage, "completion_tokens"),
                       _get(details, "cached_tokens"), 0, 0)
    if hasattr(usage, "input_tokens"):  # responses
        details = getattr(usage, "input_tokens_details", None)
        return model, (_get(usage, "input_tokens"), _get(usage, "output_tokens"),
                       _get(details, "cached_tokens"), 0, 0)
    return None


def _settle(reservation: Reservation, call: Call, response: Any) -> None:
    found = usage_counts(call.provider, response)
    actual = None
    if found is not None:
        model, counts = found
        run = reservation.run
        processor = run.processor if run is not None else None
        actual = price_pico(processor, call.provider, model or call.model, counts)
        if actual is None and model and model != call.model:
            actual = price_pico(processor, call.provider, call.model, counts)
    reservation.settle(actual)  # None: a stream or an unpriced answer counts its reservation


@contextlib.contextmanager
def _reserved(call: Call) -> Iterator[Reservation]:
    """The call's worst case held against its limits while it runs (released if it
    fails); inner hooks of the same call (another SDK layer) pass it through."""
    reservation = reserve_call(call.provider, call.model, input_tokens=call.input_tokens,
                               max_output_tokens=call.max_output_tokens)
    token = _IN_HOOK.set(True)
    try:
        yield reservation
    except BaseException:
        reservation.release()
        raise
    finally:
        _IN_HOOK.reset(token)


def _hook_sync(original: Callable[..., Any], provider: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def request(self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        if _IN_HOOK.get():  # an outer hook of this call checks it
            return original(self, cast_to, options, *args, **kwargs)
        call = describe(provider, options) if ACTIVE.get() or LIMIT_SOURCE else None
        if call is None:  # not a billed call, or no limit could apply: nothing to check
            return original(self, cast_to, options, *args, **kwargs)
        with _reserved(call) as reservation:
            response = original(self, cast_to, options, *args, **kwargs)
        _settle(reservation, call, response)
        return response

    setattr(request, _MARK, True)
    return request


def _hook_async(original: Callable[..., Any], provider: str) -> Callable[..., Any]:
    @functools.wraps(original)
    async def request(self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        if _IN_HOOK.get():  # an outer hook of this call checks it
            return await original(self, cast_to, options, *args, **kwargs)
        call = describe(provider, options) if ACTIVE.get() or LIMIT_SOURCE else None
        if call is None:  # not a billed call, or no limit could apply: nothing to check
            return await original(self, cast_to, options, *args, **kwargs)
        with _reserved(call) as reservation:
            response = await original(self, cast_to, options, *args, **kwargs)
        _settle(reservation, call, response)
        return response

    setattr(request, _MARK, True)
    return request


def install() -> list[str]:
    """Hook every client SDK that is importable, and every subclass that defines its own
    ``request`` (an instrumentation's wrapper); idempotent, cheap to call again."""
    hooked = []
    with _LOCK:
        for module_name, class_name, provider in TARGETS:
            try:
                base = getattr(importlib.import_module(module_name), class_name)
            except (ImportError, AttributeError):
                continue
            make = _hook_async if class_name.startswith("Async") else _hook_sync
            for cls in _with_subclasses(base):
                key = (cls.__module__, cls.__qualname__)
                original = cls.__dict__.get("request")
                if original is None:
                    continue  # inherits a hooked method
                if not getattr(original, _MARK, False):
                    cls.request = make(original, provider)  # type: ignore[attr-defined]
                    _INSTALLED[key] = (cls, original)
                if key in _INSTALLED:
                    hooked.append(f"{cls.__module__}.{cls.__qualname__}")
    return hooked


def _with_subclasses(cls: type) -> list[type]:
    out, todo = [], [cls]
    while todo:
        c = todo.pop()
        out.append(c)
        todo.extend(c.__subclasses__())
    return out


def uninstall() -> None:
    """Put the SDKs' own methods back (tests; an application never needs to)."""
    with _LOCK:
        for key, (cls, original) in list(_INSTALLED.items()):
            if getattr(cls.__dict__.get("request"), _MARK, False):
                cls.request = original  # type: ignore[attr-defined]
            del _INSTALLED[key]
