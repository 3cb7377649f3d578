"""Budget arithmetic on the real embedded store: thresholds at >=, periods, scopes, forecasts."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from spanledger.budgets.evaluate import evaluate, reached
from spanledger.budgets.forecast import backtest, forecast_period, learn_rates
from spanledger.reports.budgets import load_budget_file
from spanledger.reports.period import Period
from support.reports import llm_span, load_store, run_cli, store_with

D = Decimal
NOV = Period(dt.date(2026, 11, 1), dt.date(2026, 11, 30))


def at(day: int, hour: int = 12, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=dt.UTC)


def test_reached_means_greater_or_equal() -> None:
    levels = (D(50), D(80), D(100))
    assert reached(D("80.000000000000"), D(100), levels) == (D(50), D(80))
    assert reached(D("79.999999999999"), D(100), levels) == (D(50),)
    assert reached(D(100), D(100), levels) == levels
    assert reached(None, D(100), levels) == ()


BUDGETS = """
budgets:
  - {name: exact, feature: exact, amount: 100, period: month}
  - {name: under, feature: under, amount: 100, period: month}
  - {name: weekly, team: t, per: [customer], amount: 10, period: week,
     thresholds: {actual: [100], forecasted: []}}
  - {name: rolling, team: t, amount: 10, period: rolling 3 days}
  - {name: today, team: t, amount: 4, period: day}
"""


def spans() -> list[dict[str, object]]:
    s = [
        # 80.000000000000 exactly, in two calls; and 1e-12 less
        llm_span(trace="e1", ts=at(3), feature="exact", cost="40.000000000000"),
        llm_span(trace="e2", ts=at(9), feature="exact", cost="40"),
        llm_span(trace="u1", ts=at(3), feature="under", cost="79.999999999999"),
        # October spend is another period
        llm_span(trace="o1", ts=at(30, month=10), feature="exact", cost="500"),
        # team t: the week of Mon 2026-11-16 .. Sun 11-22, per customer
        llm_span(trace="w1", ts=at(16), team="t", customer="acme", cost="6"),
        llm_span(trace="w2", ts=at(18), team="t", customer="acme", cost="4"),
        llm_span(trace="w3", ts=at(18), team="t", customer="globex", cost="3"),
        llm_span(trace="w4", ts=at(15), team="t", customer="globex", cost="9"),  # last week
        llm_span(trace="w5", ts=at(18), team="t", customer="globex", model="mystery",
                 status="unpriced", input_tokens=5),
    ]
    return s


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return load_store(tmp_path_factory.mktemp("budgets") / "store", spans())


def test_thresholds_periods_and_scopes_on_the_store(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(BUDGETS)
    budgets = load_budget_file(path)
    with store_with(tmp_path / "store", spans()) as store:
        states = {(s.budget.name, s.scope_key): s for s in evaluate(store, budgets, at(18, 23))}
    exact, under = states[("exact", "feature=exact")], states[("under", "feature=under")]
    assert exact.period == NOV and exact.spent == D(80)  # October's 500 is another period
    assert exact.reached_actual == (D(50), D(80)) and under.reached_actual == (D(50),)
    acme = states[("weekly", "team=t,customer=acme")]
    globex = states[("weekly", "team=t,customer=globex")]
    assert acme.period == Period(dt.date(2026, 11, 16), dt.date(2026, 11, 22))
    assert (acme.spent, globex.spent) == (D(10), D(3))  # globex's Sunday was last week
    assert acme.reached_actual == (D(100),) and globex.reached_actual == ()
    assert globex.unpriced_calls == 1  # counted beside the spend, never as $0
    rolling = states[("rolling", "team=t")]
    assert rolling.period == Period(dt.date(2026, 11, 16), dt.date(2026, 11, 18))
    assert rolling.spent == D(13) and rolling.hard_stop  # 130 % >= 120 %
    today = states[("today", "team=t")]
    assert today.spent == D(7) and today.reached_actual == (D(50), D(80), D(100), D(120))


def test_report_budgets_cli(url: str, tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(BUDGETS)
    code, out, err = run_cli(["report", "budgets", "--budgets", str(path), "--url", url,
                              "--as-of", "2026-11-18", "--format", "json"])
    assert code == 0, err
    doc = json.loads(out)
    rows = {(r["budget"], r["scope"]): r for r in doc["rows"]}
    exact = rows[("exact", "feature=exact")]
    assert exact["state"] == ">= 80%" and exact["spent"] == "80.000000000000"
    assert exact["used"] == "80.000000" and exact["alerts"] == "none"
    assert rows[("under", "feature=under")]["state"] == ">= 50%"
    assert rows[("rolling", "team=t")]["state"] == "HARD STOP (120%)"
    assert [rows[k]["period"] for k in (("exact", "feature=exact"), ("rolling", "team=t"),
                                        ("weekly", "team=t, customer=acme"),
                                        ("today", "team=t"))] == [
        "2026-11", "3d to 2026-11-18", "week of 2026-11-16", "2026-11-18"]
    assert rows[("weekly", "team=t, customer=globex")]["unpriced_calls"] == 1
    assert any("3 budget scope(s) include unpriced calls" in n for n in doc["notes"])
    code, out, _ = run_cli(["report", "budgets", "--budgets", str(path), "--url", url,
                            "--as-of", "2026-11-18"])
    assert code == 0 and "exact" in out and ">= 80%" in out
    code, _, err = run_cli(["report", "budgets", "--budgets", str(path), "--url", url,
                            "--as-of", "yesterday"])
    assert code == 2 and "--as-of: expected YYYY-MM-DD" in err


# -- forecasts with known answers --------------------------------------------------------------

def series(start: dt.date, days: int, value: object) -> dict[dt.date, Decimal]:
    out = {}
    for i in range(days):
        d = start + dt.timedelta(days=i)
        out[d] = D(value(d) if callable(value) else value)  # type: ignore[arg-type]
    return out


def test_linear_run_rate_before_two_weeks_of_history() -> None:
    daily = series(dt.date(2026, 11, 1), 10, 5)  # $5 a day, Nov 1..10
    f = forecast_period(daily, NOV, at(11, 0))
    assert (f.total, f.method, f.history_days) == (D(150), "linear", 10)
    daily[dt.date(2026, 11, 11)] = D(2)  # half of today gone, $2 spent so far today
    f = forecast_period(daily, NOV, at(11, 12))
    assert f.total == D(52) + D(5) / 2 + 19 * D(5)


def test_weekday_seasonal_run_rate_with_two_weeks_or_more() -> None:
    def weekly(d: dt.date) -> int:
        return 10 if d.weekday() < 5 else 2

    # four full weeks Mon 2026-10-05 .. Sun 11-01; "now" is Monday 11-02 at midnight
    daily = series(dt.date(2026, 10, 5), 28, weekly)
    f = forecast_period(daily, NOV, at(2, 0))
    # Nov 2..30: 21 weekdays, 8 weekend days; Nov 1 (a Sunday, $2) is already spent
    assert (f.total, f.method, f.history_days) == (D(2 + 21 * 10 + 8 * 2), "seasonal", 28)
    # the latest week doubles: its level, with the weekly shape, carries forward
    for d in list(daily)[-7:]:
        daily[d] *= 2
    assert forecast_period(daily, NOV, at(2, 0)).total == D(4 + 21 * 20 + 8 * 4)
    rates = learn_rates(daily, dt.date(2026, 11, 2))
    assert rates.on(dt.date(2026, 11, 7)) == 4  # a Saturday


def test_no_history_no_forecast_and_a_finished_period_is_final() -> None:
    assert forecast_period({}, NOV, at(5)).method == "none"
    assert forecast_period({}, NOV, at(5)).total is None
    daily = series(dt.date(2026, 11, 1), 30, 1)
    f = forecast_period(daily, NOV, at(2, month=12))
    assert (f.total, f.method) == (D(30), "final")


def test_backtest_error_is_zero_on_a_pure_weekly_pattern() -> None:
    daily = series(dt.date(2026, 9, 7), 56, lambda d: 10 if d.weekday() < 5 else 2)
    bt = backtest([daily], dt.date(2026, 9, 7), dt.date(2026, 11, 1), horizon=7)
    assert bt.wape("seasonal") == 0 and bt.count("seasonal") > 20
    assert bt.wape("linear") is not None and bt.wape("linear") > 0  # the weekly swing
