"""The HTML report's budget and anomaly sections (the same Reports as the command line)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from support.reports import llm_span, load_store, october_spans, run_cli


def test_html_has_budget_states_and_anomalies(tmp_path: Path) -> None:
    runaway = [llm_span(trace="loop", ts=dt.datetime(2026, 10, 30, 9, tzinfo=dt.UTC),
                        team="support", feature="chat", cost="1.5") for _ in range(3)]
    url = load_store(tmp_path / "store", october_spans() + runaway)
    budgets = tmp_path / "b.yaml"
    budgets.write_text("budgets:\n"
                       "  - {name: support, team: support, amount: 16, period: month}\n"
                       "  - {name: acme, customer: acme, amount: 5, period: week}\n")
    out = tmp_path / "r.html"
    code, _, err = run_cli(["report", "html", "--url", url, "--period", "2026-10", "--budgets",
                            str(budgets), "--as-of", "2026-10-31", "--output", str(out)])
    assert code == 0, err
    html = out.read_text()
    budgets_part = html[html.index("<h2>Budgets</h2>"):html.index("<h2>Anomalies</h2>")]
    # support: 14.00 + the 4.50 loop = 18.50 of 16 (115.6 %): past 100, below the 120 % stop
    assert "support" in budgets_part and "18.50" in budgets_part and "115.6%" in budgets_part
    assert "&gt;= 100%" in budgets_part and "team=support" in budgets_part
    assert "keys no monthly budgets by report group" in html  # no `by`: no burn chart
    sections = dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', html, re.S))
    charts = ("over-time", "by-feature", "top-runs", "unpriced")  # per day, per feature, ...
    assert sum(sections[s].count("<svg") for s in charts) == 4
    assert "<svg" not in sections["budgets"]  # no `by`: no burn chart
    anomalies = html[html.index("<h2>Anomalies</h2>"):]
    # the loop's day against a month of (mostly zero) support spend: a spike, per dimension
    for series in ("support", "chat", "gpt-4o"):
        assert f"<td class=\"t\">{series}</td><td class=\"id\">2026-10-30</td>" in anomalies
    assert anomalies.count("<td class=\"t\">spike</td>") == 4  # team, feature, model, customer
