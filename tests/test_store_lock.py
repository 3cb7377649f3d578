"""A store held by another process (the collector): locked, or read through its SQL front.

The holder is a real second process, as in production; it advertises its SQL
endpoint with the same discovery helpers the collector uses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest

from spanledger.store import StoreLocked, open_store
from spanledger.store.discovery import FILE_NAME, advertise, find_endpoint, withdraw

TESTS = Path(__file__).resolve().parent

HOLDER = textwrap.dedent(
    """
    import sys
    from decimal import Decimal
    from support.store import batch, span
    from spanledger.store import open_store
    from spanledger.store.discovery import advertise, withdraw
    from spanledger.store.sql_http import SqlHttpServer

    path, serve = sys.argv[1], sys.argv[2] == "serve"
    store = open_store("chdb://" + path, migrate=True)
    store.insert_arrow("otel_traces", batch([span("h" * 32, cost=Decimal("0.1"))]), "held")
    server = None
    if serve:
        server = SqlHttpServer(store, port=0).start()
        advertise(path, server.url)
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    if server is not None:
        withdraw(path)
        server.stop()
    store.close()
    """
)


@contextmanager
def holder(path: Path, serve: bool) -> Iterator[subprocess.Popen[str]]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), *sys.path]))
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), "serve" if serve else "hold"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_demo_reset_never_deletes_a_held_store(tmp_path: Path) -> None:
    """``demo --reset`` under a running collector would delete what it acknowledged."""
    from support.reports import run_cli

    path = tmp_path / "store"
    with holder(path, serve=False):
        code, out, err = run_cli(["demo", "--store", str(path), "--reset"])
        assert code == 2, (out, err)
        assert err.strip().splitlines() == [
            f"spanledger demo: error: --reset: {path} is in use by another process (usually "
            "`spanledger collector`); stop it first, or run `spanledger demo --store OTHER_DIR`"]
        assert (path / "metadata").is_dir() and (path / "store").is_dir()
    rows = open_store(f"chdb://{path}", read_only=True)
    try:
        assert rows.query("SELECT count() FROM otel_traces") == [(1,)]
    finally:
        rows.close()


def test_locked_store_without_endpoint(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with holder(path, serve=False):
        with pytest.raises(StoreLocked, match="in use by another process"):
            open_store(f"chdb://{path}")
        with pytest.raises(StoreLocked, match="enable the collector's sql_http"):
            open_store(f"chdb://{path}", read_only=True)
        # a stale advertisement from a dead collector is ignored
        (path / FILE_NAME).write_text(json.dumps({"sql_http": "http://127.0.0.1:1", "pid": 0}))
        with pytest.raises(StoreLocked, match="enable the collector's sql_http"):
            open_store(f"chdb://{path}", read_only=True)
    # once the holder is gone the store opens normally, data intact
    store = open_store(f"chdb://{path}")
    try:
        assert store.query("SELECT sum(Cost) FROM llm_calls") == [(Decimal("0.1"),)]
    finally:
        store.close()


def test_read_only_open_goes_through_the_collector(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with holder(path, serve=True) as proc:
        advertised = json.loads((path / FILE_NAME).read_text())
        assert advertised["pid"] == proc.pid
        assert advertised["sql_http"].startswith("http://127.0.0.1:")
        with pytest.raises(StoreLocked):
            open_store(f"chdb://{path}")  # writers still cannot share it
        store = open_store(f"chdb://{path}", read_only=True)
        try:
            assert store.url.startswith("http://")
            rows = store.query("SELECT TraceId, sum(Cost) FROM llm_cost_by_trace GROUP BY TraceId")
            assert rows == [("h" * 32, Decimal("0.1"))]
            assert isinstance(rows[0][1], Decimal)
        finally:
            store.close()
    assert not (path / FILE_NAME).exists()  # withdrawn by the holder on exit


def test_advertise_and_withdraw(tmp_path: Path) -> None:
    advertise(tmp_path, "http://127.0.0.1:9999")
    assert find_endpoint(tmp_path) == "http://127.0.0.1:9999"  # our own pid is alive
    withdraw(tmp_path, pid=os.getpid() + 1)  # not ours: kept
    assert (tmp_path / FILE_NAME).exists()
    withdraw(tmp_path)
    assert not (tmp_path / FILE_NAME).exists()
    assert find_endpoint(tmp_path) is None
