"""A mistake in the collector's files stops it at start-up: one line, exit 2, nothing bound.

A prices file with a typo used to give three chained tracebacks from the
worker pool, or with ``--workers 0`` a "ready" collector answering 200 whose
writer had died. Now it is read before the store is opened or a port bound.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TYPO = "models:\n  - provider: openai\n    model: gpt-4o\n    inptu: 2.0\n    output: 8.0\n"
PROBLEM = ("models[0].inptu: unknown key (expected one of: cache_read, cache_write, "
           "discount_percent, effective_from, input, model, note, output, provider)")


def _collector(tmp: Path, *args: str, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "spanledger", "collector", "--url", f"chdb://{tmp / 'store'}",
           "--grpc-port", "0", "--http-port", "0", "--sql-http-port", "0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp,
                          env={**os.environ, **(env or {})})


def _assert_refused(run: subprocess.CompletedProcess[str], tmp: Path, where: str) -> None:
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr == f"spanledger collector: error: {where}: {PROBLEM}\n"
    assert run.stdout == ""  # no endpoint printed, no "ready"
    assert not (tmp / "store").exists()  # failed before the store was even opened


@pytest.mark.parametrize("workers", ["0", "1"])
def test_prices_flag_with_a_typo(tmp_path: Path, workers: str) -> None:
    (tmp_path / "prices.yaml").write_text(TYPO)
    run = _collector(tmp_path, "--prices", "prices.yaml", "--workers", workers)
    _assert_refused(run, tmp_path, "prices.yaml:4")


def test_prices_in_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "prices.yaml").write_text(TYPO)
    (tmp_path / "collector.yaml").write_text(
        f"processors:\n  pricing:\n    prices: {tmp_path / 'prices.yaml'}\n")
    run = _collector(tmp_path, "--config", "collector.yaml", "--workers", "1")
    _assert_refused(run, tmp_path, f"{tmp_path / 'prices.yaml'}:4")


def test_prices_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "prices.yaml").write_text(TYPO)
    run = _collector(tmp_path, "--workers", "0",
                     env={"SPANLEDGER_PRICES_FILE": str(tmp_path / "prices.yaml")})
    _assert_refused(run, tmp_path, f"{tmp_path / 'prices.yaml'}:4")


def test_missing_prices_file(tmp_path: Path) -> None:
    run = _collector(tmp_path, "--prices", "nope.yaml", "--workers", "0")
    assert run.returncode == 2
    assert run.stderr == "spanledger collector: error: nope.yaml: file not found\n"
    assert not (tmp_path / "store").exists()


def test_bad_config_file(tmp_path: Path) -> None:
    (tmp_path / "collector.yaml").write_text("receivers:\n  otlp:\n    grpc:\n      port: \"80\"\n")
    run = _collector(tmp_path, "--config", "collector.yaml")
    assert run.returncode == 2
    assert run.stderr == ("spanledger collector: error: collector.yaml:4: "
                          "receivers.otlp.grpc.port: expected a whole number, got '80'\n")
    assert not (tmp_path / "store").exists()
