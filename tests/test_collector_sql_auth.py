"""A collector with a bearer token guards its read-only SQL front with the same token.

The OTLP receivers refuse unauthenticated writes; the SQL front must not be the
open side door to the same data. A local report presents the token from the
environment, exactly like an SDK exporter does.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from support.collector import start_collector

TOKEN = "s3cret-token"


def test_sql_front_requires_the_collectors_token(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    collector = start_collector(store_dir, env={"SPANLEDGER_COLLECTOR_TOKEN": TOKEN})
    try:
        sql_url = collector.endpoints["sql_http"]
        query = "/?query=SELECT%20count()%20FROM%20otel_traces"
        try:
            urllib.request.urlopen(sql_url + query, timeout=10)
            raise AssertionError("the SQL front answered without the token")
        except urllib.error.HTTPError as exc:
            assert exc.code == 403  # what ClickHouse answers for AUTHENTICATION_FAILED
        request = urllib.request.Request(sql_url + query, headers={"X-ClickHouse-Key": TOKEN})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.read().strip() == b"0"

        # A report in the same folder finds the collector and presents the token...
        base = [
            sys.executable,
            "-m",
            "spanledger",
            "report",
            "spend",
            "--url",
            f"chdb://{store_dir}",
        ]
        ok = subprocess.run(
            base,
            capture_output=True,
            text=True,
            timeout=120,
            env={**_env(), "SPANLEDGER_COLLECTOR_TOKEN": TOKEN},
        )
        assert ok.returncode == 0, ok.stderr
        assert "TOTAL" in ok.stdout
        # ...and without it is refused with one line, not a traceback.
        refused = subprocess.run(base, capture_output=True, text=True, timeout=120, env=_env())
        assert refused.returncode == 1
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    finally:
        assert collector.stop() == 0


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "SPANLEDGER_COLLECTOR_TOKEN"}
