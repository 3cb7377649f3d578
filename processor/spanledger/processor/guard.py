"""The kill switch: ``spanledger.guard(max_run_usd=...)`` stops an agent run before the call
that would take it past its limit.

Before each LLM call (the openai / anthropic clients are hooked by
:mod:`.guard_clients`; other clients call :func:`reserve_call`), the run's
cost so far plus a reservation for the call is checked against every limit
that applies, and :class:`BudgetExceeded` is raised BEFORE the provider is
called (:mod:`.guard_ledger` has the arithmetic, the locking and what the
run's cost so far is made of). The run is the trace; across services its
cost travels in baggage (:mod:`.guard_remote`).

Limits: every ``guard(...)`` the call runs inside (nested guards all apply),
and, with :func:`~.guard_remote.watch_budgets`, the budgets file's
``max_run_usd`` and the team / feature hard stops from the collector.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from opentelemetry import trace

from .guard_clients import install
from .guard_ledger import (
    ACTIVE,
    BudgetExceeded,
    Entry,
    Limit,
    Reservation,
    cost_processor_of,
    drop_run,
    reserve_call,
    reserved,
    to_pico,
    to_usd,
)
from .guard_remote import install_propagator, watch_budgets

__all__ = ["BudgetExceeded", "Reservation", "guard", "reserve_call", "reserved", "watch_budgets"]

F = TypeVar("F", bound=Callable[..., Any])


class guard:
    """Limit what one agent run may spend: ``with guard(max_run_usd=2.0): run_agent()``.

    Also a decorator (``@guard(max_run_usd=0.5)`` on a def or async def: each
    call enters the guard anew) and an async context manager. Outside any span
    it opens one (``spanledger.run``) so the run's calls share a trace.
    ``on_exceed="log"`` logs instead of raising; ``name`` is the budget name
    :class:`BudgetExceeded` reports. ``processor`` names the CostSpanProcessor
    whose running total counts (default: the one that prices the current span).
    """

    def __init__(self, max_run_usd: Decimal | float | int | str | None = None,
                 on_exceed: str = "raise", *, name: str = "guard",
                 processor: Any = None) -> None:
        if on_exceed not in ("raise", "log"):
            raise ValueError(f"on_exceed must be 'raise' or 'log', got {on_exceed!r}")
        limit = None if max_run_usd is None else to_pico(max_run_usd)
        if limit is not None and limit <= 0:
            raise ValueError(f"max_run_usd must be > 0, got {max_run_usd!r}")
        self.limit = limit
        self.on_exceed = on_exceed
        self.name = name
        self.processor = processor
        # a stack, so one instance can be entered again while active (nesting, recursion)
        self._stack: list[tuple[Any, Any, object]] = []

    def _enter(self) -> tuple[Any, Any, object]:
        install()
        install_propagator()
        span_cm = None
        span = trace.get_current_span()
        if not span.get_span_context().is_valid:
            span_cm = trace.use_span(
                trace.get_tracer("spanledger.guard").start_span("spanledger.run"),
                end_on_exit=True)
            span = span_cm.__enter__()
        ctx = span.get_span_context()
        token, key = None, None
        if self.limit is not None:
            outer = ACTIVE.get()
            # no trace (no SDK configured): the run is the outermost guard block
            key = (("trace", ctx.trace_id) if ctx.is_valid
                   else outer[-1].run_key if outer else ("guard", object()))
            entry = Entry(Limit(self.name, self.limit, self.on_exceed), key,
                           ctx.trace_id if ctx.is_valid else 0,
                           self.processor or cost_processor_of(span))
            token = ACTIVE.set((*outer, entry))
        return span_cm, token, key

    @staticmethod
    def _exit(state: tuple[Any, Any, object], exc: tuple[Any, ...]) -> None:
        span_cm, token, key = state
        if token is not None:
            ACTIVE.reset(token)
        if span_cm is not None:
            span_cm.__exit__(*exc)
            if key is not None and not ACTIVE.get():
                drop_run(key)  # the run began (its span, or no trace at all) and ended here

    def __enter__(self) -> guard:
        self._stack.append(self._enter())
        return self

    def __exit__(self, *exc: Any) -> None:
        self._exit(self._stack.pop(), exc)

    async def __aenter__(self) -> guard:
        return self.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        self.__exit__(*exc)

    def __call__(self, fn: F) -> F:
        """Decorate ``fn`` (def or async def): every call runs inside this guard."""
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                state = self._enter()  # per call: concurrent tasks never share a stack
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    self._exit(state, (type(exc), exc, exc.__traceback__))
                    raise
                self._exit(state, (None, None, None))
                return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            state = self._enter()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                self._exit(state, (type(exc), exc, exc.__traceback__))
                raise
            self._exit(state, (None, None, None))
            return result

        return wrapper  # type: ignore[return-value]

    def __repr__(self) -> str:
        limit = "None" if self.limit is None else f"{to_usd(self.limit).normalize():f}"
        return f"guard(max_run_usd={limit}, on_exceed={self.on_exceed!r})"
