"""Alert delivery: signed webhooks to a local receiver, retries, each threshold once per period
(state in budget_alerts, on the real embedded store), and `spanledger alerts check` exit codes."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from spanledger.budgets.runner import AlertRunner
from spanledger.reports.budgets import load_budget_file
from spanledger.store import Store
from support.reports import llm_span, spans_table, store_with
from support.webhook import WebhookReceiver

D = Decimal
NOW = dt.datetime(2026, 11, 18, 12, tzinfo=dt.UTC)
SECRET = "shared-secret-for-tests"


def add_spend(store: Store, usd: str, feature: str = "chat", day: int = 18) -> None:
    at = dt.datetime(2026, 11, day, 9, tzinfo=dt.UTC)
    trace = f"{feature}-{day}-{usd}"
    store.insert_arrow("otel_traces", spans_table([
        llm_span(trace=trace, ts=at, team="support", feature=feature, cost=usd)]))


def budgets(tmp_path: Path, url: str, *, channel: str = "webhook", tries: int = 3,
            extra: str = "") -> Any:
    path = tmp_path / "budgets.yaml"
    secret = f", secret: {SECRET}" if channel == "webhook" else ""
    path.write_text(f"""
report_url: http://grafana.test/d/budgets
channels:
  hook: {{type: {channel}, url: "{url}"{secret}, tries: {tries}, backoff_s: 0}}
budgets:
  - {{name: chat, team: support, feature: chat, amount: 100, period: month, notify: [hook],
     thresholds: {{forecasted: []}}}}
{extra}""")
    return load_budget_file(path)


def no_sleep(_: float) -> None:
    pass


def rows(store: Store) -> list[tuple[Any, ...]]:
    return store.query("SELECT Budget, Scope, toString(Threshold), Channel, Attempt, State "
                       "FROM budget_alerts ORDER BY Threshold, Attempt, State")


def test_signed_webhook_retried_after_a_500(tmp_path: Path) -> None:
    with WebhookReceiver(statuses=(500, 200)) as hook, store_with(tmp_path / "s") as store:
        add_spend(store, "80")
        result = AlertRunner(store, budgets(tmp_path, hook.url), sleep=no_sleep).run_once(NOW)
        assert [f.key.threshold for f in result.new] == [D(80)]
        assert [f.delivered for f in result.new] == [True]
        first, second = hook.requests
        assert (first.status, second.status) == (500, 200)
        assert first.body == second.body  # a retry sends the same alert
        for r in (first, second):
            expected = "sha256=" + hmac.new(
                SECRET.encode(), r.headers["x-spanledger-timestamp"].encode() + b"." + r.body,
                hashlib.sha256).hexdigest()
            assert r.headers["x-spanledger-signature"] == expected
            assert r.headers["content-type"] == "application/json"
        body = json.loads(second.body)
        assert body["id"] == second.headers["x-spanledger-alert-id"]
        assert (body["budget"], body["scope"], body["kind"]) == (
            "chat", {"team": "support", "feature": "chat"}, "actual")
        assert (body["threshold_percent"], body["spent_usd"], body["amount_usd"]) == (
            "80", "80.000000000000", "100.000000000000")
        assert body["percent"] == "80.000000000000"
        assert body["period"]["start"] == "2026-11-01" and body["period"]["end"] == "2026-11-30"
        assert body["link"] == "http://grafana.test/d/budgets" and "reached 80%" in body["text"]
        assert body["forecast_usd"] is None and body["forecast_method"] == "none"  # no full day
        # recorded: the 50 % reached at the same time is superseded, not sent
        assert rows(store) == [
            ("chat", "team=support,feature=chat", "50", "hook", 1, "superseded"),
            ("chat", "team=support,feature=chat", "80", "hook", 1, "claimed"),
            ("chat", "team=support,feature=chat", "80", "hook", 1, "delivered"),
        ]
        # the next evaluation finds nothing new
        again = AlertRunner(store, budgets(tmp_path, hook.url), sleep=no_sleep).run_once(NOW)
        assert again.fired == [] and len(hook.requests) == 2
        # more spend: the next threshold fires, once
        add_spend(store, "21")
        later = AlertRunner(store, budgets(tmp_path, hook.url), sleep=no_sleep).run_once(NOW)
        assert [f.key.threshold for f in later.new] == [D(100)] and len(hook.delivered()) == 2


def test_a_failed_delivery_is_retried_by_a_later_evaluation(tmp_path: Path) -> None:
    with WebhookReceiver(statuses=(503, 503, 200)) as hook, store_with(tmp_path / "s") as store:
        add_spend(store, "55")
        spec = budgets(tmp_path, hook.url, tries=2)
        first = AlertRunner(store, spec, sleep=no_sleep).run_once(NOW)
        assert [f.delivered for f in first.new] == [False] and len(hook.requests) == 2
        assert "HTTP 503" in first.new[0].error
        # backing off: an evaluation 10 s later does not try again
        soon = AlertRunner(store, spec, sleep=no_sleep).run_once(NOW + dt.timedelta(seconds=10))
        assert soon.fired == soon.retried == [] and len(hook.requests) == 2
        # after the backoff any evaluator retries it: attempt 2, the same body
        late = AlertRunner(store, spec, sleep=no_sleep).run_once(NOW + dt.timedelta(minutes=2))
        assert [(f.attempt, f.delivered) for f in late.retried] == [(2, True)]
        assert hook.requests[2].body == hook.requests[0].body
        assert rows(store)[-4:] == [
            ("chat", "team=support,feature=chat", "50", "hook", 1, "claimed"),
            ("chat", "team=support,feature=chat", "50", "hook", 1, "failed"),
            ("chat", "team=support,feature=chat", "50", "hook", 2, "claimed"),
            ("chat", "team=support,feature=chat", "50", "hook", 2, "delivered"),
        ]


def test_two_evaluators_racing_send_each_alert_once(tmp_path: Path) -> None:
    extra = "\n".join(
        f"  - {{name: b{i}, team: support, feature: chat, amount: {10 + i}, period: month, "
        f"notify: [hook]}}" for i in range(6))
    with WebhookReceiver() as hook, store_with(tmp_path / "s") as store:
        add_spend(store, "9")
        spec = budgets(tmp_path, hook.url, extra=extra)
        runners = [AlertRunner(store, spec, owner=f"evaluator-{i}", sleep=no_sleep)
                   for i in range(4)]
        barrier = threading.Barrier(len(runners))
        results: list[Any] = []

        def run(r: AlertRunner) -> None:
            barrier.wait()
            results.append(r.run_once(NOW))

        threads = [threading.Thread(target=run, args=(r,)) for r in runners]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ids = [r.headers["x-spanledger-alert-id"] for r in hook.requests]
        assert len(ids) == 6 == len(set(ids))  # b0..b5 each at its highest threshold, once
        assert sum(len(r.sent) for r in results) == 6
        owners = store.query("SELECT AlertId, uniqExact(Owner) FROM budget_alerts "
                             "WHERE State IN ('claimed', 'superseded') GROUP BY AlertId")
        assert owners and all(n == 1 for _, n in owners)


def test_slack_text(tmp_path: Path) -> None:
    with WebhookReceiver() as hook, store_with(tmp_path / "s") as store:
        add_spend(store, "125")
        AlertRunner(store, budgets(tmp_path, hook.url, channel="slack")).run_once(NOW)
        (sent,) = hook.requests
        assert set(json.loads(sent.body)) == {"text"}
        text = json.loads(sent.body)["text"]
        assert "'chat'" in text and "reached 120%" in text and "HARD STOP" in text
        assert "x-spanledger-signature" not in sent.headers


def test_alerts_check_exit_codes(tmp_path: Path) -> None:
    from support.reports import run_cli

    path = tmp_path / "b.yaml"
    path.write_text("budgets:\n  - {name: chat, feature: chat, amount: 10, period: month}\n")
    with store_with(tmp_path / "s") as store:
        add_spend(store, "5")
    url = f"chdb://{tmp_path / 's'}"
    check = ["alerts", "check", "--budgets", str(path), "--url", url, "--as-of", "2026-11-18"]
    code, out, err = run_cli([*check, "--dry-run"])
    assert code == 1 and out.startswith("[would fire] spanledger budget 'chat'"), err
    code, out, err = run_cli([*check, "--format", "json"])
    assert code == 1, err
    (fired,) = json.loads(out)["fired"]
    assert (fired["threshold"], fired["channel"], fired["delivered"]) == ("50", "log", True)
    code, out, err = run_cli(check)
    assert (code, out) == (0, ""), err  # already sent: never twice
    assert "0 alert(s) fired" in err
    path.write_text("budgets:\n  - {name: chat, feature: chat, amount: lots, period: month}\n")
    code, _, err = run_cli(check)
    assert code == 2 and "b.yaml:2: budgets[0].amount: expected a number" in err
    path.write_text("budgets: []\n")
    code, _, err = run_cli(["alerts", "check", "--budgets", str(path), "--url",
                            "http://127.0.0.1:1/db"])
    assert code == 3 and "unreachable" in err
