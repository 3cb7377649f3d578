"""The HTML report's unit-economics sections, from plain rows and from a store: forecast,
call-outs, call kinds, the drill-down's running totals, and every section in its place."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from spanledger.reports.html_callouts import Callout, RunCallout, spend_callouts
from spanledger.reports.html_drilldown import DrillData, render_drilldown
from spanledger.reports.html_forecast import ForecastData, render_forecast, team_forecasts
from spanledger.reports.period import Period, parse_month
from spanledger.reports.queries import DailyGroupRow, DailyRow, StepRow, TraceRow
from support.outcomes import unit_spans
from support.reports import day, llm_span, october_spans, store_with

NOV = parse_month("2026-11")
SECTIONS = ["callouts", "over-time", "forecast", "week-over-week", "by-team", "by-feature",
            "cost-per-outcome", "customers", "model-mix", "call-kinds", "top-runs",
            "drill-down", "unpriced", "budgets"]


def d(n: int, month: int = 11) -> dt.date:
    return dt.date(2026, month, n)


def test_forecast_adds_each_teams_recent_daily_rate_for_the_days_left() -> None:
    # team a: $1 a day Nov 1-12, then $2 a day from Nov 13 (the last 7 full days before
    # the 20th are Nov 13-19); today (Nov 20) so far $0.50. team b started on Nov 18.
    daily = [DailyRow(d(n), "a", Decimal(1) if n < 13 else Decimal(2)) for n in range(1, 20)]
    daily += [DailyRow(d(20), "a", Decimal("0.50")),
              DailyRow(d(18), "b", Decimal("0.30")), DailyRow(d(19), "b", Decimal("0.10")),
              DailyRow(d(31, 10), "a", Decimal(99))]  # October: in no number
    rows = {f.team: f for f in team_forecasts(ForecastData(NOV, d(20), daily))}
    a, b = rows["a"], rows["b"]
    assert (a.to_date, a.run_rate, a.rate_days) == (Decimal("26.50"), Decimal(2), 7)
    assert a.forecast == Decimal("26.50") + 10 * Decimal(2)  # Nov 21-30
    assert (b.to_date, b.run_rate, b.rate_days) == (Decimal("0.40"), Decimal("0.20"), 2)
    assert b.forecast == Decimal("2.40")
    html = render_forecast(ForecastData(NOV, d(20), daily))
    assert "plus 10 remaining days" in html and "46.50" in html  # a's forecast in the table


def test_a_month_that_is_over_is_not_forecast() -> None:
    daily = [DailyRow(d(n), "a", Decimal(1)) for n in range(1, 31)]
    (a,) = team_forecasts(ForecastData(NOV, d(5, 12), daily))
    assert a.forecast == a.to_date == Decimal(30)
    assert "2026-11 is over" in render_forecast(ForecastData(NOV, d(5, 12), daily))


def _days(team: str, values: dict[int, str]) -> list[DailyGroupRow]:
    return [DailyGroupRow(d(n), (team, "f"), 1, 10, Decimal(v)) for n, v in values.items()]


def _run(trace: str, team: str, when: dt.date, cost: str, calls: int = 3) -> TraceRow:
    start = dt.datetime.combine(when, dt.time(9), dt.UTC)
    return TraceRow(trace, start, start, team, "f", "", ("svc",), ("m",), calls, 0, 0, 0, 0,
                    Decimal(cost))


def test_a_day_is_called_out_at_three_times_the_teams_trailing_median() -> None:
    baseline = {n: "1.00" for n in range(1, 8)}  # Nov 1-7
    daily = (_days("hot", {**baseline, 8: "3.00"}) + _days("warm", {**baseline, 8: "2.99"})
             + _days("new", {5: "0.10", 6: "0.10", 7: "0.10", 8: "9.00"})  # 3 baseline days
             + _days("tiny", {**{n: "0.10" for n in range(1, 8)}, 8: "0.55"}))  # +0.45 only
    period = Period(d(8), d(8))
    runs = [_run("t1", "hot", d(8), "1.50", 4), _run("t2", "hot", d(8), "0.40")]
    callouts = spend_callouts(daily, period, runs)
    assert [c.team for c in callouts if isinstance(c, Callout)] == ["hot"]
    (hot,) = [c for c in callouts if isinstance(c, Callout)]
    assert (hot.spend, hot.baseline, hot.ratio) == (Decimal(3), Decimal(1), Decimal(3))
    assert hot.sentence() == ("hot spent $3.00 on Sun 2026-11-08, 3.0x its median day of the 7 "
                              "days before ($1.00). f made $3.00 of it (100%); its costliest "
                              "run that day, trace t1, cost $1.50 in 4 calls.")


def test_a_run_is_called_out_at_ten_times_its_features_median_run() -> None:
    runs = [_run(f"n{i}", "s", d(3), "0.10") for i in range(5)]
    runs += [_run("loop", "s", d(4), "1.00", 91), _run("almost", "s", d(4), "0.99")]
    callouts = [c for c in spend_callouts([], NOV, runs) if isinstance(c, RunCallout)]
    assert [c.run.trace_id for c in callouts] == ["loop"]  # 0.99 is 9.9x
    assert callouts[0].sentence().startswith(
        "Run loop of s / f on Wed 2026-11-04 cost $1.00 in 91 calls: 10x the median run")


def _step(n: int, cost: str, kind: str = "llm", status: str = "priced") -> StepRow:
    start = dt.datetime(2026, 11, 3, 9, tzinfo=dt.UTC)
    return StepRow("t" * 32, start + dt.timedelta(seconds=n), "svc", "chat", "gpt-4o", kind,
                   status, 100 * n, 10, 0, Decimal(cost))


def test_the_waterfall_climbs_to_the_runs_cost_step_by_step() -> None:
    steps = [_step(1, "0.010"), _step(2, "0.0001", "tool"), _step(3, "0", status="unpriced"),
             _step(4, "0.025")]
    run = _run("t" * 32, "support", d(3), "0.0351", 4)
    html = render_drilldown(DrillData([run], steps))
    running = re.findall(r'<rect class="step" data-step="(\d+)" data-cost="([^"]+)" '
                         r'data-running="([^"]+)"', html)
    assert [(int(n), Decimal(c), Decimal(r)) for n, c, r in running] == [
        (1, Decimal("0.010"), Decimal("0.010")), (2, Decimal("0.0001"), Decimal("0.0101")),
        (3, Decimal(0), Decimal("0.0101")), (4, Decimal("0.025"), Decimal("0.0351"))]
    total = re.search(r'<rect class="total" data-running="([^"]+)"', html)
    assert total is not None and Decimal(total.group(1)) == run.cost
    cells = re.findall(r'class="n running" data-running="([^"]+)"', html)
    assert Decimal(cells[-1]) == run.cost
    assert "unpriced (no cost)" in html and "tool call" in html


def test_a_long_run_lists_its_first_and_last_steps_and_keeps_the_running_total() -> None:
    steps = [_step(n, "0.01") for n in range(1, 41)]
    html = render_drilldown(DrillData([_run("t" * 32, "s", d(3), "0.40", 40)], steps))
    assert "… 20 more steps ($0.2000) …" in html
    assert len(re.findall(r'<rect class="step"', html)) == 40  # the chart shows them all
    assert re.findall(r'class="n running" data-running="([^"]+)"', html)[-1] == "0.40"


def _kinds_spans() -> list[dict[str, Any]]:
    tool = llm_span(trace="k1", ts=day(2), team="support", feature="triage", cost="0.005",
                    operation="execute_tool")
    for key in ("gen_ai.request.model", "gen_ai.response.model", "gen_ai.provider.name",
                "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"):
        del tool["SpanAttributes"][key]
    tool["SpanAttributes"]["gen_ai.tool.name"] = "web_search"
    vector = llm_span(trace="k1", ts=day(2), team="support", feature="triage", cost="0.0004")
    for key in ("gen_ai.request.model", "gen_ai.response.model", "gen_ai.provider.name",
                "gen_ai.operation.name", "gen_ai.usage.input_tokens",
                "gen_ai.usage.output_tokens"):
        del vector["SpanAttributes"][key]
    vector["SpanAttributes"]["db.system.name"] = "qdrant"
    return [tool, vector]


def test_sections_from_a_store_in_page_order_with_tool_and_vector_calls_apart(
        tmp_path: Path) -> None:
    from spanledger.reports.html import fetch_html_data, render_html
    from spanledger.reports.queries import fetch_call_kinds

    with store_with(tmp_path / "s", october_spans() + unit_spans() + _kinds_spans()) as store:
        period = parse_month("2026-10")
        kinds = {(k.kind, k.status): (k.calls, k.cost) for k in fetch_call_kinds(store, period)}
        data = fetch_html_data(store, period, today=d(5))
    assert kinds == {("llm", "priced"): (20, Decimal("27.00")),
                     ("llm", "unpriced"): (1, Decimal(0)),
                     ("tool", "priced"): (1, Decimal("0.005")),
                     ("vector_db", "priced"): (1, Decimal("0.0004"))}
    html = render_html(data)
    assert re.findall(r'<section id="([^"]+)">', html) == SECTIONS
    cards = re.findall(r'<div class="v[^"]*">([^<]*)</div><div class="k">([^<]*)</div>', html)
    assert {k: v for v, k in cards if "calls" in k or "queries" in k} == {
        "LLM calls": "21", "tool calls": "1", "vector-DB calls": "1",
        "unpriced calls": "1"}
    assert "$2.50 · triage · 45% waste" in html  # cost per ticket_resolved, from the views
    # a page about October, read in November: October is over, its forecast is its actual
    assert data.forecast is not None and data.forecast.month == parse_month("2026-10")
    assert "2026-10 is over" in html
    assert data.drill is not None and data.drill.runs[0].trace_id == "c2"  # the $10.00 run


def test_team_and_feature_narrow_every_section(tmp_path: Path) -> None:
    from spanledger.reports.html import fetch_html_data, render_html

    with store_with(tmp_path / "s", october_spans() + unit_spans()) as store:
        data = fetch_html_data(store, parse_month("2026-10"), team="sales", today=d(5))
    assert {r.group[0] for r in data.spend} == {"sales"}
    assert {t.team for t in data.traces} == {"sales"}
    assert data.units is not None
    assert {r.group for r in data.units.features.runs} == {("sales", "drafts")}
    html = render_html(data)
    assert "(UTC), team sales" in html and "support" not in html


def test_given_the_budgets_anomalies_the_call_outs_word_them() -> None:
    """``report html`` hands in ``report anomalies``: each spike day, run and creep becomes
    a sentence (the section's own rule is only the fallback)."""
    from spanledger.budgets.anomalies import Finding
    from spanledger.budgets.report import anomalies_report
    from spanledger.reports.budgets import AnomalySettings
    from spanledger.reports.html_callouts import render_callouts

    day_ = d(28)
    findings = [
        Finding("spike", "team", "support", day_, Decimal("3.90"), Decimal("1.30"), Decimal(3),
                Decimal(7)),
        Finding("spike", "feature", "ticket-triage", day_, Decimal("3.10"), Decimal("0"),
                Decimal("Infinity"), Decimal(9)),
        Finding("run", "feature", "ticket-triage", day_, Decimal("2.36"), Decimal("0.05"),
                Decimal("47.2"), trace_id="f" * 32),
        Finding("creep", "model", "gpt-4o", d(30), Decimal("2.00"), Decimal("0.50"), Decimal(4)),
    ]
    report = anomalies_report(findings, Period(d(24), d(30)), AnomalySettings())
    html = render_callouts([], NOV, [_run("f" * 32, "support", day_, "2.36", 91)], report)
    items = re.findall(r"<li>(.*?)</li>", html)
    assert items == [
        "Spend spiked on Sat 2026-11-28 (against the same weekday): team support $3.90, 3.0x "
        "its usual ($1.30); feature ticket-triage $3.10, where its usual is nothing.",
        f"Agent run {'f' * 32} of feature ticket-triage on 2026-11-28 cost $2.36 in 91 calls, "
        "47.2x the p95 run of its feature ($0.0500): a loop or a retry storm to look at.",
        "model gpt-4o crept: its daily spend grew from $0.5000 to $2.00 (4.0x) over the last "
        "28 days."]
    assert "In 2026-11-24..2026-11-30" in html
    empty = render_callouts([], NOV, [], anomalies_report([], Period(d(24), d(30)),
                                                          AnomalySettings()))
    assert "Nothing stands out in 2026-11-24..2026-11-30." in empty


def test_dates_inside_wrapping_text_stay_whole() -> None:
    from spanledger.reports.html_charts import cell_html

    assert cell_html("week of 2026-11-30", "t") == 'week of <span class="nw">2026-11-30</span>'
    assert cell_html("7d to 2026-11 & more", "t") == (
        '7d to <span class="nw">2026-11</span> &amp; more')
    assert cell_html("2026-11-30 18:20:32", "id") == "2026-11-30 18:20:32"  # one line already


def test_the_forecast_handed_in_is_the_budgets_forecast() -> None:
    """`report html` hands in the budgets layer's forecaster: the page's month-end forecast
    per team is then exactly what the budgets forecast for the same series."""
    from spanledger.budgets.forecast import forecast_period

    def forecaster(daily: Any, period: Period, now: dt.datetime) -> tuple[Any, str]:
        found = forecast_period(daily, period, now)
        return found.total, found.method

    # four weeks of history: $1 on weekdays, $0.20 at weekends, from Oct 16 to Nov 19
    start = dt.date(2026, 10, 16)
    daily = [DailyRow(start + dt.timedelta(days=i), "a",
                      Decimal("0.20") if (start + dt.timedelta(days=i)).weekday() >= 5
                      else Decimal(1)) for i in range(35)]
    now = dt.datetime(2026, 11, 20, 0, 0, tzinfo=dt.UTC)
    data = ForecastData(NOV, now.date(), daily, forecaster, now)
    (a,) = team_forecasts(data)
    series = {r.day: r.cost for r in daily}
    expected = forecast_period(series, NOV, now)
    assert (a.forecast, a.method) == (expected.total, "seasonal")
    assert a.to_date == sum((r.cost for r in daily if r.day >= NOV.start), Decimal(0))
    # Nov 20-30: 7 weekdays at $1 and 4 weekend days at $0.20 still to come
    assert a.forecast == a.to_date + Decimal("7.80")
    html = render_forecast(data)
    assert "as the budgets forecast" in html and ">seasonal<" in html
