"""Migrations: applied once, recorded, and rendered right for a server cluster.

The single-node rendering runs on the real engine; the cluster rendering
cannot run here (no ClickHouse cluster), so its SQL is checked statically.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from spanledger.cli.main import main
from spanledger.resources import data_dir
from spanledger.store import StoreUrlError, open_store, parse_url
from spanledger.store.migrate import load_migrations, migrate, split_statements
from support.store import migrated_store

FILES = sorted(data_dir("clickhouse").glob("*.sql"))
NAMES = [f.stem for f in FILES]
#: tables created through the engine placeholders (each gets a replicated path or a dedup window)
ENGINE_TABLES = sum(f.read_text().count("${DEDUP_SETTING}") for f in FILES)
PUBLIC_TABLES = ["otel_traces", "llm_calls", "llm_cost_by_trace", "llm_cost_daily",
                 "outcomes_daily", "outcomes_by_trace"]


def test_migrate_is_idempotent_and_recorded(tmp_path: Path) -> None:
    store = open_store(f"chdb://{tmp_path / 'new' / 'dir'}")  # created on open
    try:
        assert migrate(store) == NAMES
        assert migrate(store) == []
        recorded = dict(store.query("SELECT name, checksum FROM spanledger_migrations"))
        assert recorded == {
            f.stem: hashlib.sha256(f.read_bytes()).hexdigest() for f in FILES
        }
        tables = {r[0] for r in store.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase()"
        )}
        assert set(PUBLIC_TABLES) <= tables
        assert {"llm_calls_mv", "llm_cost_by_trace_mv", "llm_cost_daily_mv", "outcomes_daily_mv",
                "outcomes_by_trace_mv"} <= tables
    finally:
        store.close()
    with migrated_store(tmp_path / "new" / "dir") as again:  # reopen: still up to date
        assert migrate(again) == []


def test_ttl_days_renders_ttl_clauses(tmp_path: Path) -> None:
    store = open_store(f"chdb://{tmp_path / 's'}")
    try:
        migrate(store, ttl_days=30)
        ddl = {t: store.query(f"SHOW CREATE TABLE {t}")[0][0] for t in PUBLIC_TABLES}
    finally:
        store.close()
    assert "TTL toDateTime(Timestamp) + toIntervalDay(30)" in ddl["otel_traces"]
    assert "TTL Day + toIntervalDay(30)" in ddl["llm_calls"]
    assert "TTL toDateTime(Start) + toIntervalDay(30)" in ddl["llm_cost_by_trace"]
    assert "TTL" not in ddl["llm_cost_daily"]  # the daily rollup is kept for finance
    assert "TTL LastDay + toIntervalDay(30)" in ddl["outcomes_by_trace"]
    assert "TTL" not in ddl["outcomes_daily"]


def test_cluster_rendering() -> None:
    statements = [s for m in load_migrations(cluster="prod", ttl_days=7) for s in m.statements]
    text = "\n".join(statements)
    assert "$" not in text
    creates = [s for s in statements if s.startswith("CREATE")]
    assert creates and all(" ON CLUSTER prod" in s for s in creates)
    engines = re.findall(r"ENGINE = (\w+)\(", text)
    assert sorted(set(engines)) == [
        "Distributed", "ReplicatedAggregatingMergeTree", "ReplicatedMergeTree",
        "ReplicatedSummingMergeTree",
    ]
    assert ENGINE_TABLES >= 6
    assert text.count("'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'") == (
        ENGINE_TABLES)
    for table in PUBLIC_TABLES:
        # the public name is a Distributed table over the shard-local one
        assert (
            f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER prod AS {table}_local\n"
            f"ENGINE = Distributed(prod, currentDatabase(), {table}_local, "
        ) in text
        assert f"CREATE TABLE IF NOT EXISTS {table}_local ON CLUSTER prod" in text
    # materialized views read and write the local tables, never the Distributed ones
    views = [s for s in statements if "MATERIALIZED VIEW" in s]
    # three views, created by 0002-0004 and recreated by 0006 and 0010 (DROP VIEW ... ON
    # CLUSTER first), and the two outcome views of 0009, recreated by 0010
    names = [re.search(r"VIEW IF NOT EXISTS (\w+)", v).group(1) for v in views]  # type: ignore[union-attr]
    assert sorted(set(names)) == ["llm_calls_mv", "llm_cost_by_trace_mv", "llm_cost_daily_mv",
                                  "outcomes_by_trace_mv", "outcomes_daily_mv"]
    assert len(views) == 13
    drops = [s for s in statements if s.startswith("DROP VIEW")]
    assert len(drops) == 8 and all(" ON CLUSTER prod" in s for s in drops)
    # the closed periods: one replica set over the whole cluster (every node's views read it)
    assert ("CREATE TABLE IF NOT EXISTS spanledger_periods ON CLUSTER prod" in text
            and "ReplicatedMergeTree('/clickhouse/tables/all/{database}/{table}', '{replica}')"
            in text)
    # new columns go to the shard-local table AND its Distributed table
    alters = [s for s in statements if s.startswith("ALTER TABLE")]
    assert alters and all(" ON CLUSTER prod" in s for s in alters)
    for table in ("llm_calls", "llm_cost_daily", "llm_cost_by_trace"):
        assert any(s.startswith(f"ALTER TABLE {table}_local ") for s in alters), table
        assert any(s.startswith(f"ALTER TABLE {table} ") for s in alters), table
    for view in views:
        assert re.search(r"\bTO \w+_local AS", view)
        assert re.search(r"\bFROM (otel_traces|llm_calls)_local\b", view)
        assert not re.search(r"\bFROM (otel_traces|llm_calls)\b(?!_local)", view)
    assert "non_replicated_deduplication_window" not in text
    assert "TTL toDateTime(Timestamp) + toIntervalDay(7)" in text


def test_single_node_rendering_has_no_cluster_parts() -> None:
    text = "\n".join(s for m in load_migrations() for s in m.statements)
    assert "ON CLUSTER" not in text and "Replicated" not in text and "_local" not in text
    assert text.count("non_replicated_deduplication_window = 10000") == ENGINE_TABLES


def test_bad_cluster_name_is_refused() -> None:
    with pytest.raises(ValueError, match="plain identifier"):
        load_migrations(cluster="a; DROP TABLE x")


def test_split_statements_respects_quotes_and_comments() -> None:
    sql = "SELECT ';' -- a; comment\n; /* x; */ SELECT `a;b`;\n\n"
    assert split_statements(sql) == ["SELECT ';'", "SELECT `a;b`"]


@pytest.mark.parametrize(
    "url",
    ["foo://x", "chdb://", "http://", "http://host:notaport/db", "http://h:8123/a/b"],
)
def test_bad_urls_are_rejected(url: str) -> None:
    with pytest.raises(StoreUrlError):
        parse_url(url)


def test_url_parsing() -> None:
    u = parse_url("https://bob:s%40cret@ch.example:8443/ledger")
    assert (u.scheme, u.host, u.port, u.username, u.password, u.database) == (
        "https", "ch.example", 8443, "bob", "s@cret", "ledger"
    )
    assert "s@cret" not in u.redacted()
    assert parse_url("chdb://./data").path == "./data"
    assert parse_url("chdb:///abs/data").path == "/abs/data"


def test_env_url_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLEDGER_CLICKHOUSE_URL", f"chdb://{tmp_path / 'env'}")
    assert parse_url(None).path == str(tmp_path / "env")


def test_cli_migrate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"chdb://{tmp_path / 'cli'}"
    assert main(["db", "migrate", "--url", url]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [f"applied {n}" for n in NAMES]
    assert main(["db", "migrate", "--url", url]) == 0
    assert "schema up to date" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--url", "mysql://x"], "is neither chdb://PATH nor"),
        (["--url", "chdb:///tmp/x", "--ttl-days", "0"], "--ttl-days must be a positive"),
        (["--url", "chdb:///tmp/x", "--cluster", "c"], "--cluster needs a ClickHouse server"),
        (["--url", "http://h:1/db", "--cluster", "bad name"], "plain identifier"),
    ],
)
def test_cli_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "migrate", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert message in err
