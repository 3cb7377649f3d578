"""HTML section "Inside the top runs": each expensive run step by step, as a waterfall.

For the costliest runs (traces) of the period, every counted call in time
order with its kind, model, tokens, cost and the running total after it; the
waterfall's last bar is the run's total, which is the trace's cost in
``llm_cost_by_trace`` (both sum the same priced calls). An agent loop shows as
a staircase whose steps grow with the re-sent context.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from html import escape

from spanledger.reports import svg
from spanledger.reports.chargeback import label
from spanledger.reports.html_mix import KIND_COLOURS, UNPRICED_COLOUR
from spanledger.reports.queries import (
    KIND_LABELS,
    KIND_NAMES,
    StepRow,
    TraceRow,
    fetch_trace_steps,
)
from spanledger.store.base import Store

ZERO = Decimal(0)
#: runs drilled into
DRILL_RUNS = 3
#: steps listed in full; a longer run lists its first and last HEAD_TAIL steps
LIST_ALL_UP_TO = 24
HEAD_TAIL = 10


@dataclass(frozen=True, slots=True)
class DrillData:
    runs: list[TraceRow]
    steps: list[StepRow]


def top_runs(traces: list[TraceRow], n: int = DRILL_RUNS) -> list[TraceRow]:
    return sorted(traces, key=lambda t: (-t.cost, -t.calls, t.trace_id))[:n]


def fetch_drilldown(store: Store, traces: list[TraceRow], n: int = DRILL_RUNS) -> DrillData:
    runs = top_runs(traces, n)
    return DrillData(runs, fetch_trace_steps(store, [t.trace_id for t in runs]))


def render_drilldown(data: DrillData | None) -> str:
    if data is None:
        return '<p class="note">No runs were read for the drill-down.</p>'
    if not data.runs:
        return '<p class="note">No runs in this period.</p>'
    by_trace: dict[str, list[StepRow]] = {}
    for s in data.steps:
        by_trace.setdefault(s.trace_id, []).append(s)
    return "".join(_run(t, by_trace.get(t.trace_id, []), i + 1) for i, t in enumerate(data.runs))


def _run(trace: TraceRow, steps: list[StepRow], rank: int) -> str:
    where = f"{label(trace.team)} / {label(trace.feature)}"
    if trace.customer:
        where += f" · customer {trace.customer}"
    head = (f'<h3>#{rank} <span class="id">{escape(trace.trace_id)}</span></h3>'
            f'<p class="note">{escape(where)} · started <span class="id">'
            f'{trace.start:%Y-%m-%d %H:%M:%S}</span> UTC · {trace.calls:,} calls · '
            f'{escape(", ".join(trace.models))} · cost {svg.usd_label(trace.cost)}</p>')
    if not steps:
        return f'<div class="run">{head}<p class="note">Its calls are no longer stored.</p></div>'
    bars = []
    for i, s in enumerate(steps, 1):
        colour = KIND_COLOURS.get(s.kind, svg.GREY) if s.status == "priced" else UNPRICED_COLOUR
        tokens = (f"{s.input_tokens:,} in / {s.output_tokens:,} out" if s.kind == "llm"
                  else "priced per call")
        bars.append((f"step {i} {s.model}", s.cost, colour,
                     f"{KIND_NAMES.get(s.kind, s.kind)} · {tokens} · "
                     f"{svg.usd_label(s.cost) if s.status == 'priced' else s.status}"))
    total = sum((s.cost for s in steps), ZERO)
    legend = [(KIND_LABELS[k], c) for k, c in KIND_COLOURS.items()
              if any(s.kind == k for s in steps)]
    if any(s.status != "priced" for s in steps):
        legend.append(("unpriced (no cost)", UNPRICED_COLOUR))
    chart = svg.waterfall(f"Run #{rank}: cost step by step ({len(steps)} calls)", bars,
                          f"total {svg.usd_label(total)}", legend=legend)
    return (f'<div class="run">{head}<div class="chart">{chart}</div>'
            f'{_steps_table(steps)}</div>')


def _steps_table(steps: list[StepRow]) -> str:
    running = ZERO
    rows: list[str] = []
    shown = set(range(len(steps)))
    if len(steps) > LIST_ALL_UP_TO:
        shown = set(range(HEAD_TAIL)) | set(range(len(steps) - HEAD_TAIL, len(steps)))
    skipped: list[StepRow] = []
    for i, s in enumerate(steps):
        running += s.cost
        if i not in shown:
            skipped.append(s)
            continue
        if skipped:
            cost = sum((x.cost for x in skipped), ZERO)
            rows.append(f'<tr class="gap"><td class="n"></td><td class="t" colspan="7">… '
                        f'{len(skipped)} more steps ({svg.usd_label(cost)}) …</td>'
                        f'<td class="n"></td><td class="n"></td></tr>')
            skipped = []
        offset = (s.time - steps[0].time).total_seconds()
        cost = svg.usd_label(s.cost) if s.status == "priced" else s.status
        rows.append(
            f'<tr><td class="n">{i + 1}</td><td class="n">+{offset:.1f}s</td>'
            f'<td class="t">{escape(KIND_NAMES.get(s.kind, s.kind))}</td>'
            f'<td class="t">{escape(s.model)}</td><td class="t">{escape(s.service)}</td>'
            f'<td class="n">{s.input_tokens:,}</td><td class="n">{s.output_tokens:,}</td>'
            f'<td class="n">{s.cache_read_tokens:,}</td><td class="n">{cost}</td>'
            f'<td class="n running" data-running="{running}">{svg.usd_label(running)}</td></tr>')
    return ('<table class="steps"><thead><tr><th class="n">step</th><th class="n">at</th>'
            '<th>kind</th><th>model / tool / database</th><th>service</th>'
            '<th class="n">input tokens</th><th class="n">output tokens</th>'
            '<th class="n">cached</th><th class="n">cost</th><th class="n">running total</th>'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table>')
