"""Each step of ``report spend`` on a few plain groups: no store, numbers by hand.

The end-to-end cases (through otel_traces, the views and the CLI) are in
test_reports_spend.py; here every rule is pinned where it is applied.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from spanledger.reports import spend_steps as steps
from spanledger.reports.budgets import Budget, Budgets
from spanledger.reports.chargeback import GroupSpend
from spanledger.reports.period import Period, parse_month
from spanledger.reports.queries import SpendRow
from spanledger.reports.spend import SpendOptions, spend_report

D = Decimal
OCTOBER = parse_month("2026-10")


def groups() -> list[GroupSpend]:
    """search 1.80 USD, support 14.00 USD (one unpriced call), untagged 0.20 USD."""
    return [
        GroupSpend(("search",), calls=3, input_tokens=1800, output_tokens=360, cost=D("1.80")),
        GroupSpend(("support",), calls=8, unpriced_calls=1, unpriced_tokens=770,
                   input_tokens=14700, output_tokens=3570, cost=D("14.00")),
        GroupSpend(("",), calls=1, input_tokens=100, output_tokens=10, cost=D("0.20")),
    ]


def table(gs: list[GroupSpend] | None = None) -> steps.SpendTable:
    return steps.base_table(groups() if gs is None else gs, ("team",), {"model": "test"})


def column(t: steps.SpendTable, key: str) -> list[object]:
    return [r[key] for r in t.rows]


def test_base_table_labels_counts_and_cost() -> None:
    t = table()
    assert column(t, "team") == ["search", "support", "(unattributed)"]
    assert column(t, "tokens") == [2160, 18270, 110]  # input + output
    assert column(t, "unpriced_calls") == [0, 1, 0]
    assert column(t, "cost") == [D("1.80"), D("14.00"), D("0.20")]
    assert [c.key for c in t.columns] == ["team", "calls", "tool_calls", "vector_calls",
                                          "tokens", "unpriced_calls", "unpriced_tokens", "cost"]
    assert t.meta == {"model": "test"} and t.charge_parts == [(1, "cost")]


def test_budgets_without_spend_get_an_empty_group() -> None:
    budgets = Budgets("b.yaml", ("team",), {("search",): Budget(D(10), D(120)),
                                            ("nobody",): Budget(D(5), D(120))})
    gs = steps.with_budget_groups(groups(), budgets, snapshot=True)
    assert [g.group for g in gs] == [("search",), ("support",), ("",), ("nobody",)]
    assert gs[-1].calls == 0 and gs[-1].cost == 0 and gs[-1].snapshot_cost == 0
    assert steps.with_budget_groups(groups(), budgets, snapshot=False)[-1].snapshot_cost is None


def test_snapshot_is_shown_beside_actual_and_becomes_the_basis() -> None:
    gs = groups()
    gs[0].snapshot_cost = D("2.00")
    gs[1].snapshot_cost, gs[1].snapshot_fallback_calls = D("13.00"), 2
    gs[2].snapshot_cost = D("0.20")
    t = table(gs)
    steps.add_snapshot(t, dt.date(2026, 10, 1))
    assert column(t, "snapshot_cost") == [D("2.00"), D("13.00"), D("0.20")]
    assert column(t, "snapshot_diff") == [D("0.20"), D("-1.00"), D("0.00")]
    assert t.notes == ["charged at the prices of 2026-10-01: 15.20 USD vs actual 16.00 USD "
                       "(difference -0.80 USD)",
                       "2 priced calls had no price on 2026-10-01: kept at their actual cost"]
    assert t.meta["snapshot_prices"] == "2026-10-01"
    steps.add_showback(t)
    assert t.charges == [D("2.00"), D("13.00"), D("0.20")]
    assert t.charge_parts == [(1, "snapshot_cost")]


def test_proportional_splits_the_invoice_by_tokens_to_the_cent() -> None:
    t = table()
    steps.add_proportional(t, D("100.00"))
    # 100 x 2160/20540, 18270/20540, 110/20540 = 10.516.., 88.948.., 0.535..
    assert t.charges == [D("10.52"), D("88.95"), D("0.53")] == column(t, "invoice_share")
    assert sum(t.charges) == D("100.00")
    assert column(t, "token_share")[1] == D(18270) * 100 / 20540
    assert t.total["token_share"] == 100 and t.charge_parts == [(1, "invoice_share")]
    assert "gap +84.00 USD" in t.notes[-1] and t.meta["invoice_total"] == "100.00"


def test_proportional_without_tokens_leaves_the_invoice_unallocated() -> None:
    t = table([GroupSpend(("a",), calls=1, cost=D(1))])
    steps.add_proportional(t, D(50))
    assert t.charges == [D(0)] and column(t, "token_share") == [None]
    assert "token_share" not in t.total
    assert t.notes[0] == "invoice total 50 USD not allocated: no token volume in the period"


def test_cost_plus_shows_the_markup_as_its_own_column() -> None:
    t = table()
    steps.add_cost_plus(t, D("0.15"))
    assert t.charges == [D("2.07"), D("16.10"), D("0.23")]
    assert column(t, "markup") == [D("0.27"), D("2.10"), D("0.03")]
    assert t.columns[-1].header == "markup 15.00%"
    assert t.charge_parts == [(1, "cost"), (1, "markup")] and t.meta["markup"] == "0.15"


def test_shared_costs_are_prorated_by_charge_and_sum_exactly() -> None:
    t = table([GroupSpend(("a",), cost=D(1)), GroupSpend(("b",), cost=D(3)),
               GroupSpend(("c",), cost=D(0))])
    steps.add_showback(t)
    steps.add_shared_costs(t, {"gpu": D(30), "vector": D(10)})
    assert t.shared == [D(10), D(30), D(0)] == column(t, "shared_cost")
    assert column(t, "shared_share") == [D(25), D(75), D(0)]
    assert t.total["shared_share"] == 100
    assert t.notes == ["shared platform costs 40.00 USD (gpu 30.00, vector 10.00) prorated by "
                       "each group's share of charge"]
    assert t.meta["shared_costs"] == {"gpu": "30", "vector": "10"}
    steps.add_charge(t)
    assert column(t, "charge") == [D(11), D(33), D(0)]
    assert t.columns[-1].parts == ((1, "cost"), (1, "shared_cost"))


def test_shared_costs_with_nothing_charged_are_not_allocated() -> None:
    t = table([GroupSpend(("a",)), GroupSpend(("b",))])
    steps.add_showback(t)
    steps.add_shared_costs(t, {"gpu": D(5)})
    assert t.shared == [D(0), D(0)] and "shared_share" not in t.total
    assert t.notes == ["shared costs 5.00 USD not allocated: no charge in the period to "
                       "prorate them by"]


def test_no_shared_costs_in_the_period_adds_empty_columns() -> None:
    t = table()
    steps.add_showback(t)
    steps.add_shared_costs(t, {})
    assert column(t, "shared_share") == [None, None, None] and t.notes == []
    assert t.shared == [D(0)] * 3


def test_budget_use_threshold_and_projection() -> None:
    t = table([GroupSpend(("search",), cost=D("15.50")), GroupSpend(("other",), cost=D(1))])
    steps.add_showback(t)
    steps.add_charge(t)
    budgets = Budgets("b.yaml", ("team",), {("search",): Budget(D(31), D(120))})
    steps.add_budgets(t, budgets, OCTOBER, today=dt.date(2026, 10, 10))
    search, other = t.rows
    assert search["budget"] == 31 and search["used"] == 50 and search["state"] == ">= 50%"
    assert search["projected"] == D("48.05")  # 15.50 / 10 days x 31 days
    assert search["projected_used"] == D("155")
    assert other["state"] == "no budget" and other["budget"] is None
    assert t.notes[-1].startswith("projection: linear run-rate over 10 of 31 days (as of "
                                  "2026-10-10)")
    assert t.meta["budgets_file"] == "b.yaml" and t.meta["as_of"] == "2026-10-10"


def test_budget_of_a_partial_period_is_prorated_by_days() -> None:
    t = table([GroupSpend(("search",), cost=D(5))])
    steps.add_showback(t)
    steps.add_charge(t)
    budgets = Budgets("b.yaml", ("team",), {("search",): Budget(D(31), D(120))})
    steps.add_budgets(t, budgets, Period(dt.date(2026, 10, 1), dt.date(2026, 10, 10)),
                      today=dt.date(2026, 10, 20))
    assert t.rows[0]["budget"] == D(10) and t.rows[0]["used"] == D(50)
    assert t.rows[0]["projected"] == D(5)  # the period is over: projection = actual


def test_finish_totals_sort_and_unpriced_note() -> None:
    t = table()
    steps.add_showback(t)
    steps.add_charge(t)
    report = steps.finish(t, "title")
    assert [r["team"] for r in report.rows] == ["support", "search", "(unattributed)"]
    assert report.total == {"calls": 12, "tool_calls": 0, "vector_calls": 0, "tokens": 20540,
                            "unpriced_calls": 1, "unpriced_tokens": 770, "cost": D("16.00"),
                            "charge": D("16.00"), "team": "TOTAL"}
    assert report.notes == ["1 unpriced calls (770 tokens) have no price and are not in any "
                            "cost: see `spanledger prices unpriced`"]


def test_finish_breaks_charge_ties_by_group() -> None:
    t = table([GroupSpend(("b",), cost=D(1)), GroupSpend(("a",), cost=D(1)),
               GroupSpend(("c",), cost=D(2))])
    steps.add_showback(t)
    steps.add_charge(t)
    assert [r["team"] for r in steps.finish(t, "x").rows] == ["c", "a", "b"]


def row(team: str, status: str, calls: int, tokens: tuple[int, int], cost: str) -> SpendRow:
    return SpendRow((team,), "openai", "gpt-4o", status, calls, 0, tokens[0], tokens[1], 0, 0, 0,
                    D(cost))


def test_spend_report_runs_the_steps_in_order() -> None:
    """cost-plus with shared costs: the shared costs are prorated by the marked-up charge."""
    from spanledger.reports.shared_costs import SharedCosts

    rows = [row("a", "priced", 2, (100, 10), "1"), row("b", "priced", 1, (50, 5), "3"),
            row("b", "unpriced", 1, (7, 3), "0")]
    shared = SharedCosts("s.yaml", {(2026, 10): {"gpu": D(8)}}, {})
    report = spend_report(rows, SpendOptions(OCTOBER, model="cost-plus", markup=D("0.5"),
                                             shared=shared))
    assert [c.key for c in report.columns][-4:] == ["markup", "shared_share", "shared_cost",
                                                    "charge"]
    by = {r["team"]: r for r in report.rows}
    assert by["b"]["markup"] == D("1.5") and by["b"]["shared_cost"] == D(6)
    assert by["b"]["charge"] == D("10.5") and by["a"]["charge"] == D("3.5")
    assert report.total is not None and report.total["charge"] == D(14)
    assert report.meta["period"] == {"start": "2026-10-01", "end": "2026-10-31",
                                     "label": "2026-10"}


def test_spend_report_needs_the_repriced_calls_for_a_snapshot() -> None:
    with pytest.raises(ValueError, match="needs the re-priced calls"):
        spend_report([], SpendOptions(OCTOBER, snapshot=dt.date(2026, 10, 1)))


def _row(group: tuple[str, ...], model: str, cost: str, status: str = "priced",
         tokens: int = 100) -> SpendRow:
    return SpendRow(group, "openai", model, status, 1, 0, tokens, 0, 0, 0, 0, D(cost))


def test_by_environment_splits_cost_and_drops_the_environment_from_the_group() -> None:
    rows = [_row(("a", "prod"), "gpt-4o", "2"), _row(("a", "dev"), "gpt-4o", "1"),
            _row(("a", "dev"), "mystery", "0", status="unpriced")]
    keyed, envs = steps.by_environment(rows, ("team",))
    assert {r.group for r in keyed} == {("a",)}
    assert envs == {("a",): {"prod": D(2), "dev": D(1)}}


def test_gpu_served_models_lose_their_per_token_cost_but_keep_their_tokens() -> None:
    from spanledger.reports.gpu_costs import GpuCosts, Pool

    gpu = GpuCosts("g.yaml", (Pool("p", "L4", 1, None, None, D(100), ("llama-*",), "tokens"),))
    rows = steps.without_gpu_models([_row(("a",), "llama-3", "5", status="unpriced", tokens=7),
                                     _row(("a",), "gpt-4o", "2")], gpu)
    assert [(r.model, r.status, r.cost, r.input_tokens) for r in rows] == [
        ("llama-3", "priced", D(0), 7), ("gpt-4o", "priced", D(2), 100)]


def test_fixed_step_charges_the_price_and_shows_the_margin() -> None:
    from spanledger.reports.fixed_prices import FixedPrices

    t = table()
    steps.add_fixed(t, FixedPrices("f.yaml", ("team",), {("support",): D(10)}, "zero"), OCTOBER)
    assert t.charges == [D(0), D(10), D(0)]
    assert column(t, "margin") == [D("-1.80"), D(-4), D("-0.20")]
    assert column(t, "fixed_price") == [None, D(10), None]
