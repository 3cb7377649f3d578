"""Numbered ClickHouse migrations: render the ``clickhouse/*.sql`` templates, run each once.

One set of files serves the embedded engine, a single server and a cluster:
``${...}`` placeholders (string.Template) pick engines, ``ON CLUSTER``, TTLs
and table names. On a cluster the templates create shard-local tables
``<name>_local`` with Replicated engines, the materialized views read and
write those local tables, and a Distributed table under each public name
(``otel_traces``, ``llm_calls``, ...) fans writes out and reads in, so writers
and reports never need to know which layout they are on.

Applied migrations are recorded in ``spanledger_migrations`` (name, checksum,
applied_at), so running ``migrate`` again is a no-op. A recorded migration
whose file changed since is reported in the log, never silently re-run.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from spanledger.resources import data_dir
from spanledger.store.base import Store, StoreError

log = logging.getLogger(__name__)

MIGRATIONS_TABLE = "spanledger_migrations"

#: Tables the templates create with a ``${name}`` placeholder, and how a
#: cluster shards them: by TraceId so one trace's spans and rollup meet on one shard.
SHARDING_KEYS: dict[str, str] = {
    "otel_traces": "cityHash64(TraceId)",
    "llm_calls": "cityHash64(TraceId)",
    "llm_cost_by_trace": "cityHash64(TraceId)",
    "llm_cost_daily": "rand()",
    "outcomes_daily": "rand()",
    "outcomes_by_trace": "cityHash64(RunTraceId)",
}

#: Rows older than ``ttl_days`` leave these tables (by the column shown). The
#: daily rollup has no TTL: it is small and it is what finance keeps for years.
TTL_COLUMNS: dict[str, tuple[str, str]] = {
    "TTL_TRACES": ("otel_traces", "toDateTime(Timestamp)"),
    "TTL_CALLS": ("llm_calls", "Day"),
    "TTL_BY_TRACE": ("llm_cost_by_trace", "toDateTime(Start)"),
    "TTL_DAILY": ("llm_cost_daily", ""),
    "TTL_OUTCOMES_BY_TRACE": ("outcomes_by_trace", "LastDay"),
}

DEDUP_WINDOW = 10000
LOCAL_SUFFIX = "_local"
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Migration:
    name: str  # file stem, e.g. "0001_otel_traces"
    checksum: str  # sha256 of the template file
    statements: tuple[str, ...]


def placeholders(cluster: str | None = None, ttl_days: int | None = None) -> dict[str, str]:
    """The values for every ``${...}`` in the templates, for this layout."""
    if cluster is not None and not _NAME_RE.match(cluster):
        raise ValueError(f"cluster name {cluster!r} is not a plain identifier")
    if ttl_days is not None and ttl_days <= 0:
        raise ValueError(f"ttl days must be a positive number, not {ttl_days}")
    values: dict[str, str] = {}
    if cluster is None:
        values["ON_CLUSTER"] = ""
        for engine in ("MergeTree", "AggregatingMergeTree", "SummingMergeTree"):
            values[engine] = engine
        values["DEDUP_SETTING"] = f", non_replicated_deduplication_window = {DEDUP_WINDOW}"
        values["ClusterWideMergeTree"] = "MergeTree"
        for table in SHARDING_KEYS:
            values[table] = table
    else:
        values["ON_CLUSTER"] = f"ON CLUSTER {cluster}"
        zoo = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"
        for engine in ("MergeTree", "AggregatingMergeTree", "SummingMergeTree"):
            values[engine] = f"Replicated{engine}({zoo})"
        values["DEDUP_SETTING"] = f", replicated_deduplication_window = {DEDUP_WINDOW}"
        # one replica set across every shard: a small table every node's views read whole
        # (the closed periods), so a row written on one node is seen by all
        values["ClusterWideMergeTree"] = (
            "ReplicatedMergeTree('/clickhouse/tables/all/{database}/{table}', '{replica}')")
        for table in SHARDING_KEYS:
            values[table] = table + LOCAL_SUFFIX
    for key, (_table, column) in TTL_COLUMNS.items():
        values[key] = (
            f"TTL {column} + toIntervalDay({int(ttl_days)})" if ttl_days and column else ""
        )
    return values


def split_statements(sql: str) -> list[str]:
    """Statements of a script, split at ``;`` outside quotes and comments."""
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(sql)
    quote: str | None = None
    while i < n:
        ch = sql[i]
        if quote:
            current.append(ch)
            if ch == "\\" and i + 1 < n:
                current.append(sql[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in ("'", '"', "`"):
            quote = ch
            current.append(ch)
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
            continue
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        elif ch == ";":
            text = "".join(current).strip()
            if text:
                statements.append(text)
            current = []
        else:
            current.append(ch)
        i += 1
    text = "".join(current).strip()
    if text:
        statements.append(text)
    return statements


_CREATE_RE = re.compile(r"CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+\$\{(\w+)\}", re.IGNORECASE)


def _distributed(table: str, cluster: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER {cluster} AS {table}{LOCAL_SUFFIX}\n"
        f"ENGINE = Distributed({cluster}, currentDatabase(), {table}{LOCAL_SUFFIX}, "
        f"{SHARDING_KEYS[table]})"
    )


def load_migrations(
    cluster: str | None = None, ttl_days: int | None = None, directory: Path | None = None
) -> list[Migration]:
    """Every migration file, rendered for this layout, in name order."""
    values = placeholders(cluster, ttl_days)
    folder = directory or data_dir("clickhouse")
    migrations = []
    for path in sorted(folder.glob("*.sql")):
        raw = path.read_text(encoding="utf-8")
        try:
            rendered = Template(raw).substitute(values)
        except (KeyError, ValueError) as exc:
            raise StoreError(f"{path}: bad placeholder {exc}") from exc
        statements = split_statements(rendered)
        if cluster is not None:
            for table in _CREATE_RE.findall(raw):
                if table in SHARDING_KEYS:
                    statements.append(_distributed(table, cluster))
        checksum = hashlib.sha256(raw.encode("utf-8")).hexdigest()
        migrations.append(Migration(path.stem, checksum, tuple(statements)))
    return migrations


def _ensure_table(store: Store, cluster: str | None) -> None:
    if cluster is None:
        engine = "MergeTree ORDER BY name"
    else:
        engine = (
            "ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}') "
            "ORDER BY name"
        )
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    store.command(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE}{on_cluster} "
        "(name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        f"ENGINE = {engine}"
    )


def applied(store: Store) -> dict[str, str]:
    """name -> checksum of the migrations this store has run."""
    rows = store.query(f"SELECT name, any(checksum) FROM {MIGRATIONS_TABLE} GROUP BY name")
    return {str(name): str(checksum) for name, checksum in rows}


def migrate(store: Store, cluster: str | None = None, ttl_days: int | None = None) -> list[str]:
    """Run the migrations ``store`` has not run yet; return their names (empty: up to date)."""
    migrations = load_migrations(cluster, ttl_days)
    _ensure_table(store, cluster)
    done = applied(store)
    ran: list[str] = []
    for migration in migrations:
        if migration.name in done:
            if done[migration.name] != migration.checksum:
                log.warning(
                    "migration %s changed since it was applied; not re-running it",
                    migration.name,
                )
            continue
        for statement in migration.statements:
            try:
                store.command(statement)
            except StoreError as exc:
                raise StoreError(f"migration {migration.name} failed: {exc}") from exc
        _record(store, migration)
        ran.append(migration.name)
        log.debug("applied migration %s", migration.name)
    return ran


def _record(store: Store, migration: Migration) -> None:
    """Remember ``migration`` as applied (names and checksums are [0-9a-z_] only)."""
    name = migration.name.replace("'", "")
    store.command(
        f"INSERT INTO {MIGRATIONS_TABLE} (name, checksum) "
        f"VALUES ('{name}', '{migration.checksum}')"
    )
