"""The OpenTelemetry Collector contrib config writes rows our schema accepts.

No otelcol-contrib binary runs here, so the config is checked against what
the contrib clickhouse exporter's source says: its option names, and the
columns (with types) of its traces INSERT, which must all exist in our
otel_traces DDL as migrated on the real engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from spanledger.resources import data_dir
from support.store import migrated_store

CONFIG = data_dir("collector-config") / "otelcol-contrib.yaml"

#: Options of the contrib clickhouse exporter. Source:
#: open-telemetry/opentelemetry-collector-contrib exporter/clickhouseexporter/config.go
#: and config.schema.yaml (commit 09ea2f42), plus the exporterhelper keys it embeds
#: (TimeoutConfig squashed -> `timeout`; `retry_on_failure`; `sending_queue`).
EXPORTER_OPTIONS = frozenset({
    "endpoint", "username", "password", "database", "tls", "connection_params",
    "logs_table_name", "traces_table_name", "profiles_table_name", "metrics_table_name",
    "metrics_tables", "ttl", "table_engine", "cluster_name", "create_schema", "compress",
    "async_insert", "json", "timeout", "retry_on_failure", "sending_queue",
})  # fmt: skip
RETRY_OPTIONS = frozenset(
    {"enabled", "initial_interval", "randomization_factor", "multiplier", "max_interval",
     "max_elapsed_time"}
)  # fmt: skip
QUEUE_OPTIONS = frozenset(
    {"enabled", "num_consumers", "queue_size", "wait_for_result", "block_on_overflow",
     "sizer", "storage", "batch"}
)  # fmt: skip

#: The traces INSERT of the contrib exporter and the type of each column in its own
#: CREATE TABLE. Source: exporter/clickhouseexporter/internal/sql_templates/
#: traces_insert.sql and traces_table.sql (commit ff7a9465); the values come from
#: exporter_traces.go pushTraceData (span.Kind().String(), Status().Code().String()).
CONTRIB_TRACES_COLUMNS = {
    "Timestamp": "DateTime64(9)",
    "TraceId": "String",
    "SpanId": "String",
    "ParentSpanId": "String",
    "TraceState": "String",
    "SpanName": "LowCardinality(String)",
    "SpanKind": "LowCardinality(String)",
    "ServiceName": "LowCardinality(String)",
    "ResourceAttributes": "Map(LowCardinality(String), String)",
    "ScopeName": "String",
    "ScopeVersion": "String",
    "SpanAttributes": "Map(LowCardinality(String), String)",
    "Duration": "UInt64",
    "StatusCode": "LowCardinality(String)",
    "StatusMessage": "String",
    "Events.Timestamp": "Array(DateTime64(9))",
    "Events.Name": "Array(LowCardinality(String))",
    "Events.Attributes": "Array(Map(LowCardinality(String), String))",
    "Links.TraceId": "Array(String)",
    "Links.SpanId": "Array(String)",
    "Links.TraceState": "Array(String)",
    "Links.Attributes": "Array(Map(LowCardinality(String), String))",
}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def test_exporter_options_are_documented(config: dict[str, Any]) -> None:
    exporter = config["exporters"]["clickhouse"]
    assert set(exporter) <= EXPORTER_OPTIONS, set(exporter) - EXPORTER_OPTIONS
    assert set(exporter["retry_on_failure"]) <= RETRY_OPTIONS
    assert set(exporter["sending_queue"]) <= QUEUE_OPTIONS
    assert exporter["create_schema"] is False
    for key in ("endpoint", "username", "password", "database"):
        assert str(exporter[key]).startswith("${env:"), key


def test_pipeline_wiring(config: dict[str, Any]) -> None:
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")
    traces = config["service"]["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp"]
    # memory_limiter first, as the collector docs require
    assert traces["processors"] == ["memory_limiter", "batch"]
    assert traces["exporters"] == ["clickhouse"]
    for name in traces["processors"]:
        assert name in config["processors"]


def test_contrib_columns_exist_with_matching_types(config: dict[str, Any], tmp_path: Path) -> None:
    table = config["exporters"]["clickhouse"]["traces_table_name"]
    assert table == "otel_traces"
    ddl = (data_dir("clickhouse") / "0001_otel_traces.sql").read_text(encoding="utf-8")
    assert "CREATE TABLE IF NOT EXISTS ${otel_traces}" in ddl
    with migrated_store(tmp_path / "s") as store:
        ours = dict(store.query(
            "SELECT name, type FROM system.columns "
            "WHERE database = currentDatabase() AND table = {t:String}", {"t": table}
        ))
    mismatched = {
        col: (typ, ours.get(col)) for col, typ in CONTRIB_TRACES_COLUMNS.items()
        if ours.get(col) != typ
    }
    assert mismatched == {}
