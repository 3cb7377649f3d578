"""Reports through the collector's read-only SQL HTTP front give the same numbers as chdb.

This is how a report reaches the embedded store while ``spanledger collector``
holds it (clickhouse-connect against our SQL front, Native format, Decimals).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from spanledger.store import open_store
from spanledger.store.sql_http import SqlHttpServer
from support.reports import october_spans, run_cli, spans_table


def test_spend_and_traces_over_sql_http(tmp_path: Path) -> None:
    store = open_store(f"chdb://{tmp_path / 'store'}", migrate=True)
    try:
        store.insert_arrow("otel_traces", spans_table(october_spans()))
        with SqlHttpServer(store, port=0) as server:
            code, out, err = run_cli(["report", "spend", "--url", server.url, "--period",
                                      "2026-10", "--format", "json", "--by", "team,feature"])
            assert code == 0, err
            doc = json.loads(out)
            assert Decimal(doc["total"]["cost"]) == Decimal("16.00")
            assert doc["total"]["unpriced_calls"] == 1
            code, out, err = run_cli(["report", "traces", "--url", server.url, "--period",
                                      "2026-10", "--format", "json", "--top", "1"])
            assert code == 0, err
            top = json.loads(out)["rows"][0]
            assert top["trace_id"] == "c2" and top["amplification"] == "x5.0 cost, x5.0 calls"
    finally:
        store.close()
