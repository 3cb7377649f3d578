"""``report spend --format focus`` passes the FinOps Foundation's own ``focus-validator``.

The validator's releases that know FOCUS 1.2 / 1.3 need Python >= 3.12, so it lives in
its own venv (``.venv-focus``, made by ``.ci/run``; or set ``SPANLEDGER_FOCUS_VALIDATOR`` to
its ``focus-validator`` executable). Offline it validates against the rules it ships
(FOCUS 1.2; the 1.3 rules are a download): our export carries the 1.3 columns beside
them, which 1.2 allows, and ``support/focus_spec.py`` checks the 1.3 rules themselves.
Without the validator the test is skipped locally; ``.ci/run`` makes it required.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
from pathlib import Path

import pytest

from support.reconcile import cloud_calls_of_day, spans
from support.reports import load_store, run_cli

ROOT = Path(__file__).resolve().parent.parent
VERSION = "1.2.0.1"  # the newest rule set the validator ships (offline)
#: read at import: the suite's fixtures clear SPANLEDGER_* before each test
GIVEN = os.environ.get("SPANLEDGER_FOCUS_VALIDATOR")
REQUIRED = bool(os.environ.get("SPANLEDGER_REQUIRE_FOCUS_VALIDATOR"))


def _validator() -> Path | None:
    path = Path(GIVEN) if GIVEN else ROOT / ".venv-focus" / "bin" / "focus-validator"
    if path.is_file():
        return path
    if GIVEN or REQUIRED:
        pytest.fail(f"focus-validator not found at {path}")
    pytest.skip("focus-validator is not installed (.venv-focus: see .ci/run)")
    return None


def validate(validator: Path, csv_file: Path) -> str:
    # it reads its currency list from a path relative to the working directory: run it
    # from its own site-packages
    site = subprocess.run(
        [str(validator.parent / "python"), "-c",
         "import focus_validator, pathlib; print(pathlib.Path(focus_validator.__file__)"
         ".parent.parent)"], capture_output=True, text=True, check=True).stdout.strip()
    run = subprocess.run(
        [str(validator), "--data-file", str(csv_file), "--validate-version", VERSION,
         "--block-download", "--output-type", "console"],
        capture_output=True, text=True, cwd=site, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout + run.stderr


#: the validator's 1.2.0.1 model gives InvoiceId-C-004-C ("MUST be null when not on an
#: invoice") and -C-005-C ("MUST NOT be null when on one") no condition, so every row fails
#: one of them: a file with InvoiceId fails C-004, a file without it fails the Recommended
#: column check and the whole InvoiceId family. Our rows are on a provisional invoice (the
#: period's chargeback statement), so C-005 is the rule that applies.
KNOWN_CONTRADICTION = {"InvoiceId-C-004-C"}


def failed_rules(output: str) -> set[str]:
    return set(re.findall(r"^\S*\s*([A-Za-z]+-[A-Z]-\d{3}-[A-Z]): FAIL", output, re.M))


def summary(output: str) -> dict[str, int]:
    found = re.search(r"Total: (\d+) \| Pass: (\d+) \| Fail: (\d+) \| Skipped: (\d+)", output)
    assert found, output[-3000:]
    return dict(zip(("total", "pass", "fail", "skipped"), map(int, found.groups()), strict=True))


def test_export_passes_focus_validator(tmp_path: Path) -> None:
    validator = _validator()
    assert validator is not None
    url = load_store(tmp_path / "store", spans() + spans(cloud_calls_of_day()))
    code, out, err = run_cli(["report", "spend", "--url", url, "--period", "2026-11",
                              "--format", "focus"])
    assert code == 0, err
    export = tmp_path / "focus.csv"
    export.write_text(out)
    assert len(out.splitlines()) > 50
    output = validate(validator, export)
    result = summary(output)
    assert failed_rules(output) == KNOWN_CONTRADICTION, output[-6000:]
    assert result["fail"] == len(KNOWN_CONTRADICTION)
    assert result["pass"] >= 100  # the rules ran: not everything skipped
    assert "InvoiceId-C-005-C: PASS" in output  # our provisional invoice id is there


def test_validator_catches_a_broken_export(tmp_path: Path) -> None:
    """The same run fails an export whose BilledCost is empty and whose currency is no code."""
    validator = _validator()
    assert validator is not None
    url = load_store(tmp_path / "store", spans())
    _, out, _ = run_cli(["report", "spend", "--url", url, "--period", "2026-11",
                         "--format", "focus"])
    header, *lines = out.splitlines()
    cols = header.split(",")
    broken = []
    for line in lines[:5]:
        cells = next(csv.reader([line]))
        cells[cols.index("BillingCurrency")] = "DOLLARS"
        cells[cols.index("BilledCost")] = ""
        broken.append(cells)
    export = tmp_path / "broken.csv"
    with export.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(cols)
        writer.writerows(broken)
    output = validate(validator, export)
    failed = failed_rules(output) - KNOWN_CONTRADICTION
    assert any(rule.startswith("BilledCost-") for rule in failed), output[-6000:]
    assert any(rule.startswith("BillingCurrency-") for rule in failed), output[-6000:]
