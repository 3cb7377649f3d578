"""``spanledger.attribute(...)``: put team/feature/customer/... into W3C baggage.

Why baggage: it is the standard carrier that the SDK's default propagators
(``tracecontext,baggage``) already send to downstream services, so one
``with attribute(team="search"):`` at the edge attributes every span below it,
in this process and in the services it calls, without any spanledger code
there. The :class:`~spanledger.processor.cost_processor.CostSpanProcessor`
copies the baggage onto each span as ``spanledger.<key>`` attributes.

A downstream service takes that attribution only when it can trust it: with a
baggage key configured (``SPANLEDGER_BAGGAGE_KEYS``), ``attribute()`` signs the
attribution entries (``spanledger.sig``) and services holding the key verify them
(:mod:`~spanledger.processor.baggage_trust`); without one, attribution stops at the
process edge.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from opentelemetry import baggage, context

from .baggage_trust import local

__all__ = ["attribute"]

F = TypeVar("F", bound=Callable[..., Any])


class attribute:
    """Context manager and decorator (sync and async) that attributes everything inside it.

    >>> with attribute(team="search", feature="answers", customer="acme"):
    ...     client.chat.completions.create(...)

    >>> @attribute(team="billing")
    ... async def handle(request): ...

    ``None`` values are skipped (so an unknown customer does not erase an outer
    one); other values are stored as strings. Extra keyword arguments become
    extra baggage keys (configure the processor's ``attribution_keys`` to copy
    them onto spans). Nesting works: inner values override outer ones.
    """

    __slots__ = ("_items", "_tokens")

    def __init__(
        self,
        team: str | None = None,
        feature: str | None = None,
        customer: str | None = None,
        user: str | None = None,
        cost_center: str | None = None,
        **extra: Any,
    ) -> None:
        items = {"team": team, "feature": feature, "customer": customer, "user": user,
                 "cost_center": cost_center, **extra}
        self._items: tuple[tuple[str, str], ...] = tuple(
            (k, str(v)) for k, v in items.items() if v is not None
        )
        # A stack, so one instance can be entered again while already active (nesting).
        self._tokens: list[object] = []

    @property
    def values(self) -> dict[str, str]:
        """The baggage entries this attribution sets."""
        return dict(self._items)

    def _attach(self) -> object:
        ctx = outer = context.get_current()
        for key, value in self._items:
            ctx = baggage.set_baggage(key, value, ctx)
        # marked as set here; with a baggage key, signed so a downstream service holding the
        # key can tell them from a forged header (baggage_trust)
        return context.attach(local(ctx, self._items, outer))

    def __enter__(self) -> attribute:
        self._tokens.append(self._attach())
        return self

    def __exit__(self, *exc: object) -> None:
        context.detach(self._tokens.pop())  # type: ignore[arg-type]

    async def __aenter__(self) -> attribute:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    def __call__(self, fn: F) -> F:
        """Decorate ``fn`` (def or async def): each call runs inside this attribution.

        Each call attaches its own context token, so concurrent calls (threads,
        asyncio tasks) of one decorated function never detach each other's.
        """
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                token = self._attach()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    context.detach(token)  # type: ignore[arg-type]

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = self._attach()
            try:
                return fn(*args, **kwargs)
            finally:
                context.detach(token)  # type: ignore[arg-type]

        return wrapper  # type: ignore[return-value]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._items)
        return f"attribute({inner})"
