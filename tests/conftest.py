"""Suite-wide pytest setup: keep tests off the network and off the user's store."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Never let a test pick up a developer's exporter endpoint or store.
    for var in list(os.environ):
        if var.startswith(("OTEL_", "SPANLEDGER_")):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")
