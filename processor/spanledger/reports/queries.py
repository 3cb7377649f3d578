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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from spanledger.errors import UsageError
from spanledger.reports.period import Period
from spanledger.semconv import UNVERIFIED
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


def day_filter(period: Period, column: str = "Day") -> str:
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


# -- reading rows ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Col:
    """One selected value: the row field it fills, its SQL expression, its parser."""

    field: str
    sql: str
    parse: Callable[[Any], Any] = int


def money(value: object) -> Decimal:
    """A ``toString`` of a Decimal(38, 12) sum, exact (never through float)."""
    return Decimal(str(value))


def parse_day(value: object) -> dt.date:
    return dt.date.fromisoformat(str(value))


def _ts(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value)).replace(tzinfo=dt.UTC)


def _lines(value: object) -> tuple[str, ...]:
    """An ``arrayStringConcat(..., '\\n')`` back into its values."""
    return tuple(s for s in str(value).split("\n") if s)


def group_sql(dims: Sequence[str]) -> str:
    """The ``--by`` dimensions as string columns, for SELECT and GROUP BY alike."""
    return ", ".join(f"toString({DIMENSIONS[d]})" for d in dims)


def read_rows(store: Store, cols: Sequence[Col], rest: str,
              dims: Sequence[str] = ()) -> list[dict[str, Any]]:
    """``SELECT [group columns,] cols rest`` as dicts of parsed fields.

    With ``dims`` the first values are the group (``group`` field, a tuple of
    strings), so every query keyed by ``--by`` reads its rows the same way.
    """
    select = ", ".join([*([group_sql(dims)] if dims else []), *(c.sql for c in cols)])
    n = len(dims)
    out = []
    for r in store.query(f"SELECT {select} {rest}"):
        row = {c.field: c.parse(v) for c, v in zip(cols, r[n:], strict=True)}
        if dims:
            row["group"] = tuple(str(v) for v in r[:n])
        out.append(row)
    return out


def _period_where(period: Period, env: str | None, team: str | None = None,
                  feature: str | None = None) -> str:
    return f"WHERE {day_filter(period)}{_env_filter(env)}{attribution_filter(team, feature)}"


def attribution_filter(team: str | None = None, feature: str | None = None,
                       team_col: str = "Team", feature_col: str = "Feature") -> str:
    """`` AND Team = '...'`` for the pickers of the live report (None: every value;
    an empty string: the untagged rows)."""
    out = f" AND {team_col} = {sql_str(team)}" if team is not None else ""
    return out + (f" AND {feature_col} = {sql_str(feature)}" if feature is not None else "")


# -- spend --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SpendRow:
    """One group x provider x model x status of ``llm_cost_daily`` summed over the period.

    ``calls`` counts calls of every kind; ``llm_calls``, ``tool_calls`` and
    ``vector_calls`` split them (an aggregate tool span counts as a tool call only),
    ``duplicate_spans`` are second spans of calls counted elsewhere (never in calls),
    ``tool_cost`` / ``vector_cost`` are the parts of ``cost`` spent on tools and vector
    databases. Defaults: rows built by hand for an LLM-only world.
    """

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
    llm_calls: int | None = None
    tool_calls: int = 0
    vector_calls: int = 0
    duplicate_spans: int = 0
    tool_cost: Decimal = Decimal(0)
    vector_cost: Decimal = Decimal(0)
    #: the part of calls / cost booked here as late arrivals for a closed period, and the
    #: calls whose reported cost differs from the collector's
    late_calls: int = 0
    late_cost: Decimal = Decimal(0)
    disagreements: int = 0

    @property
    def model_calls(self) -> int:
        """LLM (model) calls: ``llm_calls``, else every call (a row without the kinds)."""
        return self.calls if self.llm_calls is None else self.llm_calls


_KEY = (Col("provider", "toString(Provider)", str), Col("model", "toString(Model)", str))
_SUMMED_TOKENS = (Col("input_tokens", "sum(InputTokens)"),
                  Col("output_tokens", "sum(OutputTokens)"),
                  Col("cache_read_tokens", "sum(CacheReadTokens)"),
                  Col("cache_write_tokens", "sum(CacheWriteTokens)"))
_COST = Col("cost", "toString(sum(Cost))", money)
#: calls of each kind, duplicates, and the cost of tools / vector databases (llm_cost_daily)
KIND_COLS = (Col("llm_calls", "sum(LlmCalls)"), Col("tool_calls", "sum(ToolCalls)"),
             Col("vector_calls", "sum(VectorCalls)"),
             Col("duplicate_spans", "sum(DuplicateSpans)"),
             Col("tool_cost", "toString(sum(ToolCost))", money),
             Col("vector_cost", "toString(sum(VectorCost))", money))
#: late arrivals booked in the period (closed periods' adjustment), disagreeing calls
TRUST_COLS = (Col("late_calls", "sum(LateCalls)"),
              Col("late_cost", "toString(sum(LateCost))", money),
              Col("disagreements", "sum(Disagreements)"))
_SPEND = (*_KEY, Col("status", "toString(Status)", str), Col("calls", "sum(Calls)"),
          Col("errors", "sum(Errors)"), *_SUMMED_TOKENS,
          Col("reasoning_tokens", "sum(ReasoningTokens)"), _COST, *KIND_COLS, *TRUST_COLS)


def fetch_spend(store: Store, period: Period, dims: Sequence[str],
                env: str | None = None, *, team: str | None = None,
                feature: str | None = None) -> list[SpendRow]:
    """Spend rows per group x provider x model x status (provider/model kept for re-pricing)."""
    rest = (f"FROM llm_cost_daily {_period_where(period, env, team, feature)} "
            f"GROUP BY {group_sql(dims)}, Provider, Model, Status")
    return [SpendRow(**r) for r in read_rows(store, _SPEND, rest, dims)]


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
    #: 1-hour cache writes (part of cache_write_tokens) and the service tier priced
    cache_write_1h_tokens: int = 0
    tier: str = ""


_USAGE = ("InputTokens", "OutputTokens", "CacheReadTokens", "CacheWriteTokens", "ReasoningTokens",
          "CacheWrite1hTokens")
#: a call is re-priced with its usage and the service tier it was priced at
_CALL_KEY = (*_USAGE, "PriceTier")
_CALL_USAGE = (*_KEY, *(Col(f, c) for f, c in zip(
    ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
     "reasoning_tokens", "cache_write_1h_tokens"), _USAGE, strict=True)),
    Col("calls", "count()"), _COST, Col("tier", "toString(PriceTier)", str))


def fetch_call_usage(store: Store, period: Period, dims: Sequence[str],
                     env: str | None = None) -> list[CallUsageRow]:
    """Priced calls grouped by their own usage, from ``llm_calls``.

    Re-pricing must see each call's usage: prices are tiered per call (e.g. a
    higher rate above 200k input tokens), so pricing the period's summed tokens
    as one call would put everything in the top tier. Calls with identical
    usage share a row, which keeps this to the number of distinct usages.
    """
    rest = (f"FROM llm_calls WHERE Status = 'priced' AND {day_filter(period)}"
            f"{_env_filter(env)} GROUP BY {group_sql(dims)}, Provider, Model, "
            f"{', '.join(_CALL_KEY)}")
    return [CallUsageRow(**r) for r in read_rows(store, _CALL_USAGE, rest, dims)]


@dataclass(frozen=True, slots=True)
class ModelUsageRow:
    """Calls of one group x model: how many, their tokens and how long they ran."""

    group: tuple[str, ...]
    model: str
    calls: int
    tokens: int
    duration_ns: int


_MODEL_USAGE = (Col("model", "toString(Model)", str), Col("calls", "count()"),
                Col("tokens", "sum(InputTokens) + sum(OutputTokens)"),
                Col("duration_ns", "sum(DurationNs)"))


def fetch_model_usage(store: Store, period: Period, dims: Sequence[str],
                      env: str | None = None) -> list[ModelUsageRow]:
    """Calls per group x model from ``llm_calls`` (the rollups keep no durations).

    GPU pools are shared out by these tokens or span-seconds; aggregate and
    duplicate spans are left out as in every rollup, unpriced calls kept (a
    self-hosted model priced only by its GPUs has no per-token price).
    """
    rest = (f"FROM llm_calls WHERE Status NOT IN ('aggregate', 'duplicate', 'invalid') "
            f"AND {day_filter(period)}"
            f"{_env_filter(env)} GROUP BY {group_sql(dims)}, Model")
    return [ModelUsageRow(**r) for r in read_rows(store, _MODEL_USAGE, rest, dims)]


@dataclass(frozen=True, slots=True)
class DailyRow:
    day: dt.date
    group: str
    cost: Decimal


def fetch_daily(store: Store, period: Period, dim: str = "team",
                env: str | None = None, *, team: str | None = None,
                feature: str | None = None) -> list[DailyRow]:
    """Priced cost per day x one dimension (for the stacked spend chart): a group without a
    priced call is not in it at all (an unknown cost is no $0 bar)."""
    col = DIMENSIONS[dim]
    cols = (Col("day", "toString(Day)", parse_day), Col("group", f"toString({col})", str), _COST)
    rest = (f"FROM llm_cost_daily {_period_where(period, env, team, feature)} "
            "AND Status = 'priced' "
            f"GROUP BY Day, {col} ORDER BY Day")
    return [DailyRow(**r) for r in read_rows(store, cols, rest)]


# -- traces -------------------------------------------------------------------------------

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
    #: the kinds of ``calls`` and the duplicates (None: LLM calls = calls)
    llm_calls: int | None = None
    tool_calls: int = 0
    vector_calls: int = 0
    duplicate_spans: int = 0

    @property
    def model_calls(self) -> int:
        """LLM (model) calls of the run."""
        return self.calls if self.llm_calls is None else self.llm_calls

    @property
    def wholly_unpriced(self) -> bool:
        """Calls, none of them priced: the run's cost is unknown, not $0."""
        return self.calls > 0 and self.cost == 0 and self.unpriced_calls + self.tool_calls \
            + self.vector_calls >= self.calls

    @property
    def duration_s(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.0)


_TRACE = (
    Col("trace_id", "TraceId", str), Col("start", "toString(min(Start))", _ts),
    Col("end", "toString(max(End))", _ts), Col("team", "max(Team)", str),
    Col("feature", "max(Feature)", str), Col("customer", "max(Customer)", str),
    Col("services", "arrayStringConcat(arraySort(groupUniqArrayArray(Services)), '\\n')", _lines),
    Col("models", "arrayStringConcat(arraySort(groupUniqArrayArray(Models)), '\\n')", _lines),
    Col("calls", "sum(Calls)"), Col("unpriced_calls", "sum(UnpricedCalls)"),
    Col("error_calls", "sum(ErrorCalls)"), *_SUMMED_TOKENS[:2], _COST,
    Col("llm_calls", "sum(LlmCalls)"), Col("tool_calls", "sum(ToolCalls)"),
    Col("vector_calls", "sum(VectorCalls)"), Col("duplicate_spans", "sum(DuplicateSpans)"),
)


def fetch_traces(store: Store, period: Period, feature: str | None = None,
                 env: str | None = None, *, team: str | None = None) -> list[TraceRow]:
    """All traces that started in the period (one row per TraceId, partial rows merged)."""
    having = [day_filter(period, "toDate(min(Start))")]
    if feature is not None:
        having.append(f"max(Feature) = {sql_str(feature)}")
    if team is not None:
        having.append(f"max(Team) = {sql_str(team)}")
    if env:
        having.append(f"max(Environment) = {sql_str(env)}")
    rest = f"FROM llm_cost_by_trace GROUP BY TraceId HAVING {' AND '.join(having)}"
    return [TraceRow(**r) for r in read_rows(store, _TRACE, rest)]


# -- FOCUS detail ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FocusUsageRow:
    """Priced calls of one day x attribution x service x provider x model with exactly this usage.

    Grouped by usage, so each call can be re-priced at the list price on its own
    (prices are tiered per call); the cost parts are the calls' own (negotiated) cost.
    """

    day: dt.date
    attribution: dict[str, str]
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    calls: int
    cost_input: Decimal
    cost_output: Decimal
    cost_cache_read: Decimal
    cost_cache_write: Decimal


_DETAIL_KEYS = ("team", "feature", "customer", "cost_center", "environment", "service")
_FOCUS = (Col("day", "toString(Day)", parse_day),
          *(Col(k, f"toString({DIMENSIONS[k]})", str) for k in _DETAIL_KEYS),
          *_KEY, *(Col(f, c) for f, c in zip(
              ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"),
              _USAGE[:4], strict=True)),
          Col("calls", "count()"),
          *(Col(f"cost_{p}", f"toString(sum(Cost{c}))", money) for p, c in (
              ("input", "Input"), ("output", "Output"), ("cache_read", "CacheRead"),
              ("cache_write", "CacheWrite"))))
_FOCUS_GROUP = ("Day, Team, Feature, Customer, CostCenter, Environment, ServiceName, Provider, "
                "Model, " + ", ".join(_USAGE[:4]))


def fetch_focus_usage(store: Store, period: Period,
                      env: str | None = None) -> list[FocusUsageRow]:
    """Priced calls at full detail, by usage (FOCUS export: cost parts per token type)."""
    rest = (f"FROM llm_calls WHERE Status = 'priced' AND {day_filter(period)}{_env_filter(env)} "
            f"GROUP BY {_FOCUS_GROUP} ORDER BY {_FOCUS_GROUP}")
    out = []
    for r in read_rows(store, _FOCUS, rest):
        attribution = {k: r.pop(k) for k in _DETAIL_KEYS}
        out.append(FocusUsageRow(attribution=attribution, **r))
    return out


def fetch_unpriced(store: Store, period: Period, env: str | None = None) -> tuple[int, int]:
    """Unpriced calls of the period and their tokens (input + output)."""
    cols = (Col("calls", "count()"), Col("tokens", "sum(InputTokens) + sum(OutputTokens)"))
    rest = (f"FROM llm_calls WHERE Status = 'unpriced' AND {day_filter(period)}"
            f"{_env_filter(env)}")
    row = read_rows(store, cols, rest)[0]
    return int(row["calls"]), int(row["tokens"])


# -- unverified attribution ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class UnverifiedSpend:
    """Calls whose collector token may not claim their team, cost centre or service.

    They are stored with ``(unverified)`` in that column (its own report row); this
    counts them whatever the report is grouped by.
    """

    calls: int
    cost: Decimal


def fetch_unverified(store: Store, period: Period, env: str | None = None, *,
                     team: str | None = None, feature: str | None = None) -> UnverifiedSpend:
    """Calls and cost of the period stored as ``(unverified)`` in any attribution column."""
    mark = sql_str(UNVERIFIED)
    cols = (Col("calls", "sum(Calls)"), _COST)
    rest = (f"FROM llm_cost_daily {_period_where(period, env, team, feature)} "
            f"AND (Team = {mark} OR CostCenter = {mark} OR ServiceName = {mark})")
    row = read_rows(store, cols, rest)[0]
    return UnverifiedSpend(int(row["calls"]), row["cost"])


# -- unit economics: outcomes, runs, customers, call kinds, steps --------------------------

#: tables of migration 0009 (a store migrated by an older spanledger lacks them)
OUTCOME_TABLES = ("outcomes_daily", "outcomes_by_trace")
NO_OUTCOME_TABLES = ("this store has no outcome tables yet: run `spanledger db migrate` (or "
                     "restart the collector) so outcomes recorded with spanledger.outcome() "
                     "are counted")


def missing_tables(store: Store, tables: Sequence[str]) -> list[str]:
    """Which of ``tables`` this store lacks."""
    names = ", ".join(sql_str(t) for t in tables)
    have = {str(r[0]) for r in store.query(
        f"SELECT name FROM system.tables WHERE database = currentDatabase() AND name IN ({names})")}
    return [t for t in tables if t not in have]


@dataclass(frozen=True, slots=True)
class Scope:
    """The slice a report looks at: environment, team, feature (None: every value;
    an empty string: the untagged rows). The live report's pickers fill it."""

    env: str | None = None
    team: str | None = None
    feature: str | None = None

    def where(self, env_col: str = "Environment", team_col: str = "Team",
              feature_col: str = "Feature") -> str:
        """`` AND ...`` conditions on already-resolved columns."""
        env = f" AND {env_col} = {sql_str(self.env)}" if self.env else ""
        return env + attribution_filter(self.team, self.feature, team_col, feature_col)


#: every environment, team and feature
ALL = Scope()

#: ``--by`` dimensions the run and outcome queries can group by -> their column
RUN_DIMENSIONS: dict[str, str] = {"team": "Team", "feature": "Feature", "customer": "Customer"}


def _run_group(dims: Sequence[str], prefix: str = "") -> str:
    return ", ".join(f"toString({prefix}{RUN_DIMENSIONS[d]})" for d in dims)


def _runs_sql(period: Period | None, scope: Scope, only: str = "") -> str:
    """One row per run (trace): its attribution (``Run*``), start day and priced cost.

    ``period`` None: every run (``only`` then narrows them, e.g. to the runs some
    outcome names); else the runs that started in the period, in ``scope``. The
    aliases differ from the column names: ClickHouse would read ``max(Team) AS Team``
    back into a later ``max(Team)``.
    """
    having = []
    if period is not None:
        having.append(day_filter(period, "toDate(min(Start))"))
        if scope.env:
            having.append(f"max(Environment) = {sql_str(scope.env)}")
        if scope.team is not None:
            having.append(f"max(Team) = {sql_str(scope.team)}")
        if scope.feature is not None:
            having.append(f"max(Feature) = {sql_str(scope.feature)}")
    where = f"WHERE {only} " if only else ""
    cond = f"HAVING {' AND '.join(having)}" if having else ""
    return ("SELECT TraceId, toDate(min(Start)) AS RunDay, max(Team) AS RunTeam, "
            "max(Feature) AS RunFeature, max(Customer) AS RunCustomer, "
            "max(Environment) AS RunEnvironment, sum(Calls) AS RunCalls, sum(Cost) AS RunCost "
            f"FROM llm_cost_by_trace {where}GROUP BY TraceId {cond}")


def _outcome_runs_sql(period: Period) -> str:
    """Run trace ids with an outcome; an outcome is never recorded before its run began."""
    return (f"SELECT RunTraceId FROM outcomes_by_trace "
            f"WHERE Day >= toDate({sql_str(period.start.isoformat())})")


def _grouped(store: Store, dims: Sequence[str], prefix: str, cols: Sequence[Col],
             rest: str) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    select = ", ".join([_run_group(dims, prefix), *(c.sql for c in cols)])
    n = len(dims)
    return [(tuple(str(v) for v in r[:n]),
             {c.field: c.parse(v) for c, v in zip(cols, r[n:], strict=True)})
            for r in store.query(f"SELECT {select} {rest}")]


@dataclass(frozen=True, slots=True)
class RunGroupRow:
    """The runs (traces with LLM calls) of one group that started in the period."""

    group: tuple[str, ...]
    runs: int
    #: runs that at least one outcome (of any name) was recorded for
    runs_with_outcome: int
    calls: int
    cost: Decimal
    #: priced cost of the runs without any outcome
    waste: Decimal


_RUN_GROUP = (Col("runs", "count()"), Col("runs_with_outcome", "countIf(HasOutcome)"),
              Col("calls", "sum(RunCalls)"), Col("cost", "toString(sum(RunCost))", money),
              Col("waste", "toString(sumIf(RunCost, NOT HasOutcome))", money))


def fetch_run_groups(store: Store, period: Period, dims: Sequence[str],
                     scope: Scope = ALL) -> list[RunGroupRow]:
    """Runs, their cost, and the cost of those that produced no outcome (waste), per group."""
    rest = (f"FROM (SELECT *, TraceId IN ({_outcome_runs_sql(period)}) AS HasOutcome "
            f"FROM ({_runs_sql(period, scope)})) GROUP BY {_run_group(dims, 'Run')}")
    return [RunGroupRow(group=g, **v) for g, v in _grouped(store, dims, "Run", _RUN_GROUP, rest)]


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """Outcomes of one name counted for one group's runs in the period."""

    group: tuple[str, ...]
    name: str
    #: runs with this outcome (outcomes without a metered run are in ``unlinked`` only)
    runs: int
    #: outcome records, and the sum of their values (what cost is divided by)
    outcomes: int
    value: Decimal
    #: outcomes whose run has no LLM call in the store (counted by their own attribution)
    unlinked: int


_OUTCOME = (Col("name", "toString(Name)", str), Col("runs", "countIf(Linked)"),
            Col("outcomes", "sum(Outcomes)"), Col("value", "toString(sum(Value))", money),
            Col("unlinked", "sumIf(Outcomes, NOT Linked)"))
_RESOLVED = ("Team", "Feature", "Customer", "Environment")


def fetch_outcomes(store: Store, period: Period, dims: Sequence[str],
                   scope: Scope = ALL) -> list[OutcomeRow]:
    """Outcomes per group x name, for the runs that started in the period.

    An outcome is counted for its run (``outcomes_by_trace.RunTraceId``) with the
    run's attribution and start day, so a webhook's outcome lands on the feature and
    customer whose calls it paid for. An outcome whose run made no LLM call here is
    counted by its own attribution and day.
    """
    start = sql_str(period.start.isoformat())
    outcomes = ("SELECT RunTraceId, Name, min(Day) AS FirstDay, "
                + ", ".join(f"max({c}) AS Own{c}" for c in _RESOLVED)
                + ", sum(Outcomes) AS OwnOutcomes, sum(Value) AS OwnValue "
                f"FROM outcomes_by_trace WHERE Day >= toDate({start}) GROUP BY RunTraceId, Name")
    runs = _runs_sql(None, scope, f"TraceId IN ({_outcome_runs_sql(period)})")
    resolved = ", ".join(f"if(r.TraceId != '', r.Run{c}, o.Own{c}) AS {c}" for c in _RESOLVED)
    joined = (f"SELECT o.Name AS Name, o.OwnOutcomes AS Outcomes, o.OwnValue AS Value, "
              f"r.TraceId != '' AS Linked, {resolved}, "
              f"if(r.TraceId != '', r.RunDay, o.FirstDay) AS Day "
              f"FROM ({outcomes}) AS o LEFT JOIN ({runs}) AS r ON o.RunTraceId = r.TraceId")
    rest = (f"FROM ({joined}) WHERE {day_filter(period)}{scope.where()} "
            f"GROUP BY {_run_group(dims)}, Name")
    return [OutcomeRow(group=g, **v) for g, v in _grouped(store, dims, "", _OUTCOME, rest)]


def fetch_active_users(store: Store, period: Period, dims: Sequence[str],
                       scope: Scope = ALL) -> tuple[dict[tuple[str, ...], int], int]:
    """Distinct users with at least one LLM call per group, and over all groups.

    From ``llm_calls`` (the rollups keep no users); aggregate spans left out.
    """
    where = (f"WHERE Status NOT IN ('aggregate', 'duplicate', 'invalid') AND User != '' "
             f"AND {day_filter(period)}{scope.where()}")
    cols = ", ".join(f"toString({DIMENSIONS[d]})" for d in dims)
    per = {tuple(str(v) for v in r[:-1]): int(r[-1]) for r in store.query(
        f"SELECT {cols}, uniqExact(User) FROM llm_calls {where} GROUP BY {cols}")}
    total = int(store.query(f"SELECT uniqExact(User) FROM llm_calls {where}")[0][0] or 0)
    return per, total


# What a priced row of llm_calls is: a model call, a tool call or a vector-database query.
# Derived here from llm_calls' columns until the rollups carry the kind themselves; every
# query that splits by kind uses this one expression, so switching is one edit.
CALL_KINDS = ("llm", "tool", "vector_db")
KIND_LABELS = {"llm": "LLM calls", "tool": "tool calls", "vector_db": "vector-database queries"}
#: one call of each kind (the drill-down's steps)
KIND_NAMES = {"llm": "LLM call", "tool": "tool call", "vector_db": "vector-DB query"}


def call_kind_sql() -> str:
    """The call kind of an ``llm_calls`` row: ``llm``, ``tool`` or ``vector_db`` (the
    ``CallKind`` column the view derives once, so every report agrees)."""
    return "toString(CallKind)"


@dataclass(frozen=True, slots=True)
class CallKindRow:
    kind: str
    status: str
    calls: int
    tokens: int
    cost: Decimal


def fetch_call_kinds(store: Store, period: Period, scope: Scope = ALL) -> list[CallKindRow]:
    """Calls, tokens and cost per call kind and status (aggregate and duplicate spans
    left out: they count no call)."""
    cols = (Col("kind", call_kind_sql(), str), Col("status", "toString(Status)", str),
            Col("calls", "count()"), Col("tokens", "sum(InputTokens) + sum(OutputTokens)"),
            _COST)
    rest = (f"FROM llm_calls WHERE Status NOT IN ('aggregate', 'duplicate', 'invalid') "
            f"AND {day_filter(period)}{scope.where()} GROUP BY {call_kind_sql()}, Status")
    return [CallKindRow(**r) for r in read_rows(store, cols, rest)]


@dataclass(frozen=True, slots=True)
class DailyGroupRow:
    """One day x group of ``llm_cost_daily``: calls, tokens (input + output), priced cost."""

    day: dt.date
    group: tuple[str, ...]
    calls: int
    tokens: int
    cost: Decimal


def fetch_daily_groups(store: Store, period: Period, dims: Sequence[str],
                       scope: Scope = ALL) -> list[DailyGroupRow]:
    """Per day x ``dims`` (e.g. model mix over time, team x feature for call-outs)."""
    cols = (Col("day", "toString(Day)", parse_day), Col("calls", "sum(Calls)"),
            Col("tokens", "sum(InputTokens) + sum(OutputTokens)"), _COST)
    rest = (f"FROM llm_cost_daily WHERE {day_filter(period)}{scope.where()} "
            f"GROUP BY Day, {group_sql(dims)} ORDER BY Day")
    return [DailyGroupRow(**r) for r in read_rows(store, cols, rest, dims)]


@dataclass(frozen=True, slots=True)
class StepRow:
    """One call of a run, in the order it was made (the drill-down's waterfall)."""

    trace_id: str
    time: dt.datetime
    service: str
    operation: str
    model: str
    kind: str
    status: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cost: Decimal


_STEP = (Col("trace_id", "TraceId", str), Col("time", "toString(Timestamp)", _ts),
         Col("service", "toString(ServiceName)", str),
         Col("operation", "toString(Operation)", str), Col("model", "toString(Model)", str),
         Col("kind", call_kind_sql(), str), Col("status", "toString(Status)", str),
         Col("input_tokens", "InputTokens"), Col("output_tokens", "OutputTokens"),
         Col("cache_read_tokens", "CacheReadTokens"), Col("cost", "toString(Cost)", money))


def fetch_trace_steps(store: Store, trace_ids: Sequence[str]) -> list[StepRow]:
    """Every counted call of these runs (no aggregate spans), in time order per run."""
    if not trace_ids:
        return []
    ids = ", ".join(sql_str(t) for t in trace_ids)
    rest = (f"FROM llm_calls WHERE TraceId IN ({ids}) "
            "AND Status NOT IN ('aggregate', 'duplicate', 'invalid') "
            "ORDER BY TraceId, Timestamp, Step, SpanId")
    return [StepRow(**r) for r in read_rows(store, _STEP, rest)]


def fetch_attribution_values(store: Store, since: dt.date) -> tuple[list[str], list[str]]:
    """Teams and features with spend since ``since`` (the live report's pickers)."""
    rows = store.query("SELECT DISTINCT toString(Team), toString(Feature) FROM llm_cost_daily "
                       f"WHERE Day >= toDate({sql_str(since.isoformat())})")
    return sorted({str(r[0]) for r in rows}), sorted({str(r[1]) for r in rows})
