"""Anomalies on 60 days of synthetic spend: a 10x spike, a slow 3x creep and a runaway agent
run are found; a plain weekly pattern with day-to-day noise is not."""

from __future__ import annotations

import datetime as dt
import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spanledger.budgets.anomalies import creep, scan, spike, theil_sen
from spanledger.reports.budgets import AnomalySettings
from support.reports import llm_span, load_store, run_cli

D = Decimal
START = dt.date(2026, 9, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(60)]
SPIKE_DAY, RUNAWAY_DAY = DAYS[50], DAYS[55]


def weekly(day: dt.date) -> float:
    """Busy weekdays, quiet weekends: the swing that must never be an anomaly."""
    return 100.0 if day.weekday() < 5 else 40.0


def shapes(seed: int = 7) -> dict[str, dict[dt.date, Decimal]]:
    r = random.Random(seed)

    def noisy(x: float) -> Decimal:
        return D(f"{x * (1 + r.uniform(-0.15, 0.15)):.6f}")

    return {
        "plain": {d: noisy(weekly(d)) for d in DAYS},
        "spiky": {d: noisy(weekly(d) * (10 if d == SPIKE_DAY else 1)) for d in DAYS},
        # flat for 32 days, then a straight 3x rise over the last four weeks
        "creepy": {d: noisy(weekly(d) * (1 if i < 32 else 1 + 2 * (i - 32) / 27))
                   for i, d in enumerate(DAYS)},
    }


def test_detectors_on_plain_series() -> None:
    s = AnomalySettings()
    series = shapes()
    found = {name: scan(values, DAYS[28:], START, s, "feature", name)
             for name, values in series.items()}
    assert found["plain"] == []
    (hit,) = found["spiky"]
    assert (hit.kind, hit.day) == ("spike", SPIKE_DAY)
    assert hit.ratio > 8 and hit.score is not None and hit.score > 20
    (trend,) = found["creepy"]
    assert trend.kind == "creep" and trend.day == DAYS[-1] and trend.ratio >= D("2.5")
    # the day after the spike is measured against a baseline the spike cannot move
    assert spike(series["spiky"], DAYS[51], START, s) is None
    assert creep(series["spiky"], DAYS[-1], START, s) is None


def test_a_weekly_pattern_never_alarms_over_many_seeds() -> None:
    s = AnomalySettings()
    for seed in range(20):
        plain = shapes(seed)["plain"]
        assert scan(plain, DAYS[14:], START, s, "team", "x") == [], seed


def test_theil_sen_ignores_one_outlier() -> None:
    values = [D(i) for i in range(10)]
    values[4] = D(1000)
    intercept, slope = theil_sen(values)
    assert (intercept, slope) == (D(0), D(1))


def spans() -> list[dict[str, Any]]:
    out = []
    for name, values in shapes().items():
        for d, v in values.items():
            out.append(llm_span(trace=f"{name}-{d}", team="t", feature=name, cost=str(v),
                                ts=dt.datetime.combine(d, dt.time(12), dt.UTC)))
    for i, d in enumerate(DAYS):  # one agent run a day, about 5 cents each
        cost = D("0.05") + D(i % 5) / 1000
        if d == RUNAWAY_DAY:
            cost *= 10
        for step in range(2):  # two priced steps per run
            out.append(llm_span(trace=f"run-{i}", team="t", feature="agent",
                                cost=str(cost / 2), customer="acme",
                                ts=dt.datetime.combine(d, dt.time(9, step), dt.UTC)))
    return out


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return load_store(tmp_path_factory.mktemp("anomalies") / "store", spans())


def test_report_anomalies_on_the_store(url: str, tmp_path: Path) -> None:
    budgets = tmp_path / "b.yaml"
    budgets.write_text("anomalies: {dimensions: [feature], min_usd: 0.10}\nbudgets: []\n")
    code, out, err = run_cli(["report", "anomalies", "--url", url, "--budgets", str(budgets),
                              "--from", DAYS[28].isoformat(), "--to", DAYS[-1].isoformat(),
                              "--format", "json"])
    assert code == 0, err
    rows = json.loads(out)["rows"]
    found = {(r["kind"], r["value"], r["day"]) for r in rows}
    assert found == {
        ("spike", "spiky", SPIKE_DAY.isoformat()),
        ("creep", "creepy", DAYS[-1].isoformat()),
        ("spike", "agent", RUNAWAY_DAY.isoformat()),  # the runaway's day stands out too
        ("run", "agent", RUNAWAY_DAY.isoformat()),
    }
    run = next(r for r in rows if r["kind"] == "run")
    assert run["trace_id"] == "run-55" and D(run["ratio"]) > 9
    assert D(run["actual"]) == (D("0.05") + D(55 % 5) / 1000) * 10


def test_report_anomalies_table_and_default_window(url: str) -> None:
    code, out, err = run_cli(["report", "anomalies", "--url", url, "--as-of",
                              DAYS[52].isoformat()])
    assert code == 0, err
    assert f"Anomalies {DAYS[46]}..{DAYS[52]}" in out  # the 7 days to --as-of
    assert "spiky" in out and "plain" not in out
    code, _, err = run_cli(["report", "anomalies", "--url", url, "--as-of", "2026-10-01",
                            "--period", "2026-10"])
    assert code == 2 and "--as-of sets the default window" in err


def test_anomalies_alert_once_when_the_file_asks(url: str, tmp_path: Path) -> None:
    from spanledger.budgets.runner import AlertRunner
    from spanledger.reports.budgets import load_budget_file
    from spanledger.store import open_store
    from support.webhook import WebhookReceiver

    with WebhookReceiver() as hook:
        path = tmp_path / "b.yaml"
        path.write_text(f"""
channels:
  hook: {{type: webhook, url: "{hook.url}", secret: s}}
anomalies: {{dimensions: [feature], notify: [hook]}}
budgets: []
""")
        budgets = load_budget_file(path)
        end_of_spike_day = dt.datetime.combine(SPIKE_DAY, dt.time(23, 59), dt.UTC)
        with open_store(url) as store:
            first = AlertRunner(store, budgets).run_once(end_of_spike_day)
            again = AlertRunner(store, budgets).run_once(end_of_spike_day)
        bodies = {json.loads(r.body)["type"]: json.loads(r.body) for r in hook.delivered()}
        assert len(hook.delivered()) == 2  # the creep, already 2.3x by then, and the spike
        spike_alert, creep_alert = bodies["anomaly.spike"], bodies["anomaly.creep"]
        assert (spike_alert["dimension"], spike_alert["value"], spike_alert["day"]) == (
            "feature", "spiky", SPIKE_DAY.isoformat())
        assert D(spike_alert["ratio"]) > 8 and "spent" in spike_alert["text"]
        assert creep_alert["value"] == "creepy" and "crept from" in creep_alert["text"]
        assert sorted(f.key.kind for f in first.new) == ["anomaly.creep", "anomaly.spike"]
        assert again.fired == []  # once
