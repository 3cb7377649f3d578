"""A user's mistake is exit 2 and one line naming it; no data is an empty report, exit 0."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from support.reports import load_store, run_cli

SPEND = ["report", "spend"]


def one_line_error(argv: list[str]) -> str:
    code, out, err = run_cli(argv)
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert out == ""
    return lines[0]


@pytest.mark.parametrize(("argv", "expected"), [
    (["--by", "team,colour"], "--by: unknown dimension 'colour'"),
    (["--by", "team,team"], "--by: dimension repeated"),
    (["--period", "2026-13"], "--period: expected a month YYYY-MM, got '2026-13'"),
    (["--period", "last month"], "--period: expected a month YYYY-MM"),
    (["--from", "2026-10-01", "--to", "2026-10-32"], "--to: expected a date YYYY-MM-DD"),
    (["--from", "2026-10-05"], "--from and --to must be given together"),
    (["--from", "2026-10-05", "--to", "2026-10-01"], "is before --from"),
    (["--period", "2026-10", "--from", "2026-10-01", "--to", "2026-10-02"], "cannot be combined"),
    (["--snapshot-prices", "2026/10/01"], "--snapshot-prices: expected a date YYYY-MM-DD"),
    (["--model", "cost-plus", "--markup", "-0.1"], "--markup must not be negative"),
    (["--model", "cost-plus", "--markup", "lots"], "--markup: expected a number"),
    (["--markup", "0.1"], "--markup applies to --model cost-plus only"),
    (["--model", "proportional"], "--model proportional needs --invoice-total AMOUNT"),
    (["--model", "proportional", "--invoice-total", "-5"], "--invoice-total must not be negative"),
    (["--model", "budget"], "--model budget needs --budgets FILE"),
    (["--model", "flat-rate"], "--model: unknown model 'flat-rate'"),
    (["--model", "fixed"], "--model fixed needs --fixed-prices FILE"),
    (["--model", "hybrid"], "--model hybrid needs --hybrid FILE"),
    (["--model", "proportional", "--invoice-total", "1", "--invoice", "x.json"],
     "needs --invoice-total AMOUNT or --invoice FILE (one of them)"),
    (["--invoice", "x.json"], "--invoice applies to --model proportional only"),
    (["--gpu-costs", "g.yaml", "--snapshot-prices", "2026-10-01"],
     "--snapshot-prices does not apply with --gpu-costs"),
    (["--format", "xml"], "--format: unknown format 'xml'"),
    (["--as-of", "2026-10-10"], "--as-of applies to --model budget only"),
])
def test_bad_flags(argv: list[str], expected: str) -> None:
    assert expected in one_line_error([*SPEND, *argv])


def test_bad_traces_flags() -> None:
    assert "--top must be at least 1" in one_line_error(["report", "traces", "--top", "0"])
    assert "--period: expected a month" in one_line_error(["report", "traces", "--period", "x"])


@pytest.mark.parametrize(("text", "expected"), [
    (None, "b.yaml: file not found"),
    ("by: feature\nbudgets: [\n", "b.yaml:3: invalid YAML"),
    ("budgets: []\n", "b.yaml:1: by: required key is missing"),
    ("by: feature\nbudgets:\n  - feature: rag\n", "b.yaml:3: budgets[0].monthly: required key"),
    ("by: feature\nbudgets:\n  - feature: rag\n    monthly: lots\n",
     "b.yaml:4: budgets[0].monthly: expected a number, got 'lots'"),
    ("by: feature\nbudgets:\n  - feature: rag\n    monthly: 0\n", "monthly: must be > 0"),
    ("by: feature\nbudgets:\n  - feature: rag\n    monthly: 5\n    limit: 3\n",
     "b.yaml:5: budgets[0].limit: unknown key"),
    ("by: team\nbudgets: []\n", "budgets are keyed by team but the report is --by feature"),
    ("by: feature\nbudgets:\n  - {feature: a, monthly: 1}\n  - {feature: a, monthly: 2}\n",
     "duplicate budget for a"),
])
def test_bad_budgets_file(tmp_path: Path, text: str | None, expected: str) -> None:
    path = tmp_path / "b.yaml"
    if text is not None:
        path.write_text(text)
    line = one_line_error([*SPEND, "--model", "budget", "--by", "feature", "--budgets", str(path)])
    assert expected in line


@pytest.mark.parametrize(("text", "expected"), [
    (None, "s.yaml: file not found"),
    ("months:\n  2026-10: {gateway: -1}\n", "s.yaml:2: months.2026-10.gateway: must be >= 0"),
    ("months:\n  October: {gateway: 1}\n", "expected a month YYYY-MM, got 'October'"),
    ("months:\n  2026-10: 500\n", "expected a mapping of cost item"),
    ("gateway: 500\n", "s.yaml:1: gateway: unknown key"),
    ("{}\n", "needs 'months'"),
])
def test_bad_shared_costs_file(tmp_path: Path, text: str | None, expected: str) -> None:
    path = tmp_path / "s.yaml"
    if text is not None:
        path.write_text(text)
    assert expected in one_line_error([*SPEND, "--shared-costs", str(path)])


def test_bad_url_is_usage_error() -> None:
    assert "storage URL 'ftp://nowhere'" in one_line_error([*SPEND, "--url", "ftp://nowhere"])


@pytest.mark.parametrize("argv", [[*SPEND], ["report", "traces"], ["report", "unit-economics"],
                                  ["quarantine", "list"]])
def test_a_reader_never_creates_a_store(tmp_path: Path, argv: list[str]) -> None:
    """A typo in --url is named, not answered with an empty report in a new directory."""
    missing = tmp_path / "typo" / "store"
    line = one_line_error([*argv, "--url", f"chdb://{missing}"])
    assert line.endswith(f"no store at {missing}: nothing was ever written there "
                         "(check --url, or start the collector or `spanledger demo`)")
    assert not (tmp_path / "typo").exists()


def test_markup_without_its_percent_sign_is_refused(tmp_path: Path) -> None:
    """``--markup 15`` is a 15% typed without its sign far more often than a 1500% markup."""
    assert one_line_error([*SPEND, "--model", "cost-plus", "--markup", "15"]).endswith(
        "--markup: 15 would be a 1500% markup; write 15% (or 0.15) for 15 percent, "
        "or 1500% if you mean it")
    hybrid = tmp_path / "h.yaml"
    hybrid.write_text("environments:\n  prod: {model: cost-plus, markup: 15}\n")
    assert one_line_error([*SPEND, "--model", "hybrid", "--hybrid", str(hybrid)]).endswith(
        "h.yaml:2: environments.prod.markup: markup is a fraction (0.15 = 15%), at most 1; "
        "got 15")


def test_empty_store_gives_empty_reports(tmp_path: Path) -> None:
    url = load_store(tmp_path / "store", [])
    code, out, err = run_cli([*SPEND, "--url", url, "--period", "2026-10"])
    assert code == 0, err
    assert "(no data in this period)" in out
    assert next(line for line in out.splitlines() if line.startswith("TOTAL")).split()[1:] == [
        "0", "0", "0", "0", "0", "0", "0.0000", "0.0000"]  # LLM, tool, vector-DB calls, ...
    code, out, _ = run_cli([*SPEND, "--url", url, "--format", "json", "--model", "proportional",
                            "--invoice-total", "100"])
    assert code == 0
    doc = json.loads(out)
    assert doc["rows"] == [] and doc["total"]["charge"] == "0.000000000000"
    assert any("not allocated" in n for n in doc["notes"])
    code, out, _ = run_cli([*SPEND, "--url", url, "--format", "csv"])
    assert code == 0 and out.strip().startswith("team,calls")
    code, out, _ = run_cli(["report", "traces", "--url", url, "--format", "json"])
    assert code == 0 and json.loads(out)["rows"] == []


def test_store_without_tables_gives_empty_report(tmp_path: Path) -> None:
    (tmp_path / "never-written").mkdir()
    url = f"chdb://{tmp_path / 'never-written'}"
    code, out, err = run_cli([*SPEND, "--url", url, "--format", "json"])
    assert code == 0, err
    doc = json.loads(out)
    assert doc["rows"] == [] and doc["total"]["cost"] == "0.000000000000"
    assert "no spanledger tables" in doc["notes"][0]
    code, out, err = run_cli(["report", "traces", "--url", url])
    assert code == 0, err
    assert "no spanledger tables" in out


def test_example_files_load() -> None:
    from spanledger.reports.budgets import load_budgets
    from spanledger.reports.period import parse_month
    from spanledger.reports.shared_costs import load_shared_costs
    from spanledger.resources import data_dir

    budgets = load_budgets(data_dir("collector-config") / "budgets.example.yaml",
                           ("feature", "team"))
    # the example is sized to the demo's teams and features (spanledger demo burns it)
    assert budgets.entries[("docs-qa", "search")].hard_stop_percent == 110
    assert budgets.entries[("", "")].monthly == Decimal("0.02")
    shared = load_shared_costs(data_dir("collector-config") / "shared-costs.example.yaml")
    assert sum(shared.for_period(parse_month("2026-10")).values()) == 11570
    assert sum(shared.for_period(parse_month("2027-02")).values()) == 11620


def test_unwritable_output_is_usage_error(tmp_path: Path) -> None:
    url = load_store(tmp_path / "store", [])
    line = one_line_error([*SPEND, "--url", url, "--output", str(tmp_path / "no" / "dir.csv")])
    assert "--output: cannot write" in line


def test_locked_store_is_one_line_exit_1(tmp_path: Path) -> None:
    """Another process holds the store and serves no SQL: one line, exit 1 (not a traceback)."""
    import subprocess
    import sys

    path = tmp_path / "store"
    load_store(path, [])
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, chdb.session as s; x = s.Session(sys.argv[1]); "
         "print('ready', flush=True); sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        code, out, err = run_cli([*SPEND, "--url", f"chdb://{path}"])
        assert code == 1 and out == ""
        assert len(err.strip().splitlines()) == 1 and "spanledger report: error:" in err
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
