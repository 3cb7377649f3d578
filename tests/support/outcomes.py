"""Outcome spans as otel_traces rows, and a small hand-computed data set around them.

An outcome is a small span carrying ``spanledger.outcome.name`` (see
``spanledger.processor.outcome``); these rows are what the collector writes
for it, so tests go in at ``otel_traces`` and through the views like production.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from support.reports import day, llm_span


def outcome_span(*, trace: str, ts: dt.datetime, name: str, value: str | None = "1",
                 run: str | None = None, team: str = "", feature: str = "", customer: str = "",
                 user: str = "", service: str = "svc", env: str = "prod") -> dict[str, Any]:
    """One outcome span row; ``run`` = the trace id it names (recorded in another trace)."""
    row = llm_span(trace=trace, ts=ts, team=team, feature=feature, customer=customer,
                   service=service, env=env)
    attrs: dict[str, str] = {"spanledger.outcome.name": name}
    if value is not None:
        attrs["spanledger.outcome.value"] = value
    if run is not None:
        attrs["spanledger.outcome.trace_id"] = run
    for key, v in (("team", team), ("feature", feature), ("customer", customer), ("user", user)):
        if v:
            attrs[f"spanledger.{key}"] = v
    row.update(SpanAttributes=attrs, SpanName=f"outcome {name}", SpanKind="Internal",
               Duration=0)
    return row


def tid(n: int) -> str:
    """A 32-hex trace id (the collector writes lowercase hex)."""
    return f"{n:032x}"


def unit_spans() -> list[dict[str, Any]]:
    """October 2026: two features, three customers, outcomes in and out of the runs' traces.

    run  feature/customer          user  calls  cost   outcomes
    1    support/triage  acme      u1    2      3.00   ticket_resolved (in the run)
    2    support/triage  acme      u2    1      1.50   ticket_resolved (in the run)
    3    support/triage  globex    u3    3      4.50   none: waste
    4    support/triage  globex    u3    1      1.00   ticket_resolved, by a webhook in trace
                                                       w4 naming run 4 (no attribution of
                                                       its own), recorded 2026-11-02
    5    sales/drafts    acme      u1    1      0.60   conversion value 2 (in the run)
    6    sales/drafts    initech   u4    1      0.40   none: waste
    7    support/triage  acme      u1    1      9.00   run started 2026-09-30: not October;
                                                       its outcome (Oct 1) is not counted
    -    support/triage  globex    -     -      -      ticket_resolved in trace w8 with no
                                                       LLM call: counted by its own attribution

    support/triage: runs 1-4, cost 10.00, waste 4.50 (run 3), ticket_resolved 4 (3 linked
    + 1 unlinked) -> 2.50 per ticket. sales/drafts: runs 5-6, cost 1.00, waste 0.40,
    conversion value 2 -> 0.50 per conversion.
    customers: acme 3.00 + 1.50 + 0.60 = 5.10 (users u1, u2); globex 4.50 + 1.00 = 5.50
    (u3); initech 0.40 (u4).
    """
    s: list[dict[str, Any]] = []

    def run(n: int, ts: dt.datetime, team: str, feature: str, customer: str, user: str,
            costs: list[str]) -> None:
        for c in costs:
            row = llm_span(trace=tid(n), ts=ts, team=team, feature=feature, customer=customer,
                           input_tokens=100, output_tokens=10, cost=c)
            row["SpanAttributes"]["spanledger.user"] = user
            s.append(row)

    run(1, day(3), "support", "triage", "acme", "u1", ["1.25", "1.75"])
    run(2, day(4), "support", "triage", "acme", "u2", ["1.50"])
    run(3, day(5), "support", "triage", "globex", "u3", ["1.50", "1.50", "1.50"])
    run(4, day(6), "support", "triage", "globex", "u3", ["1.00"])
    run(5, day(7), "sales", "drafts", "acme", "u1", ["0.60"])
    run(6, day(8), "sales", "drafts", "initech", "u4", ["0.40"])
    run(7, dt.datetime(2026, 9, 30, 23, 0, tzinfo=dt.UTC), "support", "triage", "acme", "u1",
        ["9.00"])
    s += [
        outcome_span(trace=tid(1), ts=day(3), name="ticket_resolved", team="support",
                     feature="triage", customer="acme"),
        outcome_span(trace=tid(2), ts=day(4), name="ticket_resolved", team="support",
                     feature="triage", customer="acme"),
        outcome_span(trace="f" * 32, ts=dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC),
                     name="ticket_resolved", run=tid(4)),
        outcome_span(trace=tid(5), ts=day(7), name="conversion", value="2", team="sales",
                     feature="drafts", customer="acme"),
        outcome_span(trace=tid(7), ts=day(1), name="ticket_resolved", team="support",
                     feature="triage", customer="acme"),
        outcome_span(trace=tid(8), ts=day(9), name="ticket_resolved", team="support",
                     feature="triage", customer="globex"),
    ]
    return s
