"""Verified and unverified spend apart, in every place a FinOps lead looks.

Spans whose collector token could not vouch for their team, cost centre or service
are stored as ``(unverified)`` there (test_trust_collector.py shows how); here the
reports read such a store: ``report spend`` has an ``(unverified)`` row and a note
counting all unverified spend whatever the grouping, the HTML report shows it on a
card and under the team table, and the Grafana panel splits verified from unverified.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from spanledger.reports.html import write_html_report
from support.deploy import DASHBOARDS, GrafanaContext, expand_grafana, iter_panels, load_dashboard
from support.reports import day, llm_span, load_store, run_cli, store_with

U = "(unverified)"


def _spans() -> list[dict[str, Any]]:
    return [
        llm_span(trace="a1", ts=day(3), team="support", cost_center="cc-1", cost="2.00"),
        llm_span(trace="a2", ts=day(4), team="billing", cost_center="cc-2", cost="1.00"),
        llm_span(trace="x1", ts=day(5), team=U, cost_center="cc-2", cost="3.00"),
        llm_span(trace="x2", ts=day(5), team="support", cost_center=U, cost="0.50"),
        llm_span(trace="x3", ts=day(6), team="support", cost_center="cc-1", cost="0.25",
                 service=U),
    ]


def test_report_spend_shows_unverified_spend_apart(tmp_path: Path) -> None:
    url = load_store(tmp_path / "store", _spans())
    code, out, err = run_cli(["report", "spend", "--url", url, "--period", "2026-10",
                              "--by", "team", "--format", "json"])
    assert code == 0, err
    doc = json.loads(out)
    costs = {r["team"]: Decimal(str(r["cost"])) for r in doc["rows"]}
    assert costs == {"support": Decimal("2.75"), U: Decimal("3.00"), "billing": Decimal("1.00")}
    assert (f"3.75 USD (3 calls) is unverified: the collector token that sent it may not claim "
            f"its team, cost centre or service, so it is stored as {U}") in " ".join(doc["notes"])
    # grouped by cost centre the (unverified) row is another one; the note counts the same
    code, out, _ = run_cli(["report", "spend", "--url", url, "--period", "2026-10",
                            "--by", "cost_center"])
    assert code == 0
    lines = out.splitlines()
    assert any(line.split()[0] == U and "0.50" in line for line in lines if line.strip())
    assert any("3.75 USD (3 calls) is unverified" in line for line in lines)
    # nothing unverified: no note
    code, out, _ = run_cli(["report", "spend", "--url", url, "--period", "2026-09"])
    assert code == 0 and "unverified" not in out


def test_html_report_shows_unverified_spend(tmp_path: Path) -> None:
    with store_with(tmp_path / "store", _spans()) as store:
        page = write_html_report(store, tmp_path / "r.html", "2026-10").read_text()
        clean = write_html_report(store, tmp_path / "r9.html", "2026-09").read_text()
    assert "unverified spend (3 calls its token may not attribute)" in page
    assert "3.75 USD (3 calls) is unverified" in page
    assert "unverified" not in clean


def test_grafana_panel_splits_verified_and_unverified_spend(tmp_path: Path) -> None:
    dash = load_dashboard(DASHBOARDS / "spanledger-spend.json")
    (panel,) = [p for p in iter_panels(dash) if p["title"] == "Verified and unverified spend"]
    ctx = GrafanaContext(time_from=day(1), time_to=day(31) + timedelta(hours=11),
                         all_selected={"team": "'__all'", "feature": "'__all'",
                                       "model": "'__all'"})
    sql = expand_grafana(panel["targets"][0]["rawSql"], ctx)
    with store_with(tmp_path / "store", _spans()) as store:
        (row,) = store.query(sql)
        only_support = expand_grafana(panel["targets"][0]["rawSql"], GrafanaContext(
            time_from=ctx.time_from, time_to=ctx.time_to, variables={"team": "support"},
            all_selected={"feature": "'__all'", "model": "'__all'"}))
        (support,) = store.query(only_support)
    assert (Decimal(str(row[0])), Decimal(str(row[1])), row[2]) == (
        Decimal("3.00"), Decimal("3.75"), 3)
    assert (Decimal(str(support[0])), Decimal(str(support[1])), support[2]) == (
        Decimal("2.00"), Decimal("0.75"), 2)
