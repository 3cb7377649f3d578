"""Migration 0006 on the embedded ClickHouse: every convention in llm_calls, call kinds and
duplicates apart in the rollups, and data written before the migration still adding up.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spanledger import semconv as sc
from spanledger.resources import data_dir
from spanledger.store import open_store
from spanledger.store.migrate import load_migrations, migrate
from support.store import batch, migrated_store, span

MIGRATION = data_dir("clickhouse") / "0006_conventions_and_call_kinds.sql"


def row(trace: str, attrs: dict[str, str], scope: str = "opentelemetry.instrumentation.openai",
        name: str = "call") -> dict[str, Any]:
    """A status-less span (a collector that does not price) with exactly these attributes."""
    r = span(trace, status=None, input_tokens=None, output_tokens=None)
    r["SpanAttributes"] = list(attrs.items())
    r["ScopeName"] = scope
    r["SpanName"] = name
    return r


def calls(store: Any) -> dict[str, tuple[Any, ...]]:
    return {r[0]: r[1:] for r in store.query(
        "SELECT SpanName, CallKind, Status, Provider, Model, InputTokens, OutputTokens, "
        "CacheReadTokens, CacheWriteTokens, CacheWrite1hTokens, toString(CostReported) "
        "FROM llm_calls")}


def test_unpriced_spans_of_every_convention_land_in_llm_calls(tmp_path: Path) -> None:
    """Spans nobody priced (the contrib exporter's path): read with each convention's names;
    input includes the cache in every column, for instrumentations that report it without."""
    rows = [
        row("a" * 32, {"llm.system": "openai", "llm.model_name": "gpt-4o-mini",
                       "llm.token_count.prompt": "2000", "llm.token_count.completion": "300",
                       "llm.token_count.prompt_details.cache_read": "1024",
                       "llm.cost.total": "0.0004"},
            scope="openinference.instrumentation.openai", name="openinference"),
        row("b" * 32, {"gen_ai.provider.name": "aws.bedrock", "gen_ai.request.model":
                       "nova-pro-v1:0", "gen_ai.usage.input_tokens": "3000",
                       "gen_ai.usage.output_tokens": "200",
                       "gen_ai.usage.cache_read.input_tokens": "1000"},
            scope="opentelemetry.instrumentation.bedrock", name="bedrock"),
        row("c" * 32, {"gen_ai.provider.name": "anthropic", "gen_ai.request.model":
                       "claude-sonnet-4-5", "gen_ai.usage.input_tokens": "3000",
                       "gen_ai.usage.output_tokens": "400",
                       "gen_ai.usage.cache_read.input_tokens": "1000",
                       "gen_ai.usage.cache_creation.input_tokens": "500",
                       "gen_ai.usage.cost": "0"},
            scope="openlit.instrumentation.anthropic", name="openlit"),
        row("d" * 32, {"gen_ai.provider.name": "anthropic", "gen_ai.request.model":
                       "claude-sonnet-4-5", "gen_ai.usage.input_tokens": "4500",
                       "gen_ai.usage.output_tokens": "400",
                       "gen_ai.usage.cache_read.input_tokens": "1000",
                       "gen_ai.usage.cache_write.input_tokens": "500",
                       "anthropic.usage.cache_creation.ephemeral_1h_input_tokens": "300"},
            scope="com.anthropic.sdk.python", name="anthropic-sdk"),
        row("e" * 32, {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"},
            name="tool"),
        row("f" * 32, {"db.system.name": "qdrant", "db.operation.name": "search"}, name="qdrant"),
        row("f" * 32, {"db.system.name": "postgresql", "db.operation.name": "SELECT"},
            name="sql"),  # not a vector database, no price: no call at all
    ]
    with migrated_store(tmp_path / "s") as store:
        store.insert_arrow("otel_traces", batch(rows))
        got = calls(store)
    assert set(got) == {"openinference", "bedrock", "openlit", "anthropic-sdk", "tool", "qdrant"}
    assert got["openinference"] == ("llm", "unpriced", "openai", "gpt-4o-mini", 2000, 300, 1024,
                                    0, 0, "0.0004")
    assert got["bedrock"][:8] == ("llm", "unpriced", "aws.bedrock", "nova-pro-v1:0", 4000, 200,
                                  1000, 0)
    assert got["openlit"][4:8] == (4500, 400, 1000, 500)  # 3000 + the cache
    assert got["openlit"][9] == "0"  # openlit's own $0: reported, never a cost
    assert got["anthropic-sdk"][4:9] == (4500, 400, 1000, 500, 300)
    assert got["tool"][:2] == ("tool", "no_usage") and got["qdrant"][:2] == ("vector_db",
                                                                             "no_usage")


def test_normalized_values_win_and_duplicates_count_apart(tmp_path: Path) -> None:
    priced = span("a" * 32, cost=Decimal("0.017175"), input_tokens=3000, extra={
        sc.USAGE_INPUT: "4500", sc.USAGE_OUTPUT: "400", sc.USAGE_CACHE_READ: "1000",
        sc.USAGE_CACHE_WRITE: "500", sc.USAGE_CACHE_WRITE_1H: "300",
        sc.MODEL: "nova-pro-v1:0", sc.PROVIDER_NORMALIZED: "aws.bedrock",
        sc.COST_REPORTED: "0.0195", sc.PRICE_TIER: "flex", sc.CONVENTION: "x"})
    dup = span("a" * 32, status="duplicate", cost=None, input_tokens=3000, extra={
        sc.DUPLICATE_OF: priced["SpanId"]})
    tool = span("a" * 32, status="priced", cost=Decimal("0.01"), input_tokens=None,
                output_tokens=None, extra={"gen_ai.operation.name": "execute_tool",
                                           "gen_ai.tool.name": "web_search"})
    with migrated_store(tmp_path / "s") as store:
        store.insert_arrow("otel_traces", batch([priced, dup, tool]))
        (llm,) = store.query("SELECT InputTokens, CacheWrite1hTokens, Model, Provider, "
                             "toString(CostReported), PriceTier FROM llm_calls "
                             "WHERE Status = 'priced' AND CallKind = 'llm'")
        (d,) = store.query("SELECT DuplicateOf, toString(Cost) FROM llm_calls "
                           "WHERE Status = 'duplicate'")
        daily = store.query("SELECT sum(Calls), sum(LlmCalls), sum(ToolCalls), "
                            "sum(DuplicateSpans), toString(sum(Cost)), toString(sum(ToolCost)), "
                            "sum(InputTokens) FROM llm_cost_daily")[0]
        by_trace = store.query("SELECT sum(Calls), sum(LlmCalls), sum(ToolCalls), "
                               "sum(DuplicateSpans), toString(sum(Cost)) FROM llm_cost_by_trace")[0]
        models = store.query("SELECT arraySort(groupUniqArrayArray(Models)) "
                             "FROM llm_cost_by_trace")[0][0]
    assert llm == (4500, 300, "nova-pro-v1:0", "aws.bedrock", "0.0195", "flex")
    assert d == (priced["SpanId"], "0")
    assert daily == (2, 1, 1, 1, "0.027175", "0.01", 4500)  # the duplicate adds nothing
    assert by_trace == (2, 1, 1, 1, "0.027175")
    assert list(models) == ["nova-pro-v1:0"]  # the model, not the tool


def test_rows_written_before_the_migration_still_count(tmp_path: Path) -> None:
    """A store migrated up to 0004 and filled, then migrated to 0006: its rows read as LLM
    calls (LlmCalls = Calls), and new rows add to them."""
    path = tmp_path / "s"
    old = [m for m in load_migrations() if m.name < "0005"]
    store = open_store(f"chdb://{path}")
    try:
        for m in old:
            for statement in m.statements:
                store.command(statement)
        store.insert_arrow("otel_traces", batch([
            span("a" * 32, cost=Decimal("0.5")), span("b" * 32, status="unpriced")]))
        migrate(store)
        store.insert_arrow("otel_traces", batch([span("a" * 32, cost=Decimal("0.25"))]))
        daily = store.query("SELECT Status, sum(Calls), sum(LlmCalls), toString(sum(Cost)) "
                            "FROM llm_cost_daily GROUP BY Status ORDER BY Status")
        traces = store.query("SELECT TraceId, sum(Calls), sum(LlmCalls) FROM llm_cost_by_trace "
                             "GROUP BY TraceId ORDER BY TraceId")
        kinds = store.query("SELECT DISTINCT CallKind FROM llm_calls")
    finally:
        store.close()
    assert daily == [("priced", 2, 2, "0.75"), ("unpriced", 1, 1, "0")]
    assert traces == [("a" * 32, 2, 2), ("b" * 32, 1, 1)]
    assert kinds == [("llm",)]


def test_the_vector_database_list_is_semconvs() -> None:
    text = MIGRATION.read_text(encoding="utf-8")
    lists = re.findall(r"IN \(('chroma'[^)]*)\)", text)
    assert len(lists) == 3
    for found in lists:
        assert tuple(re.findall(r"'([^']+)'", found)) == sc.VECTOR_DB_SYSTEMS


@pytest.mark.parametrize("table", ["llm_calls", "llm_cost_daily", "llm_cost_by_trace"])
def test_columns_added_on_both_cluster_tables(table: str) -> None:
    (m,) = [m for m in load_migrations(cluster="c1") if m.name.startswith("0006")]
    alters = [s for s in m.statements if s.startswith("ALTER TABLE")]
    assert any(s.startswith(f"ALTER TABLE {table}_local ON CLUSTER c1") for s in alters)
    assert any(s.startswith(f"ALTER TABLE {table} ON CLUSTER c1") for s in alters)
