"""Helpers for the demo tests: run ``spanledger`` as a user would, read the store it wrote.

The demo starts its own collector (which owns the chdb store) and worker
processes, so it always runs as a subprocess of the test; the store is read
afterwards in the test process and closed right away (one chdb path per process).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spanledger.store import open_store

#: a run well under the suite's budget that still spans a month
SMALL_CALLS = 600
SMALL_DAYS = 31


@dataclass(frozen=True)
class CliRun:
    code: int
    stdout: str
    stderr: str


def clean_env() -> dict[str, str]:
    """This environment without a developer's OTEL_* / SPANLEDGER_* settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANLEDGER_"))}


def spanledger(cwd: Path, *args: str, timeout: float = 120) -> CliRun:
    """``python -m spanledger ARGS`` in ``cwd`` (bounded by ``timeout``)."""
    proc = subprocess.run([sys.executable, "-m", "spanledger", *args], cwd=cwd,
                          env=clean_env(), capture_output=True, text=True, timeout=timeout,
                          check=False)
    return CliRun(proc.returncode, proc.stdout, proc.stderr)


def query_store(path: Path, queries: dict[str, str]) -> dict[str, list[tuple[Any, ...]]]:
    """Run each named query on the embedded store at ``path``; the store is closed after."""
    store = open_store(f"chdb://{path}", read_only=True)
    try:
        return {name: store.query(sql) for name, sql in queries.items()}
    finally:
        store.close()
