"""The collector evaluates budgets by itself: an alert goes out once, a restarted collector
does not send it again, and services read /budgets/state with the bearer token."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from support.collector import start_collector, wait_for
from support.demo import clean_env
from support.reports import llm_span, store_with
from support.webhook import WebhookReceiver

TOKEN = "budget-state-token"




def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_collector_alerts_once_across_a_restart_and_serves_state(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    with store_with(store_dir, [
        llm_span(trace="t1", ts=now, team="support", feature="chat", cost="9"),
        llm_span(trace="t2", ts=now, team="support", feature="chat", cost="4"),
    ]):
        pass
    with WebhookReceiver() as hook:
        (tmp_path / "budgets.yaml").write_text(f"""
channels:
  hook: {{type: webhook, url: "{hook.url}", secret: s, backoff_s: 0}}
budgets:
  - name: support-chat
    team: support
    feature: chat
    amount: 10
    period: rolling 2 days
    notify: [hook]
    enforce_hard_stop: true
    max_run_usd: 0.25
""")
        config = tmp_path / "collector.yaml"
        config.write_text(f"auth:\n  bearer_token: {TOKEN}\n"
                          "budgets:\n  file: budgets.yaml\n  every_s: 1\n")
        first = start_collector(store_dir, config=config)
        try:
            assert wait_for(lambda: len(hook.delivered()) >= 1)
            state_url = first.endpoints["budgets_state"]
            assert get(state_url)[0] == 401
            assert get(state_url, "wrong")[0] == 401
            status, body = get(state_url, TOKEN)
            assert status == 200
            doc = json.loads(body)
            (stop,) = doc["stops"]  # 130 % >= the 120 % hard stop, enforced
            assert (stop["budget"], stop["scope"], stop["on_exceed"]) == (
                "support-chat", {"team": "support", "feature": "chat"}, "raise")
            (limit,) = doc["run_limits"]
            assert limit["max_run_usd"] == "0.250000000000"
            assert doc["budgets"][0]["spent_usd"] == "13.000000000000"
            assert wait_for(lambda: first.metric("budget_evaluations") >= 3)
            # a cron check while the collector holds the store: it reads through the
            # collector's SQL front, sees the alert was sent, fires nothing
            cron = subprocess.run(
                [sys.executable, "-m", "spanledger", "alerts", "check", "--budgets",
                 str(tmp_path / "budgets.yaml"), "--url", f"chdb://{store_dir}"],
                env={**clean_env(), "SPANLEDGER_COLLECTOR_TOKEN": TOKEN}, capture_output=True,
                text=True, timeout=120, check=False)
            assert cron.returncode == 0, cron.stderr
            assert "0 alert(s) fired" in cron.stderr and "read-only store" in cron.stderr
        finally:
            assert first.stop() == 0
        (sent,) = hook.delivered()
        assert json.loads(sent.body)["threshold_percent"] == "120"  # the highest one only
        second = start_collector(store_dir, config=config)
        try:
            assert wait_for(lambda: second.metric("budget_evaluations") >= 3)
            assert second.metric("budget_evaluation_errors") == 0
        finally:
            assert second.stop() == 0
        assert len(hook.requests) == 1  # the restarted collector saw it was sent
