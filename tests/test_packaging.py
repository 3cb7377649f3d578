"""The built wheel must work outside the checkout: migrations and configs ship inside it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(REPO),
            "-w",
            str(out),
        ],
        check=True,
    )
    (whl,) = out.glob("spanledger-*.whl")
    return whl


def test_wheel_carries_every_migration_and_config(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for sql in (REPO / "clickhouse").glob("*.sql"):
        assert f"spanledger/_data/clickhouse/{sql.name}" in names
    for cfg in (REPO / "collector-config").glob("*.yaml"):
        assert f"spanledger/_data/collector-config/{cfg.name}" in names
    samples = sorted((REPO / "collector-config" / "reconcile-samples").iterdir())
    assert len(samples) == 7
    for sample in samples:  # the reconcile sample exports ship like the example configs
        assert f"spanledger/_data/collector-config/reconcile-samples/{sample.name}" in names
    entry_points = (
        zipfile.ZipFile(wheel).read("spanledger-0.1.0.dist-info/entry_points.txt").decode()
    )
    assert "spanledger = spanledger.cli.main:main" in entry_points
    assert "opentelemetry_distro" in entry_points


def test_installed_wheel_finds_its_data_outside_the_repo(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    code = (
        "import spanledger.resources as r, pathlib;"
        "d = r.data_dir('clickhouse');"
        "print(d); print(len(list(pathlib.Path(d).glob('*.sql'))))"
    )
    # Run from an unrelated folder with only the installed copy of spanledger importable
    # (dependencies still come from this interpreter's site-packages).
    env = {**os.environ, "PYTHONPATH": str(target), "PYTHONSAFEPATH": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0].startswith(str(target)), out
    assert int(out[1]) == len(list((REPO / "clickhouse").glob("*.sql")))
