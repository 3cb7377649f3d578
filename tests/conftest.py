"""Suite-wide pytest setup: keep tests off the network and off the user's store,
and mark the slow end-to-end tests so ``pytest -m "not e2e"`` is a fast inner loop.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

#: Slow end-to-end tests, marked ``e2e`` here so no test file has to carry the mark:
#: a whole module (``test_x.py``) or one test (``test_x.py::test_name``). They start a
#: collector or the demo as a subprocess, drive real clients over HTTP, run Chromium
#: or build a wheel. CI runs everything; ``-m "not e2e"`` leaves these out.
E2E = (
    "test_budgets_collector.py",
    "test_collector_bad_input.py",
    "test_collector_conventions.py",
    "test_collector_durability.py",
    "test_collector_e2e.py",
    "test_collector_sql_auth.py",
    "test_demo_run.py",
    "test_packaging.py",
    "test_processor_clients.py",
    "test_processor_conventions.py",
    "test_store_lock.py",
    "test_trust_e2e.py",
    "test_deploy_compose.py::test_example_service_exports_costed_attributed_spans",
    "test_processor_setup.py::test_zero_code_opentelemetry_instrument",
    "test_processor_setup.py::test_configure_one_liner_honours_otel_env",
    "test_reports_html.py::test_html_renders_bars_in_chromium",
    "test_outcomes.py::test_an_outcome_recorded_in_another_process_lands_on_the_run",
    "test_reports_html_browser.py",
    "test_demo_serve.py",
)


def _check_e2e_entries() -> None:
    """A renamed module or test must be renamed here too, or it would silently join the fast
    loop."""
    for entry in E2E:
        module, _, test = entry.partition("::")
        path = TESTS / module
        if not path.is_file():
            raise pytest.UsageError(f"tests/conftest.py E2E: no file tests/{module}")
        if test and not re.search(rf"^(async )?def {test}\(", path.read_text(encoding="utf-8"),
                                  re.MULTILINE):
            raise pytest.UsageError(f"tests/conftest.py E2E: no test {test} in tests/{module}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _check_e2e_entries()
    for item in items:
        module = item.path.name
        name = getattr(item, "originalname", item.name)  # parametrized: the function's name
        if module in E2E or f"{module}::{name}" in E2E:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Never let a test pick up a developer's exporter endpoint or store.
    for var in list(os.environ):
        if var.startswith(("OTEL_", "SPANLEDGER_")):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")
