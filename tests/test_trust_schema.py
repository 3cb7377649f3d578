"""The schema's own bounds (clickhouse/0010_trust.sql), for writers that bypass the collector.

Rows go straight into ``otel_traces`` (as the contrib exporter writes them): a value past
the hard bounds becomes an ``invalid`` row counted nowhere, the bound itself is counted,
and the rollups' types hold the largest totals ARCHITECTURE.md ("Bounds") allows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Context, Decimal
from pathlib import Path

import pytest

from spanledger.collector.bounds import SCHEMA_MAX_COST_USD, SCHEMA_MAX_TOKENS
from spanledger.resources import data_dir
from spanledger.store import Store
from support.store import batch, migrated_store, span

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
UINT64_MAX = 2**64 - 1
#: the largest Decimal(38, 12): 26 nines, the point, 12 nines
DECIMAL_38_12_MAX = Decimal("9" * 26 + "." + "9" * 12)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with migrated_store(tmp_path / "store") as s:
        yield s


def test_the_sql_bounds_are_the_ones_the_collector_knows() -> None:
    text = (data_dir("clickhouse") / "0010_trust.sql").read_text(encoding="utf-8")
    assert f"BETWEEN 0 AND {SCHEMA_MAX_TOKENS:.0e}".replace("e+0", "e") in text
    assert f"BETWEEN 0 AND {SCHEMA_MAX_COST_USD:.0e}".replace("e+0", "e") in text


def _invalid(store: Store) -> dict[str, str]:
    return {team: reason for team, reason in store.query(
        "SELECT Team, InvalidReason FROM llm_calls WHERE Status = 'invalid'")}


def test_values_past_the_hard_bounds_are_invalid_and_the_bounds_counted(store: Store) -> None:
    edge = SCHEMA_MAX_TOKENS
    rows = [
        span("a" * 32, team="tokens-at", input_tokens=edge, cost=Decimal(1), start=NOW),
        span("b" * 32, team="tokens-over", input_tokens=edge + 1, cost=Decimal(1), start=NOW),
        span("c" * 32, team="cost-at", cost=Decimal(SCHEMA_MAX_COST_USD), start=NOW),
        span("d" * 32, team="cost-over", cost=Decimal("1000000.000001"), start=NOW),
        span("e" * 32, team="cost-nan", start=NOW, extra={"gen_ai.usage.cost": "nan"}),
        span("f" * 32, team="cost-negative", cost=Decimal(-1000), start=NOW),
        span("1" * 32, team="tokens-negative", input_tokens=-5, cost=Decimal(1), start=NOW),
        span("2" * 32, team="future", cost=Decimal(1), start=NOW + dt.timedelta(days=2)),
        span("3" * 32, team="tomorrow", cost=Decimal(1), start=NOW + dt.timedelta(hours=20)),
        span("4" * 32, team="made-up", status="free", start=NOW),
        span("5" * 32, team="no-usage", status="no_usage", start=NOW),
    ]
    # an instrumentation whose input excludes the cache: the column adds them up
    half = SCHEMA_MAX_TOKENS // 2 + 1
    for team, cache in (("bedrock-over", half), ("bedrock-at", half - 2)):
        row = span("6" * 32, team=team, input_tokens=half, cache_read=cache, cost=Decimal(1),
                   start=NOW)
        row["ScopeName"] = "opentelemetry.instrumentation.bedrock"
        rows.append(row)
    store.insert_arrow("otel_traces", batch(rows), "bounds")

    assert _invalid(store) == {"tokens-over": "tokens", "cost-over": "cost", "cost-nan": "cost",
                               "cost-negative": "cost", "tokens-negative": "tokens",
                               "future": "future", "bedrock-over": "tokens"}
    daily = {team: (calls, inp, str(cost)) for team, calls, inp, cost in store.query(
        "SELECT Team, sum(Calls), sum(InputTokens), toString(sum(Cost)) FROM llm_cost_daily "
        "GROUP BY Team")}
    assert daily == {"tokens-at": (1, edge, "1"), "cost-at": (1, 100, "1000000"),
                     "tomorrow": (1, 100, "1"), "made-up": (1, 100, "0"),
                     "no-usage": (1, 100, "0"), "bedrock-at": (1, edge, "1")}
    # a status spanledger does not write, or no_usage on a call: re-derived, flagged
    assert sorted(store.query("SELECT Team, Status, ClaimRejected FROM llm_calls "
                              "WHERE ClaimRejected != ''")) == [
        ("made-up", "unpriced", "free"), ("no-usage", "unpriced", "no_usage")]
    assert store.query("SELECT count() FROM llm_cost_by_trace WHERE Cost < 0") == [(0,)]


def test_the_rollups_hold_the_largest_totals_the_bounds_allow(store: Store) -> None:
    """A row one call at the bounds short of the types' maximum, then that call: exact."""
    day = NOW.date()
    key = {"Day": day, "Team": "max", "Feature": "", "Customer": "", "CostCenter": "",
           "Environment": "prod", "ServiceName": "svc", "Provider": "openai",
           "Model": "gpt-4o", "Status": "priced"}
    tokens = UINT64_MAX - SCHEMA_MAX_TOKENS
    cost = Decimal("9" * 19 + "8" + "9" * 6 + "." + "9" * 12)  # the maximum less 1e6
    assert Context(prec=60).add(cost, Decimal(SCHEMA_MAX_COST_USD)) == DECIMAL_38_12_MAX
    cols = ", ".join(key)
    values = ", ".join(f"'{v}'" for v in key.values())
    store.command(f"INSERT INTO llm_cost_daily ({cols}, Calls, InputTokens, Cost) "
                  f"VALUES ({values}, 1, {tokens}, toDecimal128('{cost}', 12))")
    store.command("INSERT INTO llm_cost_by_trace (TraceId, Start, End, InputTokens, Cost) "
                  f"VALUES ('{'9' * 32}', now64(9), now64(9), {tokens}, "
                  f"toDecimal128('{cost}', 12))")
    at_bounds = span("9" * 32, team="max", input_tokens=SCHEMA_MAX_TOKENS, output_tokens=0,
                     cost=Decimal(SCHEMA_MAX_COST_USD), start=NOW)
    store.insert_arrow("otel_traces", batch([at_bounds]), "max")
    for table in ("llm_cost_daily", "llm_cost_by_trace"):
        store.command(f"OPTIMIZE TABLE {table} FINAL")
    assert store.query("SELECT sum(InputTokens), toString(sum(Cost)) FROM llm_cost_daily "
                       "WHERE Team = 'max'") == [(UINT64_MAX, str(DECIMAL_38_12_MAX))]
    assert store.query("SELECT sum(InputTokens), toString(sum(Cost)) FROM llm_cost_by_trace "
                       f"WHERE TraceId = '{'9' * 32}'") == [(UINT64_MAX, str(DECIMAL_38_12_MAX))]
