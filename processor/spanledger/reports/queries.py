"""Every SQL statement the reports run, and nothing else.

Reports read the rollups (``llm_cost_daily``, ``llm_cost_by_trace``), never
``otel_traces``, so a month of spend is a few thousand rows whatever the span
volume. Money comes back as ``toString`` of the ``Decimal(38, 12)`` sums and
is parsed into :class:`~decimal.Decimal` here, so no backend driver can turn
a cost into a float on the way. Values are inlined as quoted literals (dates
we format ourselves, dimension names from a fixed list), so the SQL is the
same on chdb and on a ClickHouse server.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from spanledger.errors import UsageError
from spanledger.reports.period import Period
from spanledger.store.base import Store

#: ``--by`` dimension -> llm_cost_daily column
DIMENSIONS: dict[str, str] = {
    "team": "Team",
    "feature": "Feature",
    "customer": "Customer",
    "cost_center": "CostCenter",
    "model": "Model",
    "provider": "Provider",
    "service": "ServiceName",
    "environment": "Environment",
}


def parse_dimensions(text: str | None) -> tuple[str, ...]:
    """``team,feature`` -> ("team", "feature"); unknown or repeated names are a usage error."""
    names = [n.strip() for n in (text or "team").split(",")]
    if not all(names):
        raise UsageError(f"--by: empty dimension in {text!r}")
    for name in names:
        if name not in DIMENSIONS:
            raise UsageError(
                f"--by: unknown dimension {name!r} (expected some of: {', '.join(DIMENSIONS)})")
    if len(set(names)) != len(names):
        raise UsageError(f"--by: dimension repeated in {text!r}")
    return tuple(names)


def sql_str(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _day_filter(period: Period, column: str = "Day") -> str:
    return (f"{column} >= toDate({sql_str(period.start.isoformat())}) "
            f"AND {column} <= toDate({sql_str(period.end.isoformat())})")


def _env_filter(env: str | None) -> str:
    return f" AND Environment = {sql_str(env)}" if env else ""


ROLLUPS = ("llm_cost_daily", "llm_cost_by_trace")
NO_TABLES = ("this store has no spanledger tables yet (nothing was written to it): "
             "run `spanledger db migrate --url URL` or point --url at the collector's store")


def missing_rollups(store: Store) -> list[str]:
    """Rollup tables this store lacks (a store nothing was ever written to)."""
    names = ", ".join(sql_str(t) for t in ROLLUPS)
    have = {str(r[0]) for r in store.query(
        f"SELECT name FROM system.tables WHERE database = currentDatabase() AND name IN ({names})")}
    return [t for t in ROLLUPS if t not in have]


@dataclass(frozen=True, slots=True)
class SpendRow:
    """One group x provider x model x status of ``llm_cost_daily`` summed over the period."""

    group: tuple[str, ...]
    provider: str
    model: str
    status: str
    calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost: Decimal


def fetch_spend(store: Store, period: Period, dims: Sequence[str],
                env: str | None = None) -> list[SpendRow]:
    """Spend rows per group x provider x model x status (provider/model kept for re-pricing)."""
    cols = [DIMENSIONS[d] for d in dims]
    group_sql = ", ".join(f"toString({c})" for c in cols)
    sql = (
        f"SELECT {group_sql}, toString(Provider), toString(Model), toString(Status), "
        "sum(Calls), sum(Errors), sum(InputTokens), sum(OutputTokens), sum(CacheReadTokens), "
        "sum(CacheWriteTokens), sum(ReasoningTokens), toString(sum(Cost)) "
        f"FROM llm_cost_daily WHERE {_day_filter(period)}{_env_filter(env)} "
        f"GROUP BY {group_sql}, Provider, Model, Status"
    )
    n = len(cols)
    out = []
    for r in store.query(sql):
        out.append(SpendRow(
            group=tuple(str(v) for v in r[:n]), provider=str(r[n]), model=str(r[n + 1]),
            status=str(r[n + 2]), calls=int(r[n + 3]), errors=int(r[n + 4]),
            input_tokens=int(r[n + 5]), output_tokens=int(r[n + 6]),
            cache_read_tokens=int(r[n + 7]), cache_write_tokens=int(r[n + 8]),
            reasoning_tokens=int(r[n + 9]), cost=Decimal(str(r[n + 10])),
        ))
    return out


@dataclass(frozen=True, slots=True)
class CallUsageRow:
    """Priced calls of one group x provider x model that had exactly this usage."""

    group: tuple[str, ...]
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    calls: int
    cost: Decimal


def fetch_call_usage(store: Store, period: Period, dims: Sequence[str],
                     env: str | None = None) -> list[CallUsageRow]:
    """Priced calls grouped by their own usage, from ``llm_calls``.

    Re-pricing must see each call's usage: prices are tiered per call (e.g. a
    higher rate above 200k input tokens), so pricing the period's summed tokens
    as one call would put everything in the top tier. Calls with identical
    usage share a row, which keeps this to the number of distinct usages.
    """
    cols = [DIMENSIONS[d] for d in dims]
    group_sql = ", ".join(f"toString({c})" for c in cols)
    usage_cols = "InputTokens, OutputTokens, CacheReadTokens, CacheWriteTokens, ReasoningTokens"
    sql = (
        f"SELECT {group_sql}, toString(Provider), toString(Model), {usage_cols}, count(), "
        "toString(sum(Cost)) "
        f"FROM llm_calls WHERE Status = 'priced' AND {_day_filter(period)}{_env_filter(env)} "
        f"GROUP BY {group_sql}, Provider, Model, {usage_cols}"
    )
    n = len(cols)
    return [
        CallUsageRow(
            group=tuple(str(v) for v in r[:n]), provider=str(r[n]), model=str(r[n + 1]),
            input_tokens=int(r[n + 2]), output_tokens=int(r[n + 3]),
            cache_read_tokens=int(r[n + 4]), cache_write_tokens=int(r[n + 5]),
            reasoning_tokens=int(r[n + 6]), calls=int(r[n + 7]), cost=Decimal(str(r[n + 8])),
        )
        for r in store.query(sql)
    ]


@dataclass(frozen=True, slots=True)
class DailyRow:
    day: dt.date
    group: str
    cost: Decimal


def fetch_daily(store: Store, period: Period, dim: str = "team",
                env: str | None = None) -> list[DailyRow]:
    """Priced cost per day x one dimension (for the stacked spend chart)."""
    col = DIMENSIONS[dim]
    sql = (
        f"SELECT toString(Day), toString({col}), toString(sum(Cost)) FROM llm_cost_daily "
        f"WHERE {_day_filter(period)}{_env_filter(env)} GROUP BY Day, {col} ORDER BY Day"
    )
    return [DailyRow(dt.date.fromisoformat(str(r[0])), str(r[1]), Decimal(str(r[2])))
            for r in store.query(sql)]


@dataclass(frozen=True, slots=True)
class TraceRow:
    """One agent run (trace) from ``llm_cost_by_trace``, merged over its partial rows."""

    trace_id: str
    start: dt.datetime
    end: dt.datetime
    team: str
    feature: str
    customer: str
    services: tuple[str, ...]
    models: tuple[str, ...]
    calls: int
    unpriced_calls: int
    error_calls: int
    input_tokens: int
    output_tokens: int
    cost: Decimal

    @property
    def duration_s(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.0)


def _parse_ts(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value)).replace(tzinfo=dt.UTC)


def fetch_traces(store: Store, period: Period, feature: str | None = None,
                 env: str | None = None) -> list[TraceRow]:
    """All traces that started in the period (one row per TraceId, partial rows merged)."""
    having = [_day_filter(period, "toDate(min(Start))")]
    if feature is not None:
        having.append(f"max(Feature) = {sql_str(feature)}")
    if env:
        having.append(f"max(Environment) = {sql_str(env)}")
    sql = (
        "SELECT TraceId, toString(min(Start)), toString(max(End)), max(Team), max(Feature), "
        "max(Customer), arrayStringConcat(arraySort(groupUniqArrayArray(Services)), '\\n'), "
        "arrayStringConcat(arraySort(groupUniqArrayArray(Models)), '\\n'), "
        "sum(Calls), sum(UnpricedCalls), sum(ErrorCalls), sum(InputTokens), sum(OutputTokens), "
        "toString(sum(Cost)) "
        f"FROM llm_cost_by_trace GROUP BY TraceId HAVING {' AND '.join(having)}"
    )
    out = []
    for r in store.query(sql):
        out.append(TraceRow(
            trace_id=str(r[0]), start=_parse_ts(r[1]), end=_parse_ts(r[2]), team=str(r[3]),
            feature=str(r[4]), customer=str(r[5]),
            services=tuple(s for s in str(r[6]).split("\n") if s),
            models=tuple(m for m in str(r[7]).split("\n") if m),
            calls=int(r[8]), unpriced_calls=int(r[9]), error_calls=int(r[10]),
            input_tokens=int(r[11]), output_tokens=int(r[12]), cost=Decimal(str(r[13])),
        ))
    return out


@dataclass(frozen=True, slots=True)
class DetailRow:
    """One ``llm_cost_daily`` key (day x attribution x service x provider x model x status)."""

    day: dt.date
    attribution: dict[str, str]
    provider: str
    model: str
    status: str
    calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost: Decimal


_DETAIL_KEYS = ("team", "feature", "customer", "cost_center", "environment", "service")


def fetch_detail(store: Store, period: Period, env: str | None = None) -> list[DetailRow]:
    """The daily rollup at full detail (FOCUS export: one row per day and key)."""
    cols = ", ".join(f"toString({DIMENSIONS[k]})" for k in _DETAIL_KEYS)
    sql = (
        f"SELECT toString(Day), {cols}, toString(Provider), toString(Model), toString(Status), "
        "sum(Calls), sum(InputTokens), sum(OutputTokens), sum(CacheReadTokens), "
        "sum(CacheWriteTokens), toString(sum(Cost)) "
        f"FROM llm_cost_daily WHERE {_day_filter(period)}{_env_filter(env)} "
        "GROUP BY Day, Team, Feature, Customer, CostCenter, Environment, ServiceName, Provider, "
        "Model, Status ORDER BY Day, Team, Feature, Customer, CostCenter, Environment, "
        "ServiceName, Provider, Model, Status"
    )
    n = len(_DETAIL_KEYS)
    out = []
    for r in store.query(sql):
        out.append(DetailRow(
            day=dt.date.fromisoformat(str(r[0])),
            attribution={k: str(v) for k, v in zip(_DETAIL_KEYS, r[1:n + 1], strict=True)},
            provider=str(r[n + 1]), model=str(r[n + 2]), status=str(r[n + 3]),
            calls=int(r[n + 4]), input_tokens=int(r[n + 5]), output_tokens=int(r[n + 6]),
            cache_read_tokens=int(r[n + 7]), cache_write_tokens=int(r[n + 8]),
            cost=Decimal(str(r[n + 9])),
        ))
    return out
