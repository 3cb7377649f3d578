"""One evaluation: spend -> thresholds reached -> claimed -> delivered, each alert once.

The collector runs this every minute (``collector/budget_schedule.py``),
``spanledger alerts check`` once. Per budget scope, kind (actual, forecasted)
and channel, the thresholds reached this period that have no alert yet are
claimed in ``budget_alerts``: the highest one is sent, lower ones reached at
the same time are recorded as ``superseded`` (one message when spend jumps
from 40 % to 110 %, not four). Then failed or abandoned deliveries that are
due are claimed again and retried. See :mod:`.alert_state` for the claim
protocol and what it guarantees.

A read-only store (an embedded store held by a running collector, reached
through its SQL front) is evaluated without writing: the result lists what
would fire, and the collector that holds the store delivers it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from spanledger.budgets import alert_state as st
from spanledger.budgets.anomalies import Finding, detect
from spanledger.budgets.delivery import deliver
from spanledger.budgets.evaluate import ScopeState, evaluate
from spanledger.budgets.messages import anomaly_alert, threshold_alert
from spanledger.reports.budgets import BudgetFile
from spanledger.reports.period import Period
from spanledger.store.base import Store, StoreError

log = logging.getLogger(__name__)

ANOMALY_BUDGET = "(anomalies)"
KINDS = ("actual", "forecasted")


@dataclass(frozen=True, slots=True)
class Fired:
    """An alert this evaluation claimed (or, read-only, would claim)."""

    key: st.AlertKey
    text: str
    attempt: int
    #: True sent, False failed (retried later), None not sent here (read-only or superseded)
    delivered: bool | None
    superseded: bool = False
    error: str = ""


@dataclass
class TickResult:
    now: dt.datetime
    states: list[ScopeState]
    #: thresholds that fired for the first time in this evaluation
    fired: list[Fired] = field(default_factory=list)
    #: earlier alerts delivered (or failed again) in this evaluation
    retried: list[Fired] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    #: nothing was written (read-only store or a dry run)
    read_only: bool = False

    @property
    def sent(self) -> list[Fired]:
        return [f for f in (*self.fired, *self.retried) if f.delivered]

    @property
    def failed(self) -> list[Fired]:
        return [f for f in (*self.fired, *self.retried) if f.delivered is False]

    @property
    def new(self) -> list[Fired]:
        """Newly fired alerts that say something (superseded ones are recorded, not sent)."""
        return [f for f in self.fired if not f.superseded]


@dataclass(slots=True)
class _Claim:
    key: st.AlertKey
    attempt: int
    payload: str
    text: str
    superseded: bool
    spent: Decimal = Decimal(0)
    forecast: Decimal | None = None
    amount: Decimal = Decimal(0)
    retry: bool = False


def evaluator_id() -> str:
    """Who claims: host, process and a per-runner nonce (two runners in one process differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class AlertRunner:
    """Evaluates a budgets file against a store and delivers what fires."""

    def __init__(self, store: Store, budgets: BudgetFile, *, owner: str | None = None,
                 dry_run: bool = False, sleep: Callable[[float], None] = time.sleep) -> None:
        self.store = store
        self.budgets = budgets
        self.owner = owner or evaluator_id()
        self.dry_run = dry_run
        self.sleep = sleep

    # -- the tick --------------------------------------------------------------------------
    def run_once(self, now: dt.datetime | None = None) -> TickResult:
        now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        states = evaluate(self.store, self.budgets, now)
        result = TickResult(now, states)
        writable = (not self.dry_run and not getattr(self.store, "read_only", False)
                    and st.has_table(self.store))
        result.read_only = not writable
        today = now.date()
        since = min((s.period.start for s in states), default=today) - dt.timedelta(days=1)
        findings: list[Finding] = []
        if self.budgets.anomalies.notify:
            findings = detect(self.store, Period(today - dt.timedelta(days=1), today),
                              self.budgets.anomalies)
            result.findings = findings
            since = min(since, today - dt.timedelta(days=8))
        existing = st.load(self.store, since) if st.has_table(self.store) else {}
        claims = self._threshold_claims(states, existing, now)
        claims += self._anomaly_claims(findings, existing, now)
        if not writable:
            result.fired = [Fired(c.key, c.text, 1, None, c.superseded) for c in claims]
            return result
        retries = [self._retry_claim(a) for a in existing.values() if a.due(now)
                   and a.key.channel in self.budgets.channels]
        done = self._claim_and_deliver([*claims, *retries], now)
        result.fired = [f for c, f in done if not c.retry]
        result.retried = [f for c, f in done if c.retry]
        return result

    # -- what should fire ------------------------------------------------------------------
    def _threshold_claims(self, states: list[ScopeState], existing: dict[str, st.Alert],
                          now: dt.datetime) -> list[_Claim]:
        fired = _fired_index(existing)
        out: list[_Claim] = []
        for state in states:
            spec = state.budget
            rolling = spec.period.kind == "rolling"
            for kind in KINDS:
                reached = state.reached_actual if kind == "actual" else state.reached_forecast
                if not reached:
                    continue
                for channel in spec.notify:
                    slot = (spec.name, state.scope_key, kind, channel)
                    before = [a.key.threshold for a in fired.get(slot, [])
                              if (a.key.period_end >= state.period.start if rolling
                                  else a.key.period_start == state.period.start)]
                    new = [t for t in reached if t not in before]
                    if not new:
                        continue
                    top = max(new)
                    send = top > max(before, default=Decimal(-1))
                    for t in new:
                        key = st.AlertKey(spec.name, state.scope_key, state.period.start,
                                          state.period.end, kind, t, channel)
                        payload, text = threshold_alert(state, key, self.budgets.report_url, now)
                        out.append(_Claim(key, 1, payload, text,
                                          superseded=not (send and t == top), spent=state.spent,
                                          forecast=state.forecast.total, amount=spec.amount))
        return out

    def _anomaly_claims(self, findings: list[Finding], existing: dict[str, st.Alert],
                        now: dt.datetime) -> list[_Claim]:
        out = []
        seen = {a.key.alert_id for a in existing.values()}
        for f in findings:
            scope = f"{f.dimension}={f.value}" + (f",trace={f.trace_id}" if f.trace_id else "")
            start = end = f.day
            if f.kind == "creep":  # a trend: at most once a week per series
                start = f.day - dt.timedelta(days=f.day.weekday())
                end = start + dt.timedelta(days=6)
            for channel in self.budgets.anomalies.notify:
                key = st.AlertKey(ANOMALY_BUDGET, scope, start, end, f"anomaly.{f.kind}",
                                  Decimal(0), channel)
                if key.alert_id in seen:
                    continue
                payload, text = anomaly_alert(f, key, self.budgets.report_url, now)
                out.append(_Claim(key, 1, payload, text, False, spent=f.actual,
                                  amount=f.expected))
        return out

    def _retry_claim(self, alert: st.Alert) -> _Claim:
        text = alert.payload
        with contextlib.suppress(ValueError, AttributeError):
            text = json.loads(alert.payload).get("text", text)
        return _Claim(alert.key, alert.attempt + 1, alert.payload, text, False, retry=True)

    # -- claim, read back, deliver, record ----------------------------------------------------
    def _claim_and_deliver(self, claims: list[_Claim], now: dt.datetime
                           ) -> list[tuple[_Claim, Fired]]:
        mine: list[_Claim] = []
        for c in claims:
            try:
                st.claim(self.store, c.key, c.attempt, self.owner, now, superseded=c.superseded,
                         spent=c.spent, forecast=c.forecast, amount=c.amount, payload=c.payload)
                mine.append(c)
            except StoreError as exc:  # the next tick tries again
                log.warning("budget alert %s: claim failed: %s", c.key.alert_id, exc)
        holders = st.owners(self.store, [c.key.alert_id for c in mine],
                            {c.key.alert_id: c.attempt for c in mine})
        out = []
        for c in mine:
            if holders.get(c.key.alert_id) != self.owner:
                continue  # another evaluator won the claim: it delivers
            if c.superseded:
                out.append((c, Fired(c.key, c.text, c.attempt, None, superseded=True)))
                continue
            result = deliver(self.budgets.channels[c.key.channel], c.payload, c.text,
                             c.key.alert_id, self.sleep)
            next_at = None if result.ok else st.retry_at(c.attempt, now)
            try:
                st.record(self.store, c.key, c.attempt, self.owner, dt.datetime.now(dt.UTC),
                          result.ok, result.error, next_at)
            except StoreError as exc:  # the lease makes another evaluator retry it
                log.warning("budget alert %s: outcome not recorded: %s", c.key.alert_id, exc)
            out.append((c, Fired(c.key, c.text, c.attempt, result.ok, error=result.error)))
        return out


def _fired_index(existing: dict[str, st.Alert]
                 ) -> dict[tuple[str, str, str, str], list[st.Alert]]:
    index: dict[tuple[str, str, str, str], list[st.Alert]] = defaultdict(list)
    for a in existing.values():
        index[(a.key.budget, a.key.scope, a.key.kind, a.key.channel)].append(a)
    return index
