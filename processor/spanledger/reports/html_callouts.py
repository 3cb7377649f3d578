"""HTML section "What stands out": anomalies written as sentences a finance lead can forward.

When the page is given the anomalies of :mod:`spanledger.budgets.anomalies` (``report
anomalies``: spikes, creeps and runaway runs against robust, weekday-aware baselines;
``report html`` and the demo pass them), the section words those findings
(:func:`anomaly_sentences`). Without them (a page built by the reports layer alone)
it falls back to a self-contained rule, measured against each team's own baseline rather than a
fixed amount: a day is called out when the team spent at least
:data:`CALLOUT_RATIO` times its median day of the :data:`BASELINE_DAYS` days
before, and at least :data:`MIN_EXTRA_USD` more than that median (so a team
going from $0.002 to $0.008 a day is not news). A team needs spend on
:data:`MIN_BASELINE_DAYS` of those days to have a baseline at all: a new team's
first days are not anomalies. Each call-out names the
feature that made most of the day and its costliest run that day: usually a
bug or an agent loop. Runs are called out too: a run that cost at least
:data:`RUN_RATIO` times the median run of its feature (and at least
:data:`MIN_EXTRA_USD`), the agent loop a daily total can hide. One function
(:func:`spend_callouts`) decides, so a richer detector (the budgets package's
anomalies, once it is there) can replace it in one place.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from html import escape
from typing import Any

from spanledger.reports import svg
from spanledger.reports.chargeback import label
from spanledger.reports.period import Period
from spanledger.reports.queries import ALL, DailyGroupRow, Scope, TraceRow, fetch_daily_groups
from spanledger.reports.tabular import Report
from spanledger.store.base import Store

ZERO = Decimal(0)
CALLOUT_RATIO = Decimal(3)
BASELINE_DAYS = 7
MIN_EXTRA_USD = Decimal("0.50")
MIN_BASELINE_DAYS = 4
RUN_RATIO = Decimal(10)


@dataclass(frozen=True, slots=True)
class Callout:
    team: str
    day: dt.date
    spend: Decimal
    baseline: Decimal
    feature: str
    feature_spend: Decimal
    top_run: TraceRow | None

    @property
    def ratio(self) -> Decimal:
        return self.spend / self.baseline

    def sentence(self) -> str:
        """The call-out in words (plain text; the page escapes it)."""
        text = (f"{label(self.team)} spent {svg.usd_label(self.spend)} on "
                f"{self.day:%a %Y-%m-%d}, {self.ratio:.1f}x its median day of the "
                f"{BASELINE_DAYS} days before ({svg.usd_label(self.baseline)}). ")
        share = self.feature_spend / self.spend * 100 if self.spend > 0 else ZERO
        text += (f"{label(self.feature)} made {svg.usd_label(self.feature_spend)} of it "
                 f"({share:.0f}%)")
        run = self.top_run
        if run is not None:
            text += (f"; its costliest run that day, trace {run.trace_id}, cost "
                     f"{svg.usd_label(run.cost)} in {run.calls:,} call"
                     f"{'s' if run.calls != 1 else ''}")
        return text + "."


@dataclass(frozen=True, slots=True)
class RunCallout:
    run: TraceRow
    #: the median run of its feature in the period
    median: Decimal
    median_calls: Decimal

    @property
    def ratio(self) -> Decimal:
        return self.run.cost / self.median

    def sentence(self) -> str:
        run = self.run
        return (f"Run {run.trace_id} of {label(run.team)} / {label(run.feature)} on "
                f"{run.start:%a %Y-%m-%d} cost {svg.usd_label(run.cost)} in {run.calls:,} "
                f"calls: {self.ratio:.0f}x the median run of its feature "
                f"({svg.usd_label(self.median)}, {self.median_calls:.0f} calls), an agent loop "
                "or a retry storm to look at.")


def fetch_callout_days(store: Store, period: Period, scope: Scope = ALL) -> list[DailyGroupRow]:
    """Daily spend per team x feature over the period and the baseline days before it."""
    start = period.start - dt.timedelta(days=BASELINE_DAYS)
    return fetch_daily_groups(store, Period(start, period.end), ("team", "feature"), scope)


def spend_callouts(daily: list[DailyGroupRow], period: Period,
                   traces: list[TraceRow]) -> list[Callout | RunCallout]:
    """Days of the period on which a team spent >= CALLOUT_RATIO x its trailing median,
    then runs that cost >= RUN_RATIO x their feature's median run."""
    return [*_day_callouts(daily, period, traces), *_run_callouts(traces)]


def _run_callouts(traces: list[TraceRow]) -> list[RunCallout]:
    by_feature: dict[tuple[str, str], list[TraceRow]] = defaultdict(list)
    for t in traces:
        by_feature[(t.team, t.feature)].append(t)
    out = []
    for runs in by_feature.values():
        median = Decimal(statistics.median([t.cost for t in runs]))
        calls = Decimal(statistics.median([t.calls for t in runs]))
        out += [RunCallout(t, median, calls) for t in runs
                if median > 0 and t.cost >= RUN_RATIO * median
                and t.cost - median >= MIN_EXTRA_USD]
    out.sort(key=lambda c: (-c.run.cost, c.run.trace_id))
    return out


def _day_callouts(daily: list[DailyGroupRow], period: Period,
                  traces: list[TraceRow]) -> list[Callout]:
    per_team: dict[str, dict[dt.date, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    per_feature: dict[tuple[str, dt.date], dict[str, Decimal]] = defaultdict(
        lambda: defaultdict(lambda: ZERO))
    for r in daily:
        team, feature = r.group
        per_team[team][r.day] += r.cost
        per_feature[(team, r.day)][feature] += r.cost
    out: list[Callout] = []
    for team, days in per_team.items():
        for day, spend in days.items():
            if not period.start <= day <= period.end:
                continue
            before = [days.get(day - dt.timedelta(days=i), ZERO)
                      for i in range(1, BASELINE_DAYS + 1)]
            if sum(1 for b in before if b > 0) < MIN_BASELINE_DAYS:
                continue  # no baseline yet: a new team, or one that rarely spends
            baseline = Decimal(statistics.median(before))
            if spend < CALLOUT_RATIO * baseline or spend - baseline < MIN_EXTRA_USD:
                continue
            feature, f_spend = max(per_feature[(team, day)].items(),
                                   key=lambda kv: (kv[1], kv[0]))
            runs = [t for t in traces if t.team == team and t.start.date() == day]
            top = max(runs, key=lambda t: (t.cost, t.trace_id), default=None)
            out.append(Callout(team, day, spend, baseline, feature, f_spend, top))
    out.sort(key=lambda c: (-(c.spend - c.baseline), c.day, c.team))
    return out


def _against(ratio: Decimal | None, expected: Decimal, what: str) -> str:
    """``3.2x its usual $1.20``, or ``where its usual is nothing`` (an infinite ratio)."""
    if ratio is None or expected <= 0:
        return f"where {what} is nothing"
    return f"{ratio:.1f}x {what} ({svg.usd_label(expected)})"


def anomaly_sentences(report: Report, traces: list[TraceRow]) -> list[str]:
    """The findings of ``report anomalies`` in words: one sentence per day that spiked
    (every series that spiked that day in it), per runaway run, per creeping series."""
    calls = {t.trace_id: t.calls for t in traces}
    spikes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    out: list[str] = []
    for r in report.rows:
        if r["kind"] == "spike":
            spikes[r["day"]].append(r)
    for day, rows in sorted(spikes.items()):
        parts = [f"{r['dimension']} {r['value']} {svg.usd_label(Decimal(r['actual']))}, "
                 + _against(r["ratio"], Decimal(r["expected"]), "its usual")
                 for r in sorted(rows, key=lambda r: (-Decimal(r["actual"]), r["dimension"]))]
        when = dt.date.fromisoformat(day)
        out.append(f"Spend spiked on {when:%a %Y-%m-%d} (against the same weekday): "
                   + "; ".join(parts) + ".")
    for r in report.rows:
        if r["kind"] == "run":
            n = calls.get(r["trace_id"])
            out.append(f"Agent run {r['trace_id']} of {r['dimension']} {r['value']} on "
                       f"{r['day']} cost {svg.usd_label(Decimal(r['actual']))}"
                       + (f" in {n:,} calls" if n else "") + ", "
                       + _against(r["ratio"], Decimal(r["expected"]), "the p95 run of its feature")
                       + ": a loop or a retry storm to look at.")
    days = report.meta.get("settings", {}).get("baseline_days", 28)
    for r in report.rows:
        if r["kind"] == "creep":
            grown = f" ({r['ratio']:.1f}x)" if r["ratio"] is not None else ""
            out.append(f"{r['dimension']} {r['value']} crept: its daily spend grew from "
                       f"{svg.usd_label(Decimal(r['expected']))} to "
                       f"{svg.usd_label(Decimal(r['actual']))}{grown} over the last {days} days.")
    return out


def render_callouts(daily: list[DailyGroupRow] | None, period: Period,
                    traces: list[TraceRow], anomalies: Report | None = None) -> str:
    if anomalies is not None:
        said = anomaly_sentences(anomalies, traces)
        notes = "".join(f'<p class="note">{escape(n)}</p>' for n in anomalies.notes)
        window = escape(anomalies.title.removeprefix("Anomalies "))
        if not said:
            return f'<p class="note">Nothing stands out in {window}.</p>{notes}'
        items = "".join(f"<li>{escape(x)}</li>" for x in said)
        return (f'<p class="note">In {window} (the anomalies section below lists them '
                f'all):</p><ul class="callouts">{items}</ul>{notes}')
    if daily is None:
        return '<p class="note">No daily data was read for the call-outs.</p>'
    callouts = spend_callouts(daily, period, traces)
    rule = (f"A day is called out when a team spent {CALLOUT_RATIO:f}x its median day of the "
            f"{BASELINE_DAYS} days before or more (the team needs spend on {MIN_BASELINE_DAYS} "
            f"of those days), a run when it cost {RUN_RATIO:f}x the median run of its feature "
            f"or more; either at least {svg.usd_label(MIN_EXTRA_USD)} above its median.")
    if not callouts:
        return f'<p class="note">Nothing stands out in this period. {rule}</p>'
    items = "".join(f"<li>{escape(c.sentence())}</li>" for c in callouts[:10])
    more = (f'<p class="note">{len(callouts) - 10} more days stand out.</p>'
            if len(callouts) > 10 else "")
    return f'<ul class="callouts">{items}</ul>{more}<p class="note">{rule}</p>'
