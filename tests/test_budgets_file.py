"""The budgets file: every shape loads with its defaults, every mistake names file:line: key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from spanledger.reports.budgets import (
    BudgetPeriod,
    load_budget_file,
    load_budgets,
)
from spanledger.resources import data_dir
from spanledger.yamlconf import ConfigError

EXAMPLE = data_dir("collector-config") / "budgets.example.yaml"
D = Decimal


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "b.yaml"
    path.write_text(text)
    return path


def test_the_example_matches_the_demo_and_serves_both_readers() -> None:
    from spanledger.demo.scenario import FEATURES

    full = load_budget_file(EXAMPLE)
    demo = {(f.team, f.name) for f in FEATURES}
    monthly = [b for b in full.budgets if b.monthly]
    assert {tuple(v for _, v in b.filters) for b in monthly} <= demo | {("", "")}
    assert len(monthly) >= 7
    # the report shape (report spend --model budget) sees exactly the monthly entries
    report = load_budgets(EXAMPLE, ("team", "feature"))
    assert set(report.entries) == {tuple(v for _, v in b.filters) for b in monthly}
    assert report.entries[("search", "docs-qa")].hard_stop_percent == 110
    triage = full.budget("support/ticket-triage")
    assert triage.max_run_usd == D("0.50") and triage.on_exceed == "raise"
    # defaults: 50/80/100 + the hard stop on actual spend, 100 on the forecast
    assert triage.actual == (D(50), D(80), D(100), D(120)) and triage.forecasted == (D(100),)
    per = full.budget("docs-qa-per-customer")
    assert per.per == ("customer",) and per.period == BudgetPeriod("week")
    assert full.budget("support-weekly").period == BudgetPeriod("rolling", 7)
    assert full.budget("staging").enforce_hard_stop
    assert full.channels["ops-webhook"].kind == "webhook"
    assert full.anomalies.baseline_days == 28 and full.anomalies.spike_ratio == 3


def test_the_original_shape_still_loads(tmp_path: Path) -> None:
    path = write(tmp_path, "by: feature\nbudgets:\n  - {feature: rag, monthly: 12.5}\n"
                           "  - {feature: (unattributed), monthly: 1, hard_stop_percent: 150}\n")
    budgets = load_budgets(path, ("feature",))
    assert budgets.entries[("rag",)].monthly == D("12.5")
    assert budgets.entries[("",)].hard_stop_percent == 150
    full = load_budget_file(path)
    assert full.budget("rag").actual == (D(50), D(80), D(100), D(120))
    assert full.budget("(unattributed)").actual == (D(50), D(80), D(100), D(150))
    assert full.budget("rag").notify == ("log",)


def test_every_new_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    path = write(tmp_path, """
hard_stop_percent: 130
thresholds: {actual: [25, 90], forecasted: [90, 110]}
notify: [ops]
report_url: https://grafana.example/d/x
channels:
  ops: {type: webhook, url: "http://127.0.0.1:1/h", secret_env: HOOK_SECRET, tries: 5,
        backoff_s: 0.5, timeout_s: 2}
  chat: {type: slack, url: "https://hooks.slack.example/T/B/x"}
anomalies: {baseline_days: 21, spike_ratio: 4, min_usd: 1, dimensions: [team], notify: [chat]}
budgets:
  - name: acme
    customer: acme
    environment: production
    model: gpt-4o
    amount: 100
    period: rolling 14 days
    max_run_usd: 2.5
    on_exceed: log
    enforce_hard_stop: true
    notify: [ops, chat]
  - name: all-spend
    amount: 1000
    period: day
    thresholds: {forecasted: []}
""")
    f = load_budget_file(path)
    acme = f.budget("acme")
    assert acme.filters == (("customer", "acme"), ("model", "gpt-4o"),
                            ("environment", "production"))
    assert acme.period == BudgetPeriod("rolling", 14) and acme.amount == 100
    assert acme.actual == (D(25), D(90)) and acme.forecasted == (D(90), D(110))
    assert acme.max_run_usd == D("2.5") and acme.on_exceed == "log" and acme.enforce_hard_stop
    assert acme.notify == ("ops", "chat") and acme.hard_stop_percent == 130
    everything = f.budget("all-spend")
    assert everything.filters == () and everything.forecasted == () and everything.notify == (
        "ops",)
    assert f.channels["ops"].secret == "s3cret" and f.channels["ops"].tries == 5
    assert f.report_url == "https://grafana.example/d/x"
    assert f.anomalies.baseline_days == 21 and f.anomalies.dimensions == ("team",)
    assert f.anomalies.notify == ("chat",) and f.anomalies.min_usd == 1


@pytest.mark.parametrize(("text", "message"), [
    ("budgets:\n  - {team: a, amount: 5}\n", "b.yaml:2: budgets[0].period: required key"),
    ("budgets:\n  - {team: a, amount: 5, period: fortnight}\n",
     "b.yaml:2: budgets[0].period: expected month, week, day or 'rolling N days'"),
    ("budgets:\n  - {team: a, amount: 5, period: rolling 0 days}\n",
     "budgets[0].period: rolling days must be 1..366"),
    ("budgets:\n  - {team: a, monthly: 5, period: week}\n",
     "budgets[0].monthly: give monthly, or amount with period"),
    ("budgets:\n  - {team: a, monthly: 5, thresholds: {actual: [80, lots]}}\n",
     "budgets[0].thresholds.actual: expected percents such as 80, got 'lots'"),
    ("budgets:\n  - {team: a, monthly: 5, thresholds: {actual: [80, 80]}}\n",
     "budgets[0].thresholds.actual: threshold repeated"),
    ("budgets:\n  - {team: a, monthly: 5, thresholds: {actul: [80]}}\n",
     "budgets[0].thresholds.actul: unknown key"),
    ("budgets:\n  - {team: a, monthly: 5, notify: [pager]}\n",
     "b.yaml:2: budgets[0].notify: unknown channel 'pager'"),
    ("budgets:\n  - {team: a, monthly: 5, on_exceed: panic}\n",
     "budgets[0].on_exceed: expected one of raise, log, got 'panic'"),
    ("budgets:\n  - {team: a, monthly: 5, max_run_usd: 0}\n", "max_run_usd: must be > 0"),
    ("budgets:\n  - {team: a, per: [team], amount: 1, period: day}\n",
     "budgets[0].team: a dimension cannot be both a filter and in per"),
    ("budgets:\n  - {team: a, per: [region], amount: 1, period: day}\n",
     "budgets[0].per: unknown dimension 'region'"),
    ("by: team\nbudgets:\n  - {team: a, feature: b, monthly: 5}\n",
     "b.yaml:3: budgets[0].feature: monthly budgets are keyed by team"),
    ("budgets:\n  - {name: x, team: a, monthly: 5}\n  - {name: x, team: b, monthly: 5}\n",
     "b.yaml:3: budgets[1]: duplicate budget for x"),
    ("channels:\n  h: {type: webhook}\nbudgets: []\n", "b.yaml:2: channels.h.url: required key"),
    ("channels:\n  h: {type: webhook, url: ftp://x}\nbudgets: []\n",
     "channels.h.url: expected an http(s):// URL"),
    ("channels:\n  h: {type: slack, url: 'http://x', secret: s}\nbudgets: []\n",
     "channels.h.secret: only webhook channels are signed"),
    ("channels:\n  h: {type: sms, url: 'http://x'}\nbudgets: []\n",
     "channels.h.type: expected one of webhook, slack, log, got 'sms'"),
    ("channels:\n  h: {type: webhook, url_env: NOT_SET_ANYWHERE}\n"
     "budgets:\n  - {team: a, monthly: 5, notify: [h]}\n",
     "b.yaml:2: channels.h.url_env: environment variable NOT_SET_ANYWHERE is not set"),
    ("anomalies: {spike_ratio: 0.5}\nbudgets: []\n", "anomalies.spike_ratio: must be >= 1"),
    ("anomalies: {baseline_days: 7}\nbudgets: []\n", "anomalies.baseline_days: must be >= 14"),
    ("budget: []\n", "b.yaml:1: budget: unknown key"),
])
def test_mistakes_name_file_line_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_budget_file(write(tmp_path, text))
    assert message in str(err.value)


def test_an_unused_channel_may_lack_its_variable(tmp_path: Path) -> None:
    """The example defines channels whose secrets live in the environment: it loads anywhere."""
    f = load_budget_file(write(tmp_path, "channels:\n  h: {type: webhook, url_env: NOPE_X}\n"
                                         "budgets:\n  - {team: a, monthly: 5}\n"))
    assert f.channels["h"].url is None and f.channels["h"].problem is not None
