"""Chargeback from the bill and the files finance writes: the invoice split line by line,
fixed prices, per-environment hybrid rules, and GPU pools of self-hosted models.

Every case checks the one promise finance relies on: the rows add up to the total,
to the cent on display and exactly in the JSON.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from support.reports import (
    assert_rows_sum_to_total,
    llm_span,
    load_store,
    october_spans,
    run_cli,
)

D = Decimal
NOV = dt.datetime(2026, 11, 5, 12, tzinfo=dt.UTC)


def spend(url: str, period: str, *extra: str) -> dict[str, Any]:
    code, out, err = run_cli(["report", "spend", "--url", url, "--period", period,
                              "--format", "json", *extra])
    assert code == 0, err
    return json.loads(out)


def by_team(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["team"]: r for r in doc["rows"]}


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# -- proportional, line by line ------------------------------------------------------------

def _two_models() -> list[dict[str, Any]]:
    s = [llm_span(trace=f"c{i}", ts=NOV, team="cheap", model="gpt-4o-mini", input_tokens=1000,
                  output_tokens=200, cost="0.0003") for i in range(10)]
    s += [llm_span(trace=f"r{i}", ts=NOV, team="rich", model="gpt-4o", input_tokens=1000,
                   output_tokens=200, cost="0.0045") for i in range(2)]
    s += [llm_span(trace="b1", ts=NOV, team="both", model="gpt-4o-mini", input_tokens=1000,
                   output_tokens=200, cost="0.0003"),
          llm_span(trace="b2", ts=NOV, team="both", model="gpt-4o", input_tokens=1000,
                   output_tokens=200, cost="0.0045")]
    return s


def _costs_export(items: list[tuple[str, str]]) -> str:
    start = int(dt.datetime(2026, 11, 5, tzinfo=dt.UTC).timestamp())
    results = ",\n".join(
        f'{{"object": "organization.costs.result", "amount": {{"value": {amount}, '
        f'"currency": "usd"}}, "line_item": "{item}", "project_id": "proj_1"}}'
        for item, amount in items)
    return (f'{{"object": "page", "data": [{{"object": "bucket", "start_time": {start}, '
            f'"end_time": {start + 86400}, "results": [\n{results}]}}], "has_more": false}}')


def test_invoice_lines_are_split_per_model_to_the_cent(tmp_path: Path) -> None:
    url = load_store(tmp_path / "store", _two_models())
    invoice = _write(tmp_path, "costs.json", _costs_export([
        ("gpt-4o-mini-2024-07-18, input", "6.001"), ("gpt-4o-mini-2024-07-18, output", "4.002"),
        ("gpt-4o-2024-08-06, input", "60.004"), ("gpt-4o-2024-08-06, output", "29.999"),
        ("gpt-4.1-2025-04-14, input", "1.0")]))
    doc = spend(url, "2026-11", "--model", "proportional", "--invoice", invoice)
    rows = by_team(doc)
    # 101.006 -> 101.01; lines 10.00 (mini), 90.01 (gpt-4o), 1.00 (gpt-4.1, nobody's)
    assert D(rows["cheap"]["charge"]) == D("9.09")  # 12,000 of 13,200 mini tokens: no gpt-4o
    assert D(rows["rich"]["charge"]) == D("60.01")  # 2,400 of 3,600 gpt-4o tokens
    assert D(rows["both"]["charge"]) == D("30.91")  # 0.91 of mini + 30.00 of gpt-4o
    assert D(rows["(not metered)"]["charge"]) == D("1.00")
    assert D(doc["total"]["charge"]) == D("101.01") == D(doc["invoice_total"])
    assert_rows_sum_to_total(doc)
    assert {(x["model"], x["amount"], x["allocated"]) for x in doc["invoice_lines"]} == {
        ("gpt-4o-mini", "10.00", True), ("gpt-4o", "90.01", True), ("gpt-4.1", "1.00", False)}
    assert any("1.00 USD on lines no metered call used (openai/gpt-4.1)" in n
               for n in doc["notes"])
    # the single-total split would have charged the cheap team for gpt-4o
    total = spend(url, "2026-11", "--model", "proportional", "--invoice-total", "101.01")
    assert D(by_team(total)["cheap"]["charge"]) > D(40)


def test_invoice_from_the_sample_exports_sums_to_the_bill(tmp_path: Path) -> None:
    from support.reconcile import cloud_calls_of_day, samples_dir, spans

    url = load_store(tmp_path / "store", spans() + spans(cloud_calls_of_day()))
    files = [str(samples_dir() / n) for n in ("openai-costs.json", "anthropic-cost-report.json",
                                              "focus-aws-bedrock.csv")]
    argv = [x for f in files for x in ("--invoice", f)]
    doc = spend(url, "2026-11", "--model", "proportional", *argv)
    assert_rows_sum_to_total(doc)
    assert D(doc["total"]["charge"]) == D(doc["invoice_total"])
    code, _, err = run_cli(["report", "spend", "--url", url, "--period", "2026-11", "--model",
                            "proportional", "--invoice",
                            str(samples_dir() / "openai-usage-completions.json")])
    assert code == 2 and "counts tokens but has no amounts" in err


# -- fixed -----------------------------------------------------------------------------------

FIXED = """\
by: team
prices:
  - {team: support, monthly: 12.00}
  - {team: search, monthly: 5}
  - {team: legal, monthly: 3.00}
"""


def test_fixed_prices_margin_and_rows_sum(tmp_path: Path) -> None:
    url = load_store(tmp_path / "store", october_spans())
    fixed = _write(tmp_path, "fixed.yaml", FIXED)
    doc = spend(url, "2026-10", "--model", "fixed", "--fixed-prices", fixed)
    rows = by_team(doc)
    assert (D(rows["support"]["charge"]), D(rows["support"]["margin"])) == (D(12), D(-2))
    assert (D(rows["search"]["charge"]), D(rows["search"]["margin"])) == (D(5), D("3.20"))
    assert (D(rows["legal"]["charge"]), D(rows["legal"]["margin"])) == (D(3), D(3))  # no spend
    assert (D(rows["(unattributed)"]["charge"]), D(rows["(unattributed)"]["margin"])) == (
        D("0.20"), D(0))  # unlisted: charged its actual cost
    assert D(doc["total"]["charge"]) == D("20.20") == D(doc["total"]["cost"]) + D(
        doc["total"]["margin"])
    assert_rows_sum_to_total(doc)
    # a partial month: each price prorated by days, rows still add up exactly
    part = json.loads(run_cli(["report", "spend", "--url", url, "--from", "2026-10-01", "--to",
                               "2026-10-10", "--format", "json", "--model", "fixed",
                               "--fixed-prices", fixed])[1])
    assert D(by_team(part)["support"]["fixed_price"]) == D("3.870967741935")
    assert_rows_sum_to_total(part)
    code, out, _ = run_cli(["report", "spend", "--url", url, "--period", "2026-10", "--model",
                            "fixed", "--fixed-prices", fixed])
    assert code == 0 and "platform margin +4.20 USD" in out


# -- hybrid ----------------------------------------------------------------------------------

HYBRID = """\
environments:
  prod: {model: cost-plus, markup: 0.10}
  staging: {model: showback}
default: {model: chargeback}
"""


def test_hybrid_showback_for_staging_cost_plus_for_prod(tmp_path: Path) -> None:
    url = load_store(tmp_path / "store", october_spans())
    plan = _write(tmp_path, "hybrid.yaml", HYBRID)
    doc = spend(url, "2026-10", "--model", "hybrid", "--hybrid", plan)
    rows = by_team(doc)
    assert D(rows["support"]["charge"]) == D("15.40")  # 14.00 prod + 10%
    assert D(rows["search"]["markup"]) == D("0.18")
    staging = rows["(unattributed)"]  # the batch job runs in staging
    assert (D(staging["shown"]), D(staging["charge"])) == (D("0.20"), D(0))
    assert D(doc["total"]["charge"]) == D("17.38")
    for r in doc["rows"]:  # shown + charged is the actual cost, exactly
        assert D(r["shown"]) + D(r["charged_cost"]) == D(r["cost"])
    assert_rows_sum_to_total(doc)
    by_env = spend(url, "2026-10", "--model", "hybrid", "--hybrid", plan, "--by",
                   "environment")
    assert {r["environment"]: D(r["charge"]) for r in by_env["rows"]} == {
        "prod": D("17.38"), "staging": D(0)}


# -- GPU pools --------------------------------------------------------------------------------

GPU = """\
pools:
  - pool: llama
    gpu: L40S
    gpus: 2
    hourly: 2.30
    models: [acme-llama-*]
  - pool: embed
    gpu: A10G
    monthly: 310
    models: [bge-*]
"""


def _llama() -> list[dict[str, Any]]:
    day = dt.datetime(2026, 10, 7, 9, tzinfo=dt.UTC)
    s = [llm_span(trace=f"l{i}", ts=day, team="contracts", model="acme-llama-3.1-70b",
                  input_tokens=9000, output_tokens=1000, cost="0.004", duration_ms=2000)
         for i in range(3)]
    s.append(llm_span(trace="l9", ts=day, team="support", model="acme-llama-3.1-70b",
                      input_tokens=9000, output_tokens=1000, cost="0.004", duration_ms=6000))
    return s


def test_gpu_pool_is_shared_by_tokens_and_added_to_the_charge(tmp_path: Path) -> None:
    url = load_store(tmp_path / "store", october_spans() + _llama())
    gpu = _write(tmp_path, "gpu.yaml", GPU)
    doc = spend(url, "2026-10", "--gpu-costs", gpu)
    rows = by_team(doc)
    pool = D("2.30") * 2 * 24 * 31  # reserved all of October: 3,422.40
    assert D(rows["contracts"]["gpu_cost"]) == pool * 3 / 4
    assert D(rows["support"]["gpu_cost"]) == pool / 4
    # the llama calls' per-token price (0.004 each) is not counted beside the GPUs
    assert D(rows["contracts"]["cost"]) == 0 and D(rows["support"]["cost"]) == D("14.00")
    assert D(rows["support"]["charge"]) == D("14.00") + pool / 4
    assert D(rows["(idle GPU)"]["gpu_cost"]) == D(310)
    assert D(doc["total"]["gpu_cost"]) == pool + 310
    assert_rows_sum_to_total(doc)


def test_report_gpu_by_span_seconds(tmp_path: Path) -> None:
    url = load_store(tmp_path / "store", _llama())
    gpu = _write(tmp_path, "gpu.yaml", GPU.replace("    models: [acme-llama-*]",
                                                   "    models: [acme-llama-*]\n"
                                                   "    allocate_by: span_seconds"))
    code, out, err = run_cli(["report", "gpu", "--gpu-costs", gpu, "--url", url, "--period",
                              "2026-10", "--format", "json"])
    assert code == 0, err
    doc = json.loads(out)
    got = {(r["pool"], r["team"]): (D(r["gpu_cost"]), r["share"] and D(r["share"]))
           for r in doc["rows"]}
    assert got == {("llama", "contracts"): (D("1711.2"), D(50)),  # 3 calls x 2 s
                   ("llama", "support"): (D("1711.2"), D(50)),  # 1 call x 6 s
                   ("embed", "(idle GPU)"): (D(310), None)}
    assert D(doc["total"]["gpu_cost"]) == D("3732.4")
    assert_rows_sum_to_total(doc)


@pytest.mark.parametrize(("flag", "name", "text", "expected"), [
    ("--fixed-prices", "f.yaml", "by: team\nprices:\n  - {team: a, monthly: 0}\n",
     "f.yaml:3: prices[0].monthly: must be > 0"),
    ("--fixed-prices", "f.yaml", "by: feature\nprices:\n  - {feature: a, monthly: 1}\n",
     "fixed prices are keyed by feature but the report is --by team"),
    ("--hybrid", "h.yaml", "environments:\n  prod: {model: cost-plus}\n",
     "h.yaml:2: environments.prod.markup: cost-plus needs a markup"),
    ("--hybrid", "h.yaml", "environments:\n  prod: {model: free}\n",
     "h.yaml:2: environments.prod.model: expected one of: showback, chargeback, cost-plus"),
    ("--gpu-costs", "g.yaml",
     "pools:\n  - {pool: p, gpu: x, hourly: 1, monthly: 2, models: [m]}\n",
     "g.yaml:2: pools[0]: give exactly one of hourly"),
    ("--gpu-costs", "g.yaml", "pools:\n  - {pool: p, gpu: x, monthly: 2, models: []}\n",
     "g.yaml:2: pools[0].models: name the models the pool serves"),
])
def test_bad_chargeback_files(tmp_path: Path, flag: str, name: str, text: str,
                              expected: str) -> None:
    path = _write(tmp_path, name, text)
    model = {"--fixed-prices": ["--model", "fixed"], "--hybrid": ["--model", "hybrid"]}.get(
        flag, [])
    code, out, err = run_cli(["report", "spend", "--url", f"chdb://{tmp_path}/s", *model, flag,
                              path])
    assert code == 2 and out == ""
    assert expected in err.splitlines()[0], err


def test_example_files_load() -> None:
    from spanledger.reports.fixed_prices import load_fixed_prices
    from spanledger.reports.gpu_costs import load_gpu_costs
    from spanledger.reports.hybrid import load_hybrid
    from spanledger.resources import data_dir

    folder = data_dir("collector-config")
    assert load_fixed_prices(folder / "fixed-prices.example.yaml").monthly[("support",)] == 60
    assert load_hybrid(folder / "hybrid.example.yaml").rule("staging").model == "showback"
    pools = load_gpu_costs(folder / "gpu-costs.example.yaml").pools
    assert [p.name for p in pools] == ["llama-70b", "embeddings"]


def test_gpu_pool_with_hybrid_counts_the_llama_calls_once(tmp_path: Path) -> None:
    url = load_store(tmp_path / "store", october_spans() + _llama())
    gpu = _write(tmp_path, "gpu.yaml", GPU)
    plan = _write(tmp_path, "hybrid.yaml", HYBRID)
    doc = spend(url, "2026-10", "--model", "hybrid", "--hybrid", plan, "--gpu-costs", gpu)
    contracts = by_team(doc)["contracts"]  # prod llama calls: GPU share only, no markup on 0.004s
    assert (D(contracts["charged_cost"]), D(contracts["markup"])) == (D(0), D(0))
    assert D(contracts["charge"]) == D("2.30") * 2 * 24 * 31 * 3 / 4
    assert_rows_sum_to_total(doc)
