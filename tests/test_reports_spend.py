"""``spanledger report spend``: every chargeback model against hand-computed numbers.

Data goes in as otel_traces rows (what a collector writes) and reaches the
report through the real materialized views; see ``support.reports.october_spans``
for the table the expectations below were computed from.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from support.reports import assert_rows_sum_to_total, load_store, october_spans, run_cli

D = Decimal


@pytest.fixture
def url(tmp_path: Path) -> str:
    return load_store(tmp_path / "store", october_spans())


def spend_json(url: str, *extra: str) -> dict[str, Any]:
    code, out, err = run_cli(["report", "spend", "--url", url, "--period", "2026-10",
                              "--format", "json", *extra])
    assert code == 0, err
    return json.loads(out)


def rows_by(doc: dict[str, Any], key: str = "team") -> dict[str, dict[str, Any]]:
    return {r[key]: r for r in doc["rows"]}


def test_showback_by_team(url: str) -> None:
    doc = spend_json(url)
    rows = rows_by(doc)
    assert list(rows) == ["support", "search", "(unattributed)"]  # by charge, descending
    assert D(rows["search"]["cost"]) == D("1.80")
    assert D(rows["support"]["cost"]) == D("14.00")
    assert D(rows["(unattributed)"]["cost"]) == D("0.20")
    assert rows["search"]["calls"] == 3 and rows["search"]["tokens"] == 2160
    # the unpriced call is counted and its tokens shown, never priced at $0 silently
    assert rows["support"]["calls"] == 8
    assert rows["support"]["unpriced_calls"] == 1 and rows["support"]["unpriced_tokens"] == 770
    assert rows["support"]["tokens"] == 18270
    assert D(doc["total"]["cost"]) == D("16.00") == D(doc["total"]["charge"])
    assert doc["total"]["calls"] == 12 and doc["total"]["tokens"] == 20540
    assert doc["total"]["unpriced_calls"] == 1
    assert any("1 unpriced calls (770 tokens)" in n for n in doc["notes"])
    assert_rows_sum_to_total(doc)


def test_showback_table_has_total_and_unattributed_row(url: str) -> None:
    code, out, _ = run_cli(["report", "spend", "--url", url, "--period", "2026-10"])
    assert code == 0
    lines = out.splitlines()
    total = next(line for line in lines if line.startswith("TOTAL"))
    assert total.split()[-2:] == ["16.0000", "16.0000"]  # under $100: 4 decimals
    unatt = next(line for line in lines if line.startswith("(unattributed)"))
    assert unatt.split()[-1] == "0.2000"


def test_showback_by_team_and_feature_csv_full_precision(url: str) -> None:
    code, out, _ = run_cli(["report", "spend", "--url", url, "--period", "2026-10",
                            "--by", "team,feature", "--format", "csv"])
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ["team", "feature", "calls", "tool_calls", "vector_calls", "tokens",
                             "unpriced_calls", "unpriced_tokens", "cost", "charge"]
    got = {(r["team"], r["feature"]): r["charge"] for r in rows}
    assert got == {("support", "chat"): "14.000000000000", ("search", "rag"): "1.800000000000",
                   ("(unattributed)", "(unattributed)"): "0.200000000000"}
    assert all(r["team"] != "TOTAL" for r in rows)  # csv has no total row to double count


def test_env_filter(url: str) -> None:
    doc = spend_json(url, "--env", "prod")
    assert "(unattributed)" not in rows_by(doc)  # u1 ran in staging
    assert D(doc["total"]["cost"]) == D("15.80")


def test_from_to_partial_period(url: str) -> None:
    code, out, err = run_cli(["report", "spend", "--url", url, "--from", "2026-10-02",
                              "--to", "2026-10-09", "--format", "json"])
    assert code == 0, err
    doc = json.loads(out)
    rows = rows_by(doc)
    assert "search" not in rows  # r1 on the 1st, r2 on the 10th
    assert D(rows["support"]["cost"]) == D("14.00")
    assert D(doc["total"]["cost"]) == D("14.20")


def test_proportional_splits_invoice_by_tokens_to_the_cent(url: str) -> None:
    doc = spend_json(url, "--model", "proportional", "--invoice-total", "100.00")
    rows = rows_by(doc)
    # 100 x 2160/20540 = 10.5160..., x 18270/20540 = 88.9483..., x 110/20540 = 0.5355...
    # floors 10.51 + 88.94 + 0.53 = 99.98: the two missing cents go to the largest
    # remainders (support .0083, search .0060), not to unattributed (.0055)
    assert D(rows["search"]["charge"]) == D("10.52") == D(rows["search"]["invoice_share"])
    assert D(rows["support"]["charge"]) == D("88.95")
    assert D(rows["(unattributed)"]["charge"]) == D("0.53")
    assert D(doc["total"]["charge"]) == D("100.00")
    assert sum(D(r["charge"]) for r in doc["rows"]) == D("100.00")
    assert D(rows["support"]["token_share"]) == (D(18270) * 100 / 20540).quantize(D("1e-6"))
    assert any("gap +84.00 USD" in n for n in doc["notes"])  # invoice 100 vs tracked 16


def test_proportional_awkward_invoice_still_sums(url: str) -> None:
    doc = spend_json(url, "--model", "proportional", "--invoice-total", "12345.67")
    assert sum(D(r["charge"]) for r in doc["rows"]) == D("12345.67")
    assert all(D(r["charge"]) == D(r["charge"]).quantize(D("0.01")) for r in doc["rows"])


def test_cost_plus_default_and_explicit_markup(url: str) -> None:
    doc = spend_json(url, "--model", "cost-plus")
    rows = rows_by(doc)
    assert doc["markup"] == "0.15"
    assert D(rows["search"]["charge"]) == D("2.07")       # 1.80 x 1.15
    assert D(rows["support"]["charge"]) == D("16.10")     # 14.00 x 1.15
    assert D(rows["(unattributed)"]["charge"]) == D("0.23")
    assert D(rows["support"]["markup"]) == D("2.10")
    assert D(doc["total"]["charge"]) == D("18.40")
    assert_rows_sum_to_total(doc)
    doc = spend_json(url, "--model", "cost-plus", "--markup", "20%")
    assert D(rows_by(doc)["support"]["charge"]) == D("16.80")
    assert D(doc["total"]["charge"]) == D("19.20")


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_shared_costs_prorated_by_share_of_cost(url: str, tmp_path: Path) -> None:
    shared = write(tmp_path / "shared.yaml", """
months:
  2026-10: {gateway: 300, logging: 100, vault: 0, people: 600}
""")
    doc = spend_json(url, "--shared-costs", shared)
    rows = rows_by(doc)
    # shares of cost 1.80/16, 14/16, 0.20/16 of 1000
    assert D(rows["search"]["shared_cost"]) == D("112.50")
    assert D(rows["support"]["shared_cost"]) == D("875.00")
    assert D(rows["(unattributed)"]["shared_cost"]) == D("12.50")
    assert D(rows["search"]["shared_share"]) == D("11.25")
    assert D(rows["search"]["charge"]) == D("114.30")
    assert D(doc["total"]["shared_cost"]) == D("1000")
    assert D(doc["total"]["charge"]) == D("1016.00")
    assert_rows_sum_to_total(doc)


def test_shared_costs_partial_month_sum_exactly(url: str, tmp_path: Path) -> None:
    shared = write(tmp_path / "shared.yaml", "default: {gateway: 1000}\n")
    code, out, err = run_cli(["report", "spend", "--url", url, "--from", "2026-10-01",
                              "--to", "2026-10-10", "--shared-costs", shared, "--format", "json"])
    assert code == 0, err
    doc = json.loads(out)
    expected_total = (D(1000) * 10 / 31).quantize(D("1e-12"))  # 10 of October's 31 days
    parts = [D(r["shared_cost"]) for r in doc["rows"]]
    assert sum(parts, D(0)) == expected_total == D(doc["total"]["shared_cost"])
    # cost 16.00 in these days: search 1.80 of it
    search = D(rows_by(doc)["search"]["shared_cost"])
    assert abs(search - expected_total * D("1.8") / 16) < D("1e-11")


def test_table_rows_add_up_to_displayed_total(url: str, tmp_path: Path) -> None:
    shared = write(tmp_path / "shared.yaml", "default: {gateway: 1000.01}\n")
    code, out, _ = run_cli(["report", "spend", "--url", url, "--period", "2026-10",
                            "--shared-costs", shared, "--by", "team,feature"])
    assert code == 0
    lines = out.splitlines()
    body = [line for line in lines[4:] if line and not line.startswith(("-", "TOTAL", "note"))]
    total = next(line for line in lines if line.startswith("TOTAL"))
    def money(line: str, col: int) -> Decimal:
        return D(line.split()[col].replace(",", ""))

    # columns from the right: charge, shared costs, share of shared, actual cost;
    # shown in cents as amounts are over $100
    assert len(body) == 3
    for col in (-1, -2, -4):  # each column adds up to its TOTAL as shown
        assert sum(money(line, col) for line in body) == money(total, col)
    assert money(total, -1) == D("1016.01")
    for line in [*body, total]:  # and each row adds up across: charge = cost + shared
        assert money(line, -1) == money(line, -4) + money(line, -2)


BUDGETS = """
by: feature
hard_stop_percent: 120
budgets:
  - feature: rag
    monthly: {rag}
  - feature: chat
    monthly: 14.00
  - feature: "(unattributed)"
    monthly: 0.40
  - feature: translate
    monthly: 50
"""


def test_budget_thresholds_use_greater_or_equal(url: str, tmp_path: Path) -> None:
    budgets = write(tmp_path / "b.yaml", BUDGETS.format(rag="2.25"))
    doc = spend_json(url, "--model", "budget", "--by", "feature", "--budgets", budgets)
    rows = rows_by(doc, "feature")
    assert D(rows["rag"]["used"]) == D("80")            # 1.80 / 2.25 exactly
    assert rows["rag"]["state"] == ">= 80%"
    assert D(rows["chat"]["used"]) == D("100")          # 14.00 / 14.00
    assert rows["chat"]["state"] == ">= 100%"
    assert rows["(unattributed)"]["state"] == ">= 50%"  # 0.20 / 0.40
    assert rows["translate"]["state"] == "ok" and D(rows["translate"]["charge"]) == 0
    # October is over: the projection is the actual
    assert D(rows["chat"]["projected"]) == D("14.00")
    budgets = write(tmp_path / "b2.yaml", BUDGETS.format(rag="1.50"))
    doc = spend_json(url, "--model", "budget", "--by", "feature", "--budgets", budgets)
    assert rows_by(doc, "feature")["rag"]["state"] == "HARD STOP (120%)"  # 1.80 / 1.50
    budgets = write(tmp_path / "b3.yaml", BUDGETS.format(rag="2.2500001"))
    doc = spend_json(url, "--model", "budget", "--by", "feature", "--budgets", budgets)
    assert rows_by(doc, "feature")["rag"]["state"] == ">= 50%"  # just under 80 %


def test_budget_projection_and_groups_without_budget(url: str, tmp_path: Path) -> None:
    budgets = write(tmp_path / "b.yaml", """
by: [team, feature]
budgets:
  - {team: support, feature: chat, monthly: 40, hard_stop_percent: 110}
""")
    doc = spend_json(url, "--model", "budget", "--by", "team,feature", "--budgets", budgets,
                     "--as-of", "2026-10-10")
    rows = {(r["team"], r["feature"]): r for r in doc["rows"]}
    chat = rows[("support", "chat")]
    # 14.00 over 10 of 31 days -> 43.40 by month end = 108.5 % of 40
    assert D(chat["projected"]) == D("43.40")
    assert D(chat["projected_used"]) == D("108.5")
    assert D(chat["used"]) == D("35") and chat["state"] == "ok"
    assert rows[("search", "rag")]["state"] == "no budget"
    assert rows[("search", "rag")]["budget"] is None
    assert doc["as_of"] == "2026-10-10"


PRICES = """
models:
  - provider: openai
    model: acme-llm
    effective_from: 2026-10-01
    input: 1.00
    output: 2.00
  - provider: openai
    model: acme-llm
    effective_from: 2026-10-15
    input: 0.50
    output: 1.00
"""


def test_snapshot_prices_keep_charges_stable_and_report_difference(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from support.reports import day, llm_span

    monkeypatch.setenv("SPANLEDGER_PRICES_FILE", write(tmp_path / "prices.yaml", PRICES))
    spans = [
        # acme-llm: 1.00/2.00 per M until the 14th, 0.50/1.00 from the 15th (a price cut)
        llm_span(trace="a", ts=day(5), team="alpha", model="acme-llm", input_tokens=1_000_000,
                 output_tokens=500_000, cost="2.00"),
        llm_span(trace="b", ts=day(20), team="beta", model="acme-llm", input_tokens=2_000_000,
                 output_tokens=1_000_000, cost="2.00"),
        # gpt-4o from the catalog: 2.50/10.00 per M, unchanged
        llm_span(trace="c", ts=day(20), team="alpha", model="gpt-4o", input_tokens=100_000,
                 output_tokens=10_000, cost="0.35"),
        llm_span(trace="d", ts=day(21), team="beta", model="mystery-1", input_tokens=5,
                 output_tokens=5, status="unpriced"),
        # priced when it ran, unknown to today's catalog: kept at its actual cost
        llm_span(trace="e", ts=day(22), model="retired-model", input_tokens=10,
                 output_tokens=10, cost="0.50"),
    ]
    url = load_store(tmp_path / "store", spans)
    doc = spend_json(url, "--snapshot-prices", "2026-10-01")
    rows = rows_by(doc)
    assert D(rows["alpha"]["cost"]) == D("2.35") == D(rows["alpha"]["snapshot_cost"])
    assert D(rows["beta"]["cost"]) == D("2.00")
    assert D(rows["beta"]["snapshot_cost"]) == D("4.00")  # 2M x 1.00 + 1M x 2.00
    assert D(rows["beta"]["snapshot_diff"]) == D("2.00")
    assert D(rows["beta"]["charge"]) == D("4.00")
    assert rows["beta"]["unpriced_calls"] == 1
    assert D(rows["(unattributed)"]["snapshot_cost"]) == D("0.50")
    assert D(doc["total"]["cost"]) == D("4.85")
    assert D(doc["total"]["snapshot_cost"]) == D("6.85") == D(doc["total"]["charge"])
    assert D(doc["total"]["snapshot_diff"]) == D("2.00")
    assert any("1 priced calls had no price on 2026-10-01" in n for n in doc["notes"])
    assert any("difference +2.00 USD" in n for n in doc["notes"])
    # at the prices of the 20th the same tokens cost what beta paid
    doc = spend_json(url, "--snapshot-prices", "2026-10-20")
    assert D(rows_by(doc)["beta"]["snapshot_diff"]) == 0
    assert D(rows_by(doc)["alpha"]["snapshot_cost"]) == D("1.35")  # 1M x 0.50 + 0.5M x 1.00 + 0.35


def test_snapshot_reprices_each_call_not_the_summed_tokens(tmp_path: Path) -> None:
    """claude-sonnet-4-5 has a higher rate above 200k input tokens *per call*.

    Three 150k-token calls sum to 450k tokens; re-pricing the sum as one call
    would charge all of it at the long-context rate. Each call is below the
    tier, so the snapshot must equal three base-rate calls (genai-prices itself
    is the independent calculation).
    """
    import datetime as dt

    from genai_prices import Usage, calc_price

    from support.reports import day, llm_span

    spans = [
        llm_span(trace=f"t{i}", ts=day(3 + i), team="alpha", model="claude-sonnet-4-5",
                 provider="anthropic", input_tokens=150_000, output_tokens=2_000, cost="1.00")
        for i in range(3)
    ]
    url = load_store(tmp_path / "store", spans)
    doc = spend_json(url, "--snapshot-prices", "2026-10-01")
    one = calc_price(Usage(input_tokens=150_000, output_tokens=2_000),
                     model_ref="claude-sonnet-4-5", provider_id="anthropic",
                     genai_request_timestamp=dt.datetime(2026, 10, 1, tzinfo=dt.UTC)).total_price
    assert D(rows_by(doc)["alpha"]["snapshot_cost"]) == 3 * one
    summed = calc_price(Usage(input_tokens=450_000, output_tokens=6_000),
                        model_ref="claude-sonnet-4-5", provider_id="anthropic",
                        genai_request_timestamp=dt.datetime(2026, 10, 1, tzinfo=dt.UTC)).total_price
    assert summed > 3 * one  # the tier this test is about exists in the catalog


def test_snapshot_uses_the_overrides_file_given(tmp_path: Path) -> None:
    from support.reports import day, llm_span

    prices = write(tmp_path / "prices.yaml", PRICES)
    url = load_store(tmp_path / "store", [
        llm_span(trace="b", ts=day(20), team="beta", model="acme-llm", input_tokens=2_000_000,
                 output_tokens=1_000_000, cost="2.00"),
    ])
    doc = spend_json(url, "--snapshot-prices", "2026-10-01", "--prices", prices)
    assert D(rows_by(doc)["beta"]["snapshot_cost"]) == D("4.00")  # 2M x 1.00 + 1M x 2.00
    code, _, err = run_cli(["report", "spend", "--url", url, "--prices", prices])
    assert code == 2 and "--prices applies to --snapshot-prices only" in err


def test_snapshot_reprices_vector_search_at_its_per_call_price(tmp_path: Path) -> None:
    """A qdrant span priced per call is re-priced per call, not reported as 'no price'."""
    from support.reports import day, llm_span

    prices = write(tmp_path / "prices.yaml", """
calls:
  - db_system: qdrant
    per_call: 0.0002
  - db_system: qdrant
    effective_from: 2026-10-15
    per_call: 0.0001
""")
    span = llm_span(trace="v", ts=day(20), team="search", cost="0.0001")
    attrs = span["SpanAttributes"]
    for key in ("gen_ai.provider.name", "gen_ai.operation.name", "gen_ai.request.model",
                "gen_ai.response.model", "gen_ai.usage.input_tokens",
                "gen_ai.usage.output_tokens"):
        del attrs[key]
    attrs["db.system.name"] = "qdrant"
    url = load_store(tmp_path / "store", [span])
    doc = spend_json(url, "--by", "team,model", "--snapshot-prices", "2026-10-01",
                     "--prices", prices)
    (row,) = doc["rows"]
    assert row["model"] == "qdrant"
    assert D(row["cost"]) == D("0.0001") and D(row["snapshot_cost"]) == D("0.0002")
    assert not any("had no price" in n for n in doc["notes"])
