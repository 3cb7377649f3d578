"""Arrow files into otel_traces (what the collector's writer does with every spool segment).

Each backend reads the file its own way; both must count a replayed file
with the same dedup token once, in the table and in every rollup.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from spanledger.store.http_store import HttpStore
from spanledger.store.url import parse_url
from support.store import batch, migrated_store, span


def _write(table: pa.Table, path: Path) -> Path:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    return path


def test_embedded_file_insert_counts_once_per_token(tmp_path: Path) -> None:
    spool = tmp_path / "it's a spool"  # a quote in the path must not break the SQL
    spool.mkdir()
    rows = [span("a" * 32, cost=Decimal("0.25"), team="x"), span("a" * 32, cost=Decimal("0.5"))]
    file = _write(batch(rows), spool / "segment.arrows")
    with migrated_store(tmp_path / "s") as store:
        store.insert_arrow_file("otel_traces", file, "seg-1")
        store.insert_arrow_file("otel_traces", file, "seg-1")  # replayed after a crash
        assert store.query("SELECT count() FROM otel_traces") == [(2,)]
        assert store.query("SELECT sum(Calls), sum(Cost) FROM llm_cost_by_trace") == [
            (2, Decimal("0.75"))
        ]
        assert store.query("SELECT sum(Calls), sum(Cost) FROM llm_cost_daily") == [
            (2, Decimal("0.75"))
        ]
        store.insert_arrow_file("otel_traces", file, "seg-2")  # another segment's token
        assert store.query("SELECT count(), sum(Cost) FROM llm_calls") == [(4, Decimal("1.5"))]


class _RecordingClient:
    """Stands in for clickhouse-connect: what would be sent to the server."""

    def __init__(self) -> None:
        self.inserts: list[tuple[str, pa.Table, dict[str, Any]]] = []

    def insert_arrow(self, table: str, data: pa.Table, settings: dict[str, Any]) -> None:
        self.inserts.append((table, data, settings))

    def close(self) -> None:
        pass


def test_server_file_insert_sends_the_rows_with_the_dedup_settings(tmp_path: Path) -> None:
    table = batch([span("b" * 32, cost=Decimal("0.1")), span("b" * 32, cost=Decimal("0.2"))])
    file = _write(table, tmp_path / "segment.arrows")
    store = HttpStore(parse_url("http://ch.invalid:8123/db"))
    client = store._client = _RecordingClient()
    with store:
        store.insert_arrow_file("otel_traces", file, "seg-1")
    ((name, sent, settings),) = client.inserts
    assert name == "otel_traces" and sent.equals(table)
    assert settings == {"insert_deduplication_token": "seg-1",
                        "deduplicate_blocks_in_dependent_materialized_views": 1}
