"""``spanledger reconcile`` on the shipped sample exports: every injected difference found and
explained exactly, the rest tied out, and the exit code finance scripts rely on.

The spans are the scenario of ``tests/support/reconcile.py`` written into a real
embedded store; the exports are the files in ``collector-config/reconcile-samples/``.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from spanledger.reconcile.readers import read_exports
from spanledger.reconcile.report import ReconcileOptions, Result, reconcile, summary_report
from spanledger.store import open_store
from support.reconcile import (
    FT_PRICES,
    LEGACY,
    LEGACY_DAY,
    SONNET_DISCOUNT,
    call_cost,
    calls_of_day,
    cloud_calls_of_day,
    samples_dir,
    spans,
    write_samples,
)
from support.reports import load_store, run_cli

D = Decimal
SAMPLES = sorted(str(p) for p in samples_dir().iterdir())


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    everything = spans() + spans(cloud_calls_of_day())
    return load_store(tmp_path_factory.mktemp("rec") / "store", everything)


@pytest.fixture(scope="module")
def result(store_url: str) -> Result:
    with open_store(store_url, read_only=True) as store:
        return reconcile(store, ReconcileOptions(tuple(SAMPLES)))


def _rows(res: Result, provider: str, model: str, day: dt.date | None = None) -> dict[str, object]:
    return {r.token_type: r for r in res.rows
            if r.provider == provider and r.model == model and (day is None or r.day == day)}


def test_shipped_samples_are_what_the_scenario_writes(tmp_path: Path) -> None:
    written = write_samples(tmp_path)
    assert sorted(p.name for p in written) == sorted(Path(s).name for s in SAMPLES)
    for path in written:
        assert path.read_text() == (samples_dir() / path.name).read_text(), path.name


def test_missing_service_is_found_in_tokens_and_explained_to_the_cent(result: Result) -> None:
    rows = _rows(result, "openai", "gpt-4o-mini", LEGACY_DAY)
    inp, out = rows["input"], rows["output"]
    assert (inp.bill.tokens, inp.metered.all_tokens) == (309_760, 9_760)
    assert inp.variance == D("0.045")  # 300,000 x $0.15 / Mtok
    assert inp.reason == ("not metered: 300,000 tokens on the bill have no span "
                          "(calls from services without spanledger)")
    assert out.variance == D("0.036") and out.token_variance == LEGACY.output
    assert out.reason.startswith("not metered: 60,000 tokens")
    assert inp.unexplained == out.unexplained == 0
    # the other days of the same model tie out with no reason at all
    for day in (dt.date(2026, 11, 1), dt.date(2026, 11, 3)):
        assert all(r.reason == "" for r in _rows(result, "openai", "gpt-4o-mini", day).values())


def test_unpriced_model_is_billed_and_explained(result: Result) -> None:
    rows = _rows(result, "openai", "acme-intent-ft-v2", dt.date(2026, 11, 1))
    assert rows["input"].bill.amount == 6000 * FT_PRICES["input"] / 1_000_000
    assert rows["input"].metered.cost == 0
    assert rows["input"].reason == ("unpriced model: 20 calls (6,000 tokens) have no price in "
                                    "the catalog or the prices file")
    assert rows["output"].reason.startswith("unpriced model: 20 calls (100 tokens)")


def test_missing_discount_is_named_with_its_percentage(result: Result) -> None:
    rows = [r for r in result.rows if r.model == "claude-sonnet-4-5" and r.provider == "anthropic"]
    assert {r.token_type for r in rows} == {"input", "cache_read", "output"}
    for r in rows:
        assert r.reason == ("discount missing from the overrides: billed 8% below the metered "
                            "price (discount_percent: 8 for anthropic claude-sonnet-4-5)")
        assert r.unexplained == 0
    explained = sum((e.amount for r in rows for e in r.explanations), D(0))
    metered = sum((r.metered.cost for r in rows), D(0))
    assert explained == -metered * SONNET_DISCOUNT / 100


def test_anthropic_amounts_are_cents(result: Result) -> None:
    sonnet = _rows(result, "anthropic", "claude-sonnet-4-5", dt.date(2026, 11, 1))["input"]
    assert sonnet.bill.amount == D("0.0331")  # "3.31" cents in the file
    # metered 12,000 tokens x $3 / Mtok = $0.036: a 100x reading would be $3.31
    assert sonnet.metered.cost == D("0.036")


def test_cloud_focus_rows_tie_out_by_model_name_matching(result: Result) -> None:
    for provider, model in (("aws", "claude-sonnet-4-5"), ("azure", "gpt-4o-mini"),
                            ("google", "gemini-2.5-flash")):
        rows = [r for r in result.rows if (r.provider, r.model) == (provider, model)]
        assert len(rows) == 6, provider  # 3 days x input, output
        for r in rows:
            assert r.bill.tokens == r.metered.all_tokens and r.reason == "", (provider, r)
            assert abs(r.variance) <= D("1e-10"), (provider, r.variance)  # the file's digits
    assert any("3 rows of other services left out" in n for n in result.notes)


def test_summary_causes_add_up_to_billed_minus_metered(result: Result) -> None:
    report = summary_report(result)
    by = {(r["provider"], r["cause"]): r["amount"] for r in report.rows}
    assert by[("openai", "calls not metered (services without spanledger)")] == D("0.081")
    assert by[("openai", "unpriced model")] == 3 * (6000 * FT_PRICES["input"]
                                                   + 100 * FT_PRICES["output"]) / 1_000_000
    assert sum(report.rows[i]["amount"] for i in range(len(report.rows))) == (
        result.billed - result.metered)
    assert result.unexplained == 0 and result.exit_code == 0


def test_cli_json_ties_out_and_exits_0(store_url: str) -> None:
    code, out, _ = run_cli(["reconcile", *SAMPLES, "--url", store_url, "--format", "json"])
    assert code == 0
    doc = json.loads(out)
    assert doc["ties_out"] is True and doc["unexplained"] == "0"
    day2 = [r for r in doc["rows"] if r["day"] == "2026-11-02" and r["token_type"] == "input"
            and r["model"] == "gpt-4o-mini-2024-07-18"]
    assert day2[0]["variance"] == "0.045000000000"
    assert doc["total"]["billed"] == f"{result_billed(doc):f}"


def result_billed(doc: dict[str, object]) -> Decimal:
    rows = doc["rows"]
    assert isinstance(rows, list)
    return sum((D(r["billed"]) for r in rows if r["billed"] is not None), D(0)).quantize(
        D("1e-12"))


def test_cost_export_alone_cannot_see_the_missing_service_and_exits_1(store_url: str) -> None:
    costs = str(samples_dir() / "openai-costs.json")
    code, out, _ = run_cli(["reconcile", costs, "--url", store_url, "--format", "json"])
    assert code == 1
    doc = json.loads(out)
    flagged = {(r["day"], r["token_type"]) for r in doc["rows"] if "(unexplained)" in r["reason"]}
    assert flagged == {("2026-11-02", "input"), ("2026-11-02", "output")}
    assert doc["ties_out"] is False
    # a generous tolerance lets the same bill pass
    code, _, _ = run_cli(["reconcile", costs, "--url", store_url, "--tolerance", "40%"])
    assert code == 0


def test_period_narrows_both_sides(store_url: str) -> None:
    code, out, _ = run_cli(["reconcile", *SAMPLES, "--url", store_url, "--format", "json",
                            "--from", "2026-11-03", "--to", "2026-11-03"])
    assert code == 0
    assert {r["day"] for r in json.loads(out)["rows"]} == {"2026-11-03"}


def test_every_metered_call_is_compared_once(result: Result) -> None:
    """Nothing lost, nothing counted twice: the metered column is every priced span's cost."""
    expected = D(0)
    for day in (dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3)):
        for c in [*calls_of_day(), *cloud_calls_of_day()]:
            parts = call_cost(c, day)
            if parts is not None:
                expected += sum(parts, D(0)) * c.n
    assert result.metered == expected
    exports = read_exports(SAMPLES)
    assert {e.format for e in exports} == {"openai-costs", "openai-usage", "anthropic-cost",
                                           "anthropic-usage", "focus"}
