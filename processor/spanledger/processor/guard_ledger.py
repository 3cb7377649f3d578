"""The guard's ledger: runs, limits, reservations, and the check before each LLM call.

``spanledger.guard`` (:mod:`.guard`) is the public face; this module is what
it, the client hooks (:mod:`.guard_clients`) and the collector's budget state
(:mod:`.guard_remote`) share, so none of them imports another.

Before each LLM call (the openai / anthropic clients are hooked by
:mod:`.guard_clients`; other clients call :func:`reserve_call`), the run's
cost so far plus a reservation for the call is checked against every limit
that applies, and :class:`BudgetExceeded` is raised BEFORE the provider is
called. The run is the trace:

- cost so far = ``spanledger.trace.cost_to_date`` from the baggage the run
  arrived with (what upstream services spent, :mod:`.guard_remote`) + this
  process's part: the larger of the CostSpanProcessor's running total of the
  trace and the guard's own ledger of settled calls (the ledger counts a call
  the moment it returns, the processor once its span has ended; neither ever
  counts a call twice);
- reservation = the call priced at ``max_tokens`` output (the most the provider
  may bill) and its input estimated at one token per 3 bytes of the request;
  a model without a price reserves $0 (counted in :data:`STATS`);
- settled when the call returns: the reservation is released and the call's
  actual cost (its usage, priced by the same catalog) enters the ledger; a
  streamed call counts at its reservation (its usage arrives later); a failed
  call counts 0.

A limit is reached at ``>=``: a run whose cost so far equals its
``max_run_usd`` makes no further call, and a call whose reservation would
take the run past the limit is refused. Checks and reservations of one run
happen under one lock, so concurrent calls (threads, asyncio tasks) of a run
cannot all pass the check on the same remaining budget: the run ends at most
one call's estimation error past its limit (none when usage stays within the
reservation).

Limits: every ``guard(...)`` the call runs inside (nested guards all apply),
``max_run_usd`` of the budgets file and the team/feature hard stops, both
from the collector's ``/budgets/state`` (:func:`.guard_remote.watch_budgets`).
``on_exceed="log"`` logs (once per run and budget) and lets the call through.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry import context as context_api

from spanledger import semconv as sc
from spanledger.pricing.types import PICO_PER_USD, USD_SCALE

__all__ = ["BudgetExceeded", "GuardStats", "Limit", "Reservation", "reserve_call", "reserved"]

log = logging.getLogger("spanledger.guard")

#: baggage key carrying the run's cost so far to downstream services (USD, decimal text)
COST_TO_DATE = sc.TRACE_COST_TO_DATE
#: input tokens are estimated as request bytes / this (tokenizers average ~4 bytes)
BYTES_PER_TOKEN = 3
#: output tokens reserved when a request names no max_tokens
DEFAULT_OUTPUT_TOKENS = 4096
MAX_RUNS = 10_000


def to_pico(value: Decimal | float | int | str) -> int:
    return int((Decimal(str(value)) * PICO_PER_USD).to_integral_value())


def to_usd(pico: int) -> Decimal:
    return Decimal(pico).scaleb(-USD_SCALE)


class BudgetExceeded(Exception):
    """An LLM call was refused before it reached the provider: it names the budget."""

    def __init__(self, budget: str, *, kind: str, limit_usd: Decimal | None,
                 spent_usd: Decimal, reservation_usd: Decimal, scope: Mapping[str, str],
                 trace_id: str = "", model: str | None = None) -> None:
        self.budget, self.kind, self.limit_usd = budget, kind, limit_usd
        self.spent_usd, self.reservation_usd = spent_usd, reservation_usd
        self.scope, self.trace_id, self.model = dict(scope), trace_id, model
        where = ", ".join(f"{k}={v or '(unattributed)'}" for k, v in self.scope.items())
        where = f" ({where})" if where else ""
        if kind == "hard_stop":
            text = (f"budget {budget!r}{where} reached its hard stop; calls in this scope are "
                    f"refused until the period ends or the budget is raised")
        else:
            text = (f"budget {budget!r}{where}: run {trace_id or '(no trace)'} has spent "
                    f"${spent_usd:.6f} of max_run_usd ${limit_usd:f}; this call "
                    f"({model or 'unknown model'}) reserves ${reservation_usd:.6f}")
        super().__init__(text)


@dataclass(slots=True)
class GuardStats:
    """Counters an operator can read (and tests assert on)."""

    checked: int = 0
    refused: int = 0
    #: calls let through with on_exceed="log" although a limit was reached
    logged: int = 0
    #: calls whose model has no price: reserved at $0
    unpriced: int = 0
    #: calls checked while the collector's budget state was unknown or stale (allowed)
    unknown_state: int = 0
    #: calls without a trace: no run to count them in (file run limits need one)
    no_run: int = 0


STATS = GuardStats()
_STATS_LOCK = threading.Lock()


def count(name: str) -> None:
    with _STATS_LOCK:
        setattr(STATS, name, getattr(STATS, name) + 1)


@dataclass(frozen=True, slots=True)
class Limit:
    """One limit a call is checked against."""

    budget: str
    #: pico-dollars; None = a hard stop (every call in the scope is refused)
    limit_pico: int | None
    on_exceed: str
    scope: Mapping[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "hard_stop" if self.limit_pico is None else "run"


# -- runs ----------------------------------------------------------------------------------------

class _Run:
    """The ledger of one run (a trace; or a guard block outside any trace)."""

    __slots__ = ("lock", "logged", "processor", "reserved", "settled", "trace_id")

    def __init__(self, trace_id: int, processor: Any) -> None:
        self.lock = threading.Lock()
        self.trace_id = trace_id
        self.processor = processor
        #: pico-dollars reserved by calls in flight
        self.reserved = 0
        #: pico-dollars of calls that returned (actual cost), in this process
        self.settled = 0
        self.logged: set[str] = set()

    def local_pico(self) -> int:
        processor = self.processor
        seen = processor.traces.cost_pico(self.trace_id) if processor and self.trace_id else 0
        return max(self.settled, seen)


_RUNS: OrderedDict[object, _Run] = OrderedDict()
_RUNS_LOCK = threading.Lock()


def _run_for(key: object, trace_id: int, processor: Any) -> _Run:
    with _RUNS_LOCK:
        run = _RUNS.get(key)
        if run is None:
            run = _RUNS[key] = _Run(trace_id, processor)
            if len(_RUNS) > MAX_RUNS:
                _RUNS.popitem(last=False)
        else:
            _RUNS.move_to_end(key)
            if run.processor is None and processor is not None:
                run.processor = processor
        return run


def drop_run(key: object) -> None:
    with _RUNS_LOCK:
        _RUNS.pop(key, None)


def cost_processor_of(span: Any) -> Any:
    """The CostSpanProcessor that prices ``span``'s trace in this process, if any.

    Read from the SDK span's provider (``Span._span_processor``, a private SDK
    attribute: when a future SDK renames it, this returns None and the guard
    counts this process's calls through its own ledger only).
    """
    from .cost_processor import CostSpanProcessor

    multi = getattr(span, "_span_processor", None)
    for member in getattr(multi, "_span_processors", ()) or ():
        if isinstance(member, CostSpanProcessor):
            return member
    return multi if isinstance(multi, CostSpanProcessor) else None


def upstream_pico(ctx: context_api.Context | None = None) -> int:
    """What the run spent in the services before this one (``cost_to_date`` baggage)."""
    value = baggage.get_baggage(COST_TO_DATE, ctx)
    if value is None:
        return 0
    try:
        pico = to_pico(str(value))
    except ArithmeticError:
        return 0
    return max(pico, 0)


# -- guard entries (spanledger.guard pushes one per block) ---------------------------------

@dataclass(slots=True)
class Entry:
    limit: Limit
    run_key: object
    trace_id: int
    processor: Any


ACTIVE: ContextVar[tuple[Entry, ...]] = ContextVar("spanledger_guards", default=())


# -- the check ----------------------------------------------------------------------

class Reservation:
    """A call's place in its run's budget: :meth:`settle` (or :meth:`release`) once it returns."""

    __slots__ = ("_done", "amount", "run")

    def __init__(self, run: _Run | None, amount: int) -> None:
        self.run, self.amount, self._done = run, amount, False

    def settle(self, actual_pico: int | None = None) -> None:
        """The call returned: release the reservation, count ``actual`` (None: the reservation)."""
        if self._done:
            return
        self._done = True
        run = self.run
        if run is None:
            return
        with run.lock:
            run.reserved -= self.amount
            run.settled += self.amount if actual_pico is None else actual_pico

    def release(self) -> None:
        """The call failed: nothing was spent."""
        self.settle(0)


def call_attribution(ctx: context_api.Context | None = None) -> dict[str, str]:
    """The attribution a call carries: baggage keys, plus environment and service of its span."""
    out = {k: str(v) for k, v in (baggage.get_all(ctx) or {}).items()
           if k in sc.DEFAULT_ATTRIBUTION_KEYS}
    resource = getattr(trace.get_current_span(ctx), "resource", None)
    attrs = getattr(resource, "attributes", None) or {}
    env = attrs.get("deployment.environment.name") or attrs.get("deployment.environment")
    if env:
        out["environment"] = str(env)
    if attrs.get("service.name"):
        out["service"] = str(attrs["service.name"])
    return out


#: where the budgets file's run limits and hard stops come from (set by guard_remote)
LIMIT_SOURCE: list[Callable[[Mapping[str, str]], list[Limit]]] = []


def _file_limits(attribution: Mapping[str, str]) -> list[Limit]:
    return [lim for source in LIMIT_SOURCE for lim in source(attribution)]


def _catalog(processor: Any) -> Any:
    catalog = getattr(processor, "catalog", None)
    if catalog is not None:
        return catalog
    return _default_catalog()


@functools.cache
def _default_catalog() -> Any:
    from spanledger.pricing.catalog import PriceCatalog

    return PriceCatalog.from_env()


def price_pico(processor: Any, provider: str | None, model: str | None,
               counts: tuple[int, ...]) -> int | None:
    """Pico-dollars of ``counts`` (input incl. cached, output, cache read, cache write,
    reasoning[, 1-hour cache write]) at today's price; None when the model has no price."""
    if not model:
        return None
    counts = (*counts, 0)[:6] if len(counts) == 5 else counts  # no 1h cache writes known
    found = _catalog(processor).price_tokens_pico(provider, model, counts, dt.datetime.now(dt.UTC))
    return None if found is None else sum(found[0])


def reserve_call(provider: str | None, model: str | None, *, input_tokens: int,
                 max_output_tokens: int) -> Reservation:
    """Check the current run and reserve a call of at most these tokens; raise if over a limit.

    The hooks of :mod:`.guard_clients` call this for the openai / anthropic
    clients; any other client can too, then :meth:`Reservation.settle` with
    the actual cost in pico-dollars (or None) once the provider answered.
    """
    count("checked")
    ctx = context_api.get_current()
    span = trace.get_current_span(ctx)
    sctx = span.get_span_context()
    entries = ACTIVE.get()
    attribution = dict(call_attribution(ctx))
    if model:
        attribution["model"] = model
    if provider:
        attribution["provider"] = provider
    limits = [e.limit for e in entries] + _file_limits(attribution)
    if entries:
        run_key, trace_id, processor = entries[-1].run_key, entries[-1].trace_id, \
            entries[-1].processor
    elif sctx.is_valid:
        run_key, trace_id, processor = ("trace", sctx.trace_id), sctx.trace_id, \
            cost_processor_of(span)
    else:
        run_key, trace_id, processor = None, 0, None
    if processor is None and sctx.is_valid:
        processor = cost_processor_of(span)
    amount = price_pico(processor, provider, model, (input_tokens, max_output_tokens, 0, 0, 0))
    if amount is None:
        amount = 0
        count("unpriced")
    if run_key is None:
        if any(limit.limit_pico is not None for limit in limits):
            count("no_run")
        _check_stops(limits, model)
        return Reservation(None, amount)
    run = _run_for(run_key, trace_id, processor)
    upstream = upstream_pico(ctx)
    with run.lock:
        so_far = upstream + run.local_pico()
        committed = so_far + run.reserved
        for limit in sorted(limits, key=lambda lim: -1 if lim.limit_pico is None
                            else lim.limit_pico):
            over = limit.limit_pico is None or (
                committed >= limit.limit_pico or committed + amount > limit.limit_pico)
            if not over:
                continue
            error = BudgetExceeded(
                limit.budget, kind=limit.kind,
                limit_usd=None if limit.limit_pico is None else to_usd(limit.limit_pico),
                spent_usd=to_usd(committed), reservation_usd=to_usd(amount),
                scope=limit.scope, trace_id=f"{trace_id:032x}" if trace_id else "", model=model)
            if limit.on_exceed == "raise":
                count("refused")
                raise error
            count("logged")
            if limit.budget not in run.logged:
                run.logged.add(limit.budget)
                log.warning("%s (on_exceed=log: the call goes ahead)", error)
        run.reserved += amount
    return Reservation(run, amount)


def _check_stops(limits: list[Limit], model: str | None) -> None:
    for limit in limits:
        if limit.limit_pico is not None:
            continue
        error = BudgetExceeded(limit.budget, kind="hard_stop", limit_usd=None,
                               spent_usd=Decimal(0), reservation_usd=Decimal(0),
                               scope=limit.scope, model=model)
        if limit.on_exceed == "raise":
            count("refused")
            raise error
        count("logged")
        log.warning("%s (on_exceed=log: the call goes ahead)", error)


def run_cost_usd(ctx: context_api.Context | None = None) -> Decimal | None:
    """The current run's cost so far (upstream + this process), None outside any run."""
    span = trace.get_current_span(ctx)
    sctx = span.get_span_context()
    upstream = upstream_pico(ctx)
    local = 0
    if sctx.is_valid:
        run = _RUNS.get(("trace", sctx.trace_id))
        processor = run.processor if run else cost_processor_of(span)
        seen = processor.traces.cost_pico(sctx.trace_id) if processor is not None else 0
        local = max(run.settled if run else 0, seen)
    if not upstream and not local and not sctx.is_valid:
        return None
    return to_usd(upstream + local)


@contextlib.contextmanager
def reserved(provider: str | None, model: str | None, *, input_tokens: int,
             max_output_tokens: int) -> Iterator[Reservation]:
    """:func:`reserve_call` as a context manager: released if the block raises."""
    r = reserve_call(provider, model, input_tokens=input_tokens,
                     max_output_tokens=max_output_tokens)
    try:
        yield r
    except BaseException:
        r.release()
        raise
    r.settle()
