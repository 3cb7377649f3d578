"""The collector's budget evaluation: every ``budgets.every_s`` seconds, in one thread.

Each tick is one :class:`~spanledger.budgets.runner.AlertRunner` run against
the collector's own store (so it works on the embedded store the collector
holds), and its result is what ``GET /budgets/state`` serves to services.
The budgets file is re-read when it changes; a broken edit is logged and the
last good file stays in force, so a typo never switches budgets off.

Alert state lives in ClickHouse (``budget_alerts``), not here: a restarted
collector, a second collector or a cron job (``spanledger alerts check``)
sees what was already sent and never sends it again.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from pathlib import Path

from spanledger.budgets import BudgetFile, load_budget_file, service_state
from spanledger.budgets.runner import AlertRunner, TickResult
from spanledger.collector.metrics import Metrics
from spanledger.store.base import Store, StoreError
from spanledger.yamlconf import ConfigError

log = logging.getLogger(__name__)


class BudgetSchedule:
    def __init__(self, store: Store, path: str, every_s: float,
                 metrics: Metrics | None = None) -> None:
        self.store = store
        self.path = Path(path)
        self.every_s = every_s
        self.budgets: BudgetFile = load_budget_file(path)  # a bad file stops the start
        self._mtime = self._stat()
        self.runner = AlertRunner(store, self.budgets)
        self.evaluations = self.sent = self.failed = self.errors = 0
        self.last: TickResult | None = None
        self._state: bytes | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if metrics is not None:
            for name, text, fn in (
                ("budget_evaluations", "budget evaluations run", lambda: self.evaluations),
                ("budget_alerts_sent", "budget alerts delivered", lambda: self.sent),
                ("budget_alerts_failed", "budget alert deliveries failed (retried)",
                 lambda: self.failed),
                ("budget_evaluation_errors", "budget evaluations that failed",
                 lambda: self.errors)):
                metrics.gauge(name, text, fn)

    def start(self) -> BudgetSchedule:
        self._thread = threading.Thread(target=self._loop, name="budget-schedule", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.tick()
            self._stop.wait(max(self.every_s - (time.monotonic() - started), 0.0))

    def tick(self, now: dt.datetime | None = None) -> TickResult | None:
        """One evaluation (the thread calls this; tests may too)."""
        self._reload()
        try:
            result = self.runner.run_once(now)
        except (StoreError, OSError) as exc:
            self.errors += 1
            log.warning("budget evaluation failed (next try in %ss): %s", self.every_s, exc)
            return None
        except Exception:  # the schedule must outlive any bug in one evaluation
            self.errors += 1
            log.exception("budget evaluation failed")
            return None
        self.evaluations += 1
        self.sent += len(result.sent)
        self.failed += len(result.failed)
        self.last = result
        doc = service_state.build(result.states, self.budgets, result.now, self.every_s)
        self._state = service_state.to_json(doc)
        return result

    def state_json(self) -> bytes | None:
        """The ``/budgets/state`` body of the last evaluation (None before the first)."""
        return self._state

    def _stat(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    def _reload(self) -> None:
        mtime = self._stat()
        if mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            self.budgets = load_budget_file(self.path)
        except ConfigError as exc:
            log.error("budgets file not reloaded, the previous one stays in force: %s", exc)
            return
        self.runner = AlertRunner(self.store, self.budgets, owner=self.runner.owner)
        log.info("budgets file reloaded: %d budgets", len(self.budgets.budgets))
