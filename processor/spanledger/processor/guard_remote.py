"""What the guard learns from outside this process, never on the call path.

- **The run's cost across services.** :func:`install_propagator` wraps the
  global propagator: whenever a request leaves inside a run (a trace), the
  run's cost so far (upstream + this process) rides along in W3C baggage as
  ``spanledger.trace.cost_to_date``; the next service's guard starts from it.
  Costs incurred downstream are not reported back upstream (responses carry
  no baggage): the limit holds along each call path.
- **Budget-file limits and hard stops.** :func:`watch_budgets` polls the
  collector's ``GET /budgets/state`` every ``every_s`` seconds in a daemon
  thread. Calls only read the last copy. When the collector cannot be
  reached, the copy is kept until its ``stale_after_s`` runs out; after that
  no file limit applies and every call is allowed and counted
  (``STATS.unknown_state``): an application is never blocked because
  telemetry is down.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from opentelemetry import baggage, propagate
from opentelemetry import context as context_api
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)

from .guard_ledger import (
    COST_TO_DATE,
    LIMIT_SOURCE,
    STATS,
    Limit,
    count,
    run_cost_usd,
    to_pico,
)

log = logging.getLogger("spanledger.guard")

#: where the collector serves /budgets/state (its OTLP/HTTP or telemetry port)
URL_ENV = "SPANLEDGER_BUDGETS_URL"
TOKEN_ENV = "SPANLEDGER_COLLECTOR_TOKEN"
DEFAULT_URL = "http://127.0.0.1:4318"


# -- cost_to_date in baggage -------------------------------------------------------------------

class RunCostPropagator(TextMapPropagator):
    """The wrapped propagator, plus the run's cost so far in the outgoing baggage."""

    def __init__(self, inner: TextMapPropagator) -> None:
        self.inner = inner

    def inject(self, carrier: CarrierT, context: context_api.Context | None = None,
               setter: Setter[CarrierT] = default_setter) -> None:
        ctx = context if context is not None else context_api.get_current()
        try:
            total = run_cost_usd(ctx)
            if total is not None and total > 0:
                ctx = baggage.set_baggage(COST_TO_DATE, f"{total.normalize():f}", ctx)
        except Exception:  # propagation must never break the caller's request
            log.debug("cost_to_date not added to baggage", exc_info=True)
        self.inner.inject(carrier, ctx, setter)

    def extract(self, carrier: CarrierT, context: context_api.Context | None = None,
                getter: Getter[CarrierT] = default_getter) -> context_api.Context:
        return self.inner.extract(carrier, context, getter)

    @property
    def fields(self) -> set[str]:
        return set(self.inner.fields)


def install_propagator() -> None:
    """Wrap the global propagator once (idempotent)."""
    current = propagate.get_global_textmap()
    if not isinstance(current, RunCostPropagator):
        propagate.set_global_textmap(RunCostPropagator(current))


def uninstall_propagator() -> None:
    current = propagate.get_global_textmap()
    if isinstance(current, RunCostPropagator):
        propagate.set_global_textmap(current.inner)


# -- /budgets/state ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RemoteState:
    stops: tuple[Limit, ...]
    run_limits: tuple[Limit, ...]
    fetched_at: float
    stale_after_s: float


def parse_state(doc: Mapping[str, Any], fetched_at: float) -> RemoteState:
    """The parts of the collector's document the guard uses (version 1)."""
    stops = tuple(Limit(str(s["budget"]), None, str(s.get("on_exceed", "raise")),
                        {str(k): str(v) for k, v in dict(s.get("scope") or {}).items()})
                  for s in doc.get("stops") or ())
    limits = tuple(Limit(str(r["budget"]), to_pico(Decimal(str(r["max_run_usd"]))),
                         str(r.get("on_exceed", "raise")),
                         {str(k): str(v) for k, v in dict(r.get("scope") or {}).items()})
                   for r in doc.get("run_limits") or ())
    return RemoteState(stops, limits, fetched_at, float(doc.get("stale_after_s") or 180))


def _matches(scope: Mapping[str, str], attribution: Mapping[str, str]) -> bool:
    return all(attribution.get(k, "") == v for k, v in scope.items())


class BudgetWatcher:
    """Polls ``/budgets/state`` in a daemon thread; :meth:`limits` reads the last good copy."""

    def __init__(self, url: str, token: str | None, every_s: float, timeout_s: float) -> None:
        self.url = url.rstrip("/") + "/budgets/state"
        self.token = token
        self.every_s = every_s
        self.timeout_s = timeout_s
        self.state: RemoteState | None = None
        self.failures = 0
        self.fetches = 0
        self._stop = threading.Event()
        self._polled = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="spanledger-budget-watch",
                                        daemon=True)

    def start(self) -> BudgetWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout_s + 1)

    def wait_polled(self, timeout: float) -> bool:
        """True once a first poll (successful or not) has finished."""
        return self._polled.wait(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._polled.set()
            self._stop.wait(self.every_s)

    def poll(self) -> bool:
        request = urllib.request.Request(self.url, headers={"Accept": "application/json"})
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                doc = json.loads(response.read())
            self.state = parse_state(doc, time.monotonic())
            self.fetches += 1
            return True
        except (urllib.error.URLError, OSError, ValueError, KeyError, ArithmeticError) as exc:
            self.failures += 1
            if self.failures == 1:
                log.warning("budget state from %s unavailable (%s); calls are allowed and "
                            "counted until it answers", self.url, exc)
            return False

    def current(self) -> RemoteState | None:
        state = self.state
        if state is None or time.monotonic() - state.fetched_at > state.stale_after_s:
            return None
        return state

    def limits(self, attribution: Mapping[str, str]) -> list[Limit]:
        state = self.current()
        if state is None:
            count("unknown_state")
            return []
        return [lim for lim in (*state.stops, *state.run_limits)
                if _matches(lim.scope, attribution)]


_WATCHER: BudgetWatcher | None = None
_WATCH_LOCK = threading.Lock()


def watch_budgets(url: str | None = None, *, token: str | None = None, every_s: float = 30.0,
                  timeout_s: float = 5.0) -> BudgetWatcher:
    """Apply the budgets file's run limits and hard stops in this service.

    ``url``: the collector's HTTP base (default ``$SPANLEDGER_BUDGETS_URL``, else
    ``http://127.0.0.1:4318``); ``token``: its bearer token (default
    ``$SPANLEDGER_COLLECTOR_TOKEN``). Replaces a watcher started before.
    """
    global _WATCHER
    from .guard_clients import install

    install()
    install_propagator()
    watcher = BudgetWatcher(url or os.environ.get(URL_ENV) or DEFAULT_URL,
                            token if token is not None else os.environ.get(TOKEN_ENV),
                            every_s, timeout_s)
    with _WATCH_LOCK:
        old, _WATCHER = _WATCHER, watcher
        if remote_limits not in LIMIT_SOURCE:
            LIMIT_SOURCE.append(remote_limits)
    if old is not None:
        old.stop()
    return watcher.start()


def stop_watching() -> None:
    global _WATCHER
    with _WATCH_LOCK:
        old, _WATCHER = _WATCHER, None
    if old is not None:
        old.stop()


def remote_limits(attribution: Mapping[str, str]) -> list[Limit]:
    """The file limits and hard stops that match a call (none without a watcher)."""
    watcher = _WATCHER
    return [] if watcher is None else watcher.limits(attribution)


__all__ = ["STATS", "BudgetWatcher", "RunCostPropagator", "install_propagator", "remote_limits",
           "stop_watching", "watch_budgets"]
