"""Issue 14, Musts 1-3: no client can move another team's numbers.

Each row of the issue's table is sent as OTLP through the collector's own pipeline
(spool -> conversion and pricing -> screen -> insert into chdb, the views, the
quarantine), after a victim's honest calls were stored. Every test asserts the
victim's totals are unchanged and that the attempt is visible: the quarantine with its
reason, the collector's counters, ``llm_calls`` flags, report rows and notes. The
real collector over gRPC and HTTP is in ``test_trust_e2e.py``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from spanledger import semconv as sc
from spanledger.collector.attribution_policy import AttributionPolicy
from spanledger.collector.bounds import Bounds
from spanledger.collector.tokens import Grant, Patterns
from spanledger.reports.closing import close_month, month_totals
from spanledger.reports.disagreements import build_disagreements_report
from spanledger.reports.period import parse_month, utc_today
from spanledger.reports.spend import SpendOptions, build_spend_report
from spanledger.store import Store, open_store
from support.loadgen import _kv
from support.store import migrated_store
from support.trust_calls import (
    append,
    call,
    ids,
    quarantined,
    request,
    spool_at,
    team_totals,
    write_all,
)

VICTIM = "victim"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with migrated_store(tmp_path / "store") as s:
        yield s


def _victim_baseline(store: Store, tmp_path: Path, calls: int = 3,
                     at: dt.datetime | None = None) -> tuple[int, str, int, int]:
    spool = spool_at(tmp_path / "honest")
    append(spool, request([call(VICTIM, input_tokens=1000 + i, at=at) for i in range(calls)],
                          service="victim-svc"))
    write_all(spool, store)
    totals = team_totals(store, VICTIM)
    assert totals[0] == calls and Decimal(totals[1]) > 0
    return totals


def _this_month() -> str:
    return f"{utc_today():%Y-%m}"


def test_forged_costs_and_counts_are_quarantined_and_the_victim_unchanged(
        store: Store, tmp_path: Path) -> None:
    """Rows 1-4 and the negative counts of row 6: nothing of it reaches a sum."""
    before = _victim_baseline(store, tmp_path)
    priced = {"spanledger.cost.status": "priced"}
    attempts = {
        "cost -1000": call(VICTIM, extra={**priced, "gen_ai.usage.cost": -1000.0}),
        "cost 1e9": call(VICTIM, extra={**priced, "gen_ai.usage.cost": 1e9}),
        "cost NaN": call(VICTIM, extra={**priced, "gen_ai.usage.cost": math.nan}),
        "cost Inf": call(VICTIM, extra={**priced, "gen_ai.usage.cost": math.inf}),
        "cost '1e30'": call(VICTIM, extra={**priced, "gen_ai.usage.cost": "1e30"}),
        "cost 1e26 (1)": call(VICTIM, extra={**priced, "gen_ai.usage.cost": 1e26}),
        "cost 1e26 (2)": call(VICTIM, extra={**priced, "gen_ai.usage.cost": 1e26}),
        "litellm's cost -5": call(VICTIM, extra={"gen_ai.cost.total_cost": -5.0}),
        "2^63-1 input (1)": call(VICTIM, input_tokens=2**63 - 1),
        "2^63-1 input (2)": call(VICTIM, input_tokens=2**63 - 1),
        "2^63-1 input (3)": call(VICTIM, input_tokens=2**63 - 1),
        "negative input": call(VICTIM, input_tokens=-500),
        "negative output": call(VICTIM, output_tokens="-7"),
    }
    spool = spool_at(tmp_path / "hostile")
    append(spool, request(list(attempts.values()), service="hostile-svc"))
    metrics = write_all(spool, store)

    assert team_totals(store, VICTIM) == before
    assert store.query("SELECT count() FROM llm_cost_daily WHERE Cost < 0 OR Cost > 1000") \
        == [(0,)]
    assert store.query("SELECT count() FROM llm_calls WHERE ServiceName = 'hostile-svc'") \
        == [(0,)]
    aside = quarantined(store)
    for label, sp in attempts.items():
        reason, detail = aside[(sp.trace_id.hex(), sp.span_id.hex())]
        want = "usage_out_of_bounds" if "input" in label or "output" in label \
            else "cost_out_of_bounds"
        assert reason == want, (label, reason, detail)
    details = {label: aside[next(iter(ids([sp])))][1] for label, sp in attempts.items()}
    assert "negative" in details["cost -1000"] and "negative" in details["negative output"]
    assert "not a finite number" in details["cost NaN"]
    assert "above the ceiling of 1000 USD" in details["cost '1e30'"]
    assert "above the ceiling of 10000000" in details["2^63-1 input (1)"]
    assert metrics.get_labelled("spans_quarantined_total") == {
        "cost_out_of_bounds": 8, "usage_out_of_bounds": 5}
    # what a finance user sees: the quarantine in the month's notes
    report = build_spend_report(store, SpendOptions(period=parse_month(_this_month(), "MONTH"),
                                                    dims=("team",)))
    assert any("13 spans were quarantined (cost_out_of_bounds: 8, usage_out_of_bounds: 5)"
               in n for n in report.notes), report.notes


def test_bounds_at_their_edges(store: Store, tmp_path: Path) -> None:
    """The ceiling itself is accepted, one above it is not (tokens and cost)."""
    at_tokens = call("edge", input_tokens=10_000_000)
    over_tokens = call("edge", input_tokens=10_000_001)
    at_cost = call("edge", extra={"gen_ai.cost.total_cost": 1000.0})  # litellm's own figure
    over_cost = call("edge", extra={"gen_ai.cost.total_cost": 1000.000001})
    zero_cost = call("edge", extra={"gen_ai.cost.total_cost": 0.0})
    spool = spool_at(tmp_path / "edges")
    append(spool, request([at_tokens, over_tokens, at_cost, over_cost, zero_cost]))
    write_all(spool, store)

    aside = quarantined(store)
    assert set(aside) == ids([over_tokens, over_cost])
    stored = {(t, s): (st, inp, rep) for t, s, st, inp, rep in store.query(
        "SELECT TraceId, SpanId, Status, InputTokens, toString(CostReported) FROM llm_calls")}
    assert stored[next(iter(ids([at_tokens])))][:2] == ("priced", 10_000_000)
    assert stored[next(iter(ids([at_cost])))][2] == "1000"
    assert stored[next(iter(ids([zero_cost])))][2] == "0"
    assert team_totals(store, "edge")[0] == 3


def test_a_collector_with_lower_ceilings_quarantines_below_the_defaults(
        store: Store, tmp_path: Path) -> None:
    spool = spool_at(tmp_path / "low")
    small, big = call("t", input_tokens=500), call("t", input_tokens=501)
    append(spool, request([small, big]))
    write_all(spool, store, bounds=Bounds(max_tokens=500, max_cost_usd=1.0))
    assert set(quarantined(store)) == ids([big])
    assert team_totals(store, "t")[2] == 500


def test_the_collector_reprices_and_flags_a_disagreeing_service(store: Store,
                                                                  tmp_path: Path) -> None:
    """Row 1 within bounds: a service's figure is kept beside the collector's, never summed."""
    before = _victim_baseline(store, tmp_path, calls=1)
    true_cost = Decimal(before[1])
    honest = call(VICTIM, input_tokens=1000, extra={
        "spanledger.cost.status": "priced", "gen_ai.usage.cost": float(true_cost)})
    inflated = call(VICTIM, input_tokens=1000, extra={
        "spanledger.cost.status": "priced", "gen_ai.usage.cost": 5.0,
        "spanledger.cost.input": 5.0, "spanledger.price.source": "override:mine.yaml"})
    spool = spool_at(tmp_path / "priced")
    append(spool, request([honest, inflated], service="victim-svc"))
    metrics = write_all(spool, store)

    calls, cost, _, _ = team_totals(store, VICTIM)
    assert calls == 3 and Decimal(cost) == 3 * true_cost  # the collector's figure, 3 times
    rows = {(t, s): r for t, s, *r in store.query(
        "SELECT TraceId, SpanId, toString(Cost), toString(CostReported), CostReportedBy, "
        "CostDisagrees, PriceSource FROM llm_calls WHERE CostReportedBy != ''")}
    (key_i,), (key_h,) = ids([inflated]), ids([honest])
    assert rows[key_i][:4] == [str(true_cost), "5", "service", 1]
    assert rows[key_i][4].startswith("genai-prices@")  # the client's source is not kept
    assert rows[key_h][3] == 0
    assert metrics.get("spans_verified_total") == 2
    assert metrics.get("cost_reported_disagreements_total") == 1
    assert store.query("SELECT sum(Disagreements) FROM llm_cost_daily") == [(1,)]
    period = parse_month(_this_month(), "MONTH")
    report = build_disagreements_report(store, period)
    (row,) = report.rows
    assert (row["service"], row["reported_by"], row["reported"], row["disagreeing"]) == \
        ("victim-svc", "service", 2, 1)
    assert row["difference"] == Decimal(5) - true_cost
    spend = build_spend_report(store, SpendOptions(period=period, dims=("team",)))
    assert any(n.startswith("1 calls came with a cost of their own") for n in spend.notes)
    assert _grafana_trust_panel(store) == [("victim-svc", 3, 1, 0, Decimal(0))]


def _grafana_trust_panel(store: Store) -> list[tuple[object, ...]]:
    """The spend dashboard's disagreements panel, as Grafana would run it (last 30 days)."""
    from support.deploy import (
        GrafanaContext,
        all_values,
        dashboard_files,
        expand_grafana,
        iter_panels,
        load_dashboard,
    )

    dash = next(load_dashboard(p) for p in dashboard_files() if p.name == "spanledger-spend.json")
    (panel,) = [p for p in iter_panels(dash)
                if p["title"] == "Reported cost disagreements and late arrivals"]
    now = dt.datetime.now(dt.UTC)
    ctx = GrafanaContext(time_from=now - dt.timedelta(days=30),
                         time_to=now + dt.timedelta(hours=1), all_selected=all_values(dash))
    return store.query(expand_grafana(panel["targets"][0]["rawSql"], ctx))


def test_claims_that_would_hide_a_call_are_rejected(store: Store, tmp_path: Path) -> None:
    """Row 6: `aggregate` (or `no_usage`, `duplicate`, a made-up status) on a real call."""
    before = _victim_baseline(store, tmp_path, calls=1)
    price = Decimal(before[1])
    hiding = [
        call("sneaky", extra={"spanledger.cost.status": "aggregate"}),
        call("sneaky", extra={"gen_ai.operation.name": "invoke_agent"}),
        call("sneaky", extra={"spanledger.cost.status": "no_usage"}),
        call("sneaky", extra={"spanledger.cost.status": "free"}),
        call("sneaky", extra={"spanledger.cost.status": "duplicate",
                              "spanledger.duplicate_of": "00000000000000aa"}),
    ]
    # an honest agent span: its child carries its usage, in the same trace
    agent = call("honest", input_tokens=1000, extra={"gen_ai.operation.name": "invoke_agent"})
    child = call("honest", input_tokens=1000, trace_id=agent.trace_id, parent_id=agent.span_id)
    spool = spool_at(tmp_path / "claims")
    append(spool, request([*hiding, child, agent], service="sneaky-svc"))
    metrics = write_all(spool, store)

    assert team_totals(store, VICTIM) == before
    calls, cost, inp, _ = team_totals(store, "sneaky")
    assert (calls, Decimal(cost), inp) == (5, 5 * price, 5000)  # every call counted, priced
    assert team_totals(store, "honest")[:3] == (1, str(price), 1000)  # the agent is not
    flags = sorted(r[0] for r in store.query(
        "SELECT ClaimRejected FROM llm_calls WHERE ClaimRejected != ''"))
    assert flags == ["aggregate", "aggregate", "duplicate", "free", "no_usage"]
    assert metrics.get_labelled("claims_rejected_total") == {
        "aggregate": 2, "duplicate": 1, "status": 2}
    notes = build_spend_report(store, SpendOptions(
        period=parse_month(_this_month(), "MONTH"), dims=("team",))).notes
    assert any("5 spans claimed a status the collector did not take" in n for n in notes)


def test_a_retry_into_a_later_segment_is_stored_once(store: Store, tmp_path: Path) -> None:
    """Row 7: the same bytes in two segments (an exporter retrying a lost acknowledgement)."""
    spans = [call("retry", input_tokens=100 + i) for i in range(4)]
    req = request(spans)
    spool = spool_at(tmp_path / "retry")
    append(spool, req, seal=True)
    append(spool, req, seal=True)
    append(spool, req, seal=True)
    metrics = write_all(spool, store)

    assert store.query("SELECT count(), uniqExact(TraceId, SpanId) FROM otel_traces") \
        == [(4, 4)]
    assert team_totals(store, "retry")[:1] == (4,)
    assert store.query("SELECT sum(Calls) FROM llm_cost_by_trace") == [(4,)]
    assert metrics.get("spans_retried_total") == 8


def test_a_closed_month_never_changes_and_the_next_shows_the_adjustment(
        store: Store, tmp_path: Path) -> None:
    """Rows 5 and Must 3: `period close`; late spans, far past and far future spans."""
    today = utc_today()
    last = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=15)
    closed = parse_month(f"{last:%Y-%m}", "MONTH")
    noon = dt.datetime.combine(last, dt.time(12), dt.UTC)
    _victim_baseline(store, tmp_path, calls=2, at=noon)
    frozen = month_totals(store, closed)
    assert frozen.calls == 2
    close_month(store, closed.label, by="finance", note="invoice sent")

    now = dt.datetime.now(dt.UTC)
    late = [call(VICTIM, at=noon + dt.timedelta(days=3)),
            call(VICTIM, at=dt.datetime(2020, 1, 15, 9, tzinfo=dt.UTC))]
    future = call(VICTIM, at=now + dt.timedelta(days=2))  # beyond the 1-day window
    far = call(VICTIM, at=dt.datetime(2200, 1, 1, tzinfo=dt.UTC))
    spool = spool_at(tmp_path / "late")
    append(spool, request([*late, future, far], service="victim-svc"))
    write_all(spool, store)

    assert month_totals(store, closed) == frozen  # the invoice already sent
    assert month_totals(store, parse_month("2020-01", "MONTH")).calls == 0
    current = parse_month(f"{today:%Y-%m}", "MONTH")
    adjustment = month_totals(store, current)
    assert (adjustment.calls, adjustment.late_calls) == (2, 2)
    assert adjustment.late_cost == adjustment.cost > 0
    (first, last_day), = store.query("SELECT min(Day), max(Day) FROM llm_cost_daily")
    assert first == closed.start + dt.timedelta(days=14) and last_day == today
    assert store.query("SELECT InvalidReason, Day FROM llm_calls WHERE Status = 'invalid'") \
        == [("future", today)]
    assert quarantined(store)[next(iter(ids([far])))][0] == "timestamp_out_of_range"
    report = build_spend_report(store, SpendOptions(period=current, dims=("team",)))
    (row,) = [r for r in report.rows if r.get("team") == VICTIM]
    assert row["late_cost"] == adjustment.late_cost
    notes = " | ".join(report.notes)
    assert "adjustment: 2 late calls" in notes
    assert "late arrivals by the month they were dated in (2020-01: 1 calls" in notes
    assert f"{closed.label}: 1 calls" in notes
    assert "1 invalid spans are counted nowhere (future: 1)" in notes
    assert _grafana_trust_panel(store)[0][3] == 2  # late calls, on the dashboard too


def test_period_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`spanledger period close|list|reopen` as a finance user runs them."""
    from spanledger.cli.main import main

    url = f"chdb://{tmp_path / 'store'}"
    open_store(url, migrate=True).close()
    today = utc_today()
    last = f"{today.replace(day=1) - dt.timedelta(days=1):%Y-%m}"
    assert main(["period", "list", "--url", url]) == 0
    assert "no month was ever closed" in capsys.readouterr().out
    assert main(["period", "close", last, "--url", url, "--by", "ana", "--note", "sent"]) == 0
    out = capsys.readouterr().out
    assert f"{last} closed (" in out and "by ana): 0 calls, 0.00 USD, frozen" in out
    assert main(["period", "close", last, "--url", url]) == 0
    assert f"{last} already closed" in capsys.readouterr().out
    assert main(["period", "close", f"{today:%Y-%m}", "--url", url]) == 2
    assert "has not ended yet" in capsys.readouterr().err
    assert main(["period", "list", "--url", url]) == 0
    out = capsys.readouterr().out
    assert f"{last}  closed" in out and "ana" in out and "sent" in out
    assert f"open period starts {today.replace(day=1)}" in out
    assert main(["period", "reopen", last, "--url", url]) == 2
    assert "repeat with --confirm" in capsys.readouterr().err
    assert main(["period", "reopen", last, "--url", url, "--confirm"]) == 0
    capsys.readouterr()
    assert main(["period", "list", "--url", url]) == 0
    assert "open period starts 1970-01-01" in capsys.readouterr().out
    assert main(["report", "disagreements", "--url", url, "--period", last]) == 0
    assert f"Reported costs vs the collector's {last}" in capsys.readouterr().out


def test_a_rejected_claim_keeps_the_attribution_its_token_allows(store: Store,
                                                                  tmp_path: Path) -> None:
    """Musts 1 and 4 together: a call that claims `aggregate` under the victim's team, sent
    with a token bound to its own team, is counted as a call, and as (unverified)."""
    before = _victim_baseline(store, tmp_path, calls=1)
    policy = AttributionPolicy({"hostile": Grant(Patterns.of(["hostile-svc"]),
                                                 Patterns.of(["hostile"]), Patterns.of(["*"]))})
    hidden = call(VICTIM, extra={"spanledger.cost.status": "aggregate"})
    req = request([hidden], service="hostile-svc")
    req.resource_spans[0].resource.attributes.append(_kv(sc.AUTH_TOKEN, "hostile"))  # the stamp
    spool = spool_at(tmp_path / "bound")
    append(spool, req)
    write_all(spool, store, policy=policy)

    assert team_totals(store, VICTIM) == before
    assert store.query("SELECT Team, Status, ClaimRejected FROM llm_calls "
                       "WHERE ServiceName = 'hostile-svc'") == [(sc.UNVERIFIED, "priced",
                                                                  "aggregate")]
