"""``report unit-economics``: cost per outcome, waste, cost per customer and active user,
revenue and margin, against numbers computed by hand from ``support.outcomes.unit_spans``
(rows go in at otel_traces, through the real materialized views)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from support.outcomes import unit_spans
from support.reports import load_store, run_cli

REVENUE = """\
threshold_percent: 50
customers:
  - {customer: acme, monthly: 31}
  - {customer: globex, monthly: 10}
  - {customer: hooli, monthly: 100}
"""


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return load_store(tmp_path_factory.mktemp("units") / "store", unit_spans())


def report(url: str, *args: str) -> dict[str, Any]:
    code, out, err = run_cli(["report", "unit-economics", "--url", url, "--period", "2026-10",
                              "--format", "json", *args])
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def by(rows: list[dict[str, Any]], *keys: str) -> dict[tuple[str, ...], dict[str, Any]]:
    return {tuple(r[k] for k in keys): r for r in rows}


def test_cost_per_outcome_counts_runs_without_an_outcome_as_waste(url: str) -> None:
    doc = report(url)
    rows = by(doc["rows"], "team", "feature", "outcome")
    assert set(rows) == {("support", "triage", "ticket_resolved"),
                         ("sales", "drafts", "conversion")}
    # support/triage: runs 1-4 (3.00 + 1.50 + 4.50 + 1.00); run 3 has no outcome; run 4's
    # ticket comes from a webhook in another trace; trace w8 has a ticket but no LLM call
    # (counted by its own attribution); run 7 started in September (not counted)
    assert rows[("support", "triage", "ticket_resolved")] == {
        "team": "support", "feature": "triage", "outcome": "ticket_resolved", "runs": 4,
        "runs_with": 3, "runs_without": 1, "outcomes": "4", "cost": "10.000000000000",
        "waste": "4.500000000000", "waste_share": "45.000000",
        "cost_per_outcome": "2.500000000000"}
    # sales/drafts: runs 5 (0.60, a conversion worth 2) and 6 (0.40, nothing)
    assert rows[("sales", "drafts", "conversion")] == {
        "team": "sales", "feature": "drafts", "outcome": "conversion", "runs": 2,
        "runs_with": 1, "runs_without": 1, "outcomes": "2", "cost": "1.000000000000",
        "waste": "0.400000000000", "waste_share": "40.000000",
        "cost_per_outcome": "0.500000000000"}
    assert doc["total"] is None
    notes = " ".join(doc["notes"])
    assert "2 of 6 runs" in notes and "$4.90 of $11.00 (44.5%)" in notes
    assert "1 outcomes name no run with LLM calls" in notes


def test_customers_cost_per_active_user_and_margin_on_revenue(url: str, tmp_path: Path) -> None:
    revenue = tmp_path / "revenue.yaml"
    revenue.write_text(REVENUE)
    doc = report(url, "--revenue", str(revenue))
    assert doc["by"] == "customer" and doc["threshold_percent"] == "50"
    rows = by(doc["rows"], "customer")
    # globex: runs 3 and 4, 5.50, user u3; revenue 10 -> 55 % (>= 50: flagged)
    assert rows[("globex",)] == {
        "customer": "globex", "runs": 2, "success": "50.000000", "outcomes": "2", "calls": 4,
        "users": 1, "cost": "5.500000000000", "waste": "4.500000000000",
        "cost_per_user": "5.500000000000", "revenue": "10.000000000000",
        "cost_share": "55.000000", "margin": "4.500000000000", "margin_share": "45.000000",
        "flag": ">= 50% of revenue"}
    # acme: 3.00 + 1.50 + 0.60 = 5.10 for users u1, u2; revenue 31 -> 16.45 %
    acme = rows[("acme",)]
    assert (acme["cost"], acme["users"], acme["cost_per_user"], acme["margin"],
            acme["cost_share"], acme["flag"]) == (
        "5.100000000000", 2, "2.550000000000", "25.900000000000", "16.451613", "")
    assert acme["outcomes"] == "4"  # two tickets and a conversion worth 2
    # initech has cost and no revenue entry; hooli has revenue and no cost
    assert rows[("initech",)]["revenue"] is None and rows[("initech",)]["flag"] == ""
    assert (rows[("hooli",)]["cost"], rows[("hooli",)]["margin"]) == (
        "0.000000000000", "100.000000000000")
    assert doc["total"] == {
        "customer": "TOTAL", "runs": 6, "success": "66.666667", "outcomes": "6", "calls": 9,
        "users": 4, "cost": "11.000000000000", "waste": "4.900000000000",
        "cost_per_user": "2.750000000000", "revenue": "141.000000000000",
        "cost_share": "7.517730", "margin": "130.400000000000", "margin_share": "92.482270",
        "flag": "1 flagged"}
    assert doc["flagged"] == ["globex"]
    for key in ("cost", "waste", "revenue", "margin"):  # the summed columns add up exactly
        values = [Decimal(r[key]) for r in doc["rows"] if r[key] is not None]
        assert sum(values, Decimal(0)) == Decimal(doc["total"][key]), key
    assert any("initech" in n for n in doc["notes"])


def test_the_threshold_is_reached_at_greater_or_equal(url: str, tmp_path: Path) -> None:
    revenue = tmp_path / "revenue.yaml"
    revenue.write_text(REVENUE)
    flagged = report(url, "--revenue", str(revenue), "--threshold", "55%")["flagged"]
    assert flagged == ["globex"]  # exactly 55.0 %
    assert report(url, "--revenue", str(revenue), "--threshold", "55.01")["flagged"] == []


def test_csv_revenue_with_a_month_entry_and_a_partial_period(url: str, tmp_path: Path) -> None:
    revenue = tmp_path / "revenue.csv"
    revenue.write_text("customer,monthly,month\nacme,62,\nacme,31,2026-10\nglobex,\"1,000\",\n")
    code, out, err = run_cli(["report", "unit-economics", "--url", url, "--from", "2026-10-01",
                              "--to", "2026-10-15", "--by", "customer", "--revenue",
                              str(revenue), "--format", "json"])
    assert code == 0, err
    rows = by(json.loads(out)["rows"], "customer")
    # the October entry (31) wins over the plain one (62); 15 of 31 days -> 15.00
    assert rows[("acme",)]["revenue"] == "15.000000000000"
    assert rows[("globex",)]["revenue"] == "483.870967741935"  # 1000 x 15 / 31


def test_team_and_feature_narrow_the_report(url: str) -> None:
    rows = report(url, "--team", "sales")["rows"]
    assert [(r["feature"], r["outcome"], r["cost"]) for r in rows] == [
        ("drafts", "conversion", "1.000000000000")]
    customers = by(report(url, "--by", "customer", "--feature", "drafts")["rows"], "customer")
    assert {k: v["cost"] for k, v in customers.items()} == {
        ("acme",): "0.600000000000", ("initech",): "0.400000000000"}


def test_table_and_csv_show_the_same_numbers(url: str) -> None:
    code, out, _ = run_cli(["report", "unit-economics", "--url", url, "--period", "2026-10"])
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("support"))
    assert line.split() == ["support", "triage", "ticket_resolved", "4", "3", "1", "4",
                            "10.0000", "4.5000", "45.0%", "2.5000"]
    code, out, _ = run_cli(["report", "unit-economics", "--url", url, "--period", "2026-10",
                            "--format", "csv"])
    assert out.splitlines()[0] == ("team,feature,outcome,runs,runs_with,runs_without,outcomes,"
                                   "cost,waste,waste_share,cost_per_outcome")
    assert ("support,triage,ticket_resolved,4,3,1,4,10.000000000000,4.500000000000,45.000000,"
            "2.500000000000") in out.splitlines()


@pytest.mark.parametrize(("name", "text", "message"), [
    ("r.yaml", "customers:\n  - {customer: a, monthly: -1}\n",
     "r.yaml:2: customers[0].monthly: must be >= 0"),
    ("r.yaml", "customers:\n  - {customer: a, monthly: 1, month: 2026-13}\n",
     "r.yaml:2: customers[0].month: expected a month YYYY-MM, got '2026-13'"),
    ("r.yaml", "customers:\n  - {customer: a, monthly: 1}\n  - {customer: a, monthly: 2}\n",
     "r.yaml:3: customers[1].customer: revenue for a given twice"),
    ("r.yaml", "customer:\n  - {customer: a, monthly: 1}\n", "r.yaml:1: customer: unknown key"),
    ("r.csv", "customer,monthly\na,12\nb,twelve\n", "r.csv:3: monthly: expected a number"),
    ("r.csv", "client,monthly\na,1\n", "r.csv:1: the header row must name the columns"),
])
def test_a_bad_revenue_file_is_file_line_key_and_exit_2(url: str, tmp_path: Path, name: str,
                                                         text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    code, out, err = run_cli(["report", "unit-economics", "--url", url, "--revenue", str(path)])
    assert code == 2 and not out
    assert message in err.replace(str(tmp_path) + "/", "")


def test_revenue_needs_the_customer_view(url: str, tmp_path: Path) -> None:
    revenue = tmp_path / "r.yaml"
    revenue.write_text(REVENUE)
    code, _, err = run_cli(["report", "unit-economics", "--url", url, "--by", "feature",
                            "--revenue", str(revenue)])
    assert code == 2 and "--revenue and --threshold apply to --by customer" in err


def test_the_shipped_revenue_examples_load_alike() -> None:
    from spanledger.reports.period import parse_month
    from spanledger.reports.revenue import load_revenue
    from spanledger.resources import data_dir

    folder = data_dir("collector-config")
    yaml_file = load_revenue(folder / "revenue.example.yaml")
    csv_file = load_revenue(folder / "revenue.example.csv")
    for month, acme in (("2026-11", Decimal(12000)), ("2026-12", Decimal(15000))):
        period = parse_month(month)
        for revenue in (yaml_file, csv_file):
            assert revenue.for_period("acme", period) == acme
            assert revenue.for_period("globex", period) == Decimal("4500.50")
            assert revenue.for_period("nobody", period) is None
    assert yaml_file.threshold_percent == 20
    assert load_revenue(folder / "demo-revenue.yaml").customers >= {"acme-corp", "soylent"}


def test_a_store_migrated_before_outcomes_existed_says_what_to_do(tmp_path: Path) -> None:
    from support.reports import store_with

    with store_with(tmp_path / "old", unit_spans()) as store:
        for name in ("outcomes_daily_mv", "outcomes_by_trace_mv", "outcomes_daily",
                     "outcomes_by_trace"):
            store.command(f"DROP TABLE {name}")
    url = f"chdb://{tmp_path / 'old'}"
    doc = report(url)
    assert doc["rows"] == [] and "spanledger db migrate" in doc["notes"][0]
    customers = report(url, "--by", "customer")
    # the cost side still reads: AI cost per customer without the outcome columns filled
    assert by(customers["rows"], "customer")[("acme",)]["cost"] == "5.100000000000"
    assert by(customers["rows"], "customer")[("acme",)]["success"] is None
