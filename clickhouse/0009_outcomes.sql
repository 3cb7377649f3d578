-- Business outcomes (`spanledger.outcome(...)` in a service: a resolved ticket, a
-- conversion), so cost can be divided by what it achieved. Each outcome is one
-- small span whose spanledger.outcome.name marks it; any writer of otel_traces
-- (our collector, the contrib exporter) feeds these views.
--
-- outcomes_daily: per UTC day x attribution x outcome name, the outcome span's own
-- attribution (baggage of the service that recorded it). Outcomes = how many were
-- recorded, Value = the sum of their values (numbers, never money).
CREATE TABLE IF NOT EXISTS ${outcomes_daily} ${ON_CLUSTER}
(
    Day Date,
    Team LowCardinality(String),
    Feature LowCardinality(String),
    Customer String,
    CostCenter LowCardinality(String),
    Environment LowCardinality(String),
    ServiceName LowCardinality(String),
    Name LowCardinality(String),
    Outcomes UInt64,
    Value Decimal(38, 9)
)
ENGINE = ${SummingMergeTree}
PARTITION BY toYYYYMM(Day)
ORDER BY (Day, Team, Feature, Customer, CostCenter, Environment, ServiceName, Name)
SETTINGS index_granularity = 8192${DEDUP_SETTING};

CREATE MATERIALIZED VIEW IF NOT EXISTS outcomes_daily_mv ${ON_CLUSTER} TO ${outcomes_daily} AS
SELECT
    toDate(Timestamp, 'UTC') AS Day,
    SpanAttributes['spanledger.team'] AS Team,
    SpanAttributes['spanledger.feature'] AS Feature,
    SpanAttributes['spanledger.customer'] AS Customer,
    SpanAttributes['spanledger.cost_center'] AS CostCenter,
    if(ResourceAttributes['deployment.environment.name'] != '',
       ResourceAttributes['deployment.environment.name'],
       ResourceAttributes['deployment.environment']) AS Environment,
    ServiceName,
    SpanAttributes['spanledger.outcome.name'] AS Name,
    count() AS Outcomes,
    -- a value the service did not give counts 1; one that is not a number counts 0
    sum(if(mapContains(SpanAttributes, 'spanledger.outcome.value'),
           toDecimal128OrZero(SpanAttributes['spanledger.outcome.value'], 9),
           toDecimal128(1, 9))) AS Value
FROM ${otel_traces}
WHERE SpanAttributes['spanledger.outcome.name'] != ''
GROUP BY Day, Team, Feature, Customer, CostCenter, Environment, ServiceName, Name;

-- outcomes_by_trace: per run (RunTraceId) x outcome name, for cost per run and waste
-- (runs of a feature without any outcome). The run is the trace the outcome names in
-- spanledger.outcome.trace_id (a webhook recording it later, in its own trace), else
-- the outcome span's own trace. Read with GROUP BY RunTraceId, Name (rows merge late);
-- join on llm_cost_by_trace.TraceId, whose attribution is the run's.
CREATE TABLE IF NOT EXISTS ${outcomes_by_trace} ${ON_CLUSTER}
(
    RunTraceId String,
    Name LowCardinality(String),
    Day SimpleAggregateFunction(min, Date),
    LastDay SimpleAggregateFunction(max, Date),
    Team SimpleAggregateFunction(max, String),
    Feature SimpleAggregateFunction(max, String),
    Customer SimpleAggregateFunction(max, String),
    Environment SimpleAggregateFunction(max, String),
    Outcomes SimpleAggregateFunction(sum, UInt64),
    Value SimpleAggregateFunction(sum, Decimal(38, 9))
)
ENGINE = ${AggregatingMergeTree}
ORDER BY (RunTraceId, Name)
${TTL_OUTCOMES_BY_TRACE}
SETTINGS index_granularity = 8192${DEDUP_SETTING};

CREATE MATERIALIZED VIEW IF NOT EXISTS outcomes_by_trace_mv ${ON_CLUSTER} TO ${outcomes_by_trace} AS
SELECT
    if(SpanAttributes['spanledger.outcome.trace_id'] != '',
       lower(SpanAttributes['spanledger.outcome.trace_id']), TraceId) AS RunTraceId,
    SpanAttributes['spanledger.outcome.name'] AS Name,
    min(toDate(Timestamp, 'UTC')) AS Day,
    max(toDate(Timestamp, 'UTC')) AS LastDay,
    max(SpanAttributes['spanledger.team']) AS Team,
    max(SpanAttributes['spanledger.feature']) AS Feature,
    max(SpanAttributes['spanledger.customer']) AS Customer,
    max(if(ResourceAttributes['deployment.environment.name'] != '',
           ResourceAttributes['deployment.environment.name'],
           ResourceAttributes['deployment.environment'])) AS Environment,
    count() AS Outcomes,
    sum(if(mapContains(SpanAttributes, 'spanledger.outcome.value'),
           toDecimal128OrZero(SpanAttributes['spanledger.outcome.value'], 9),
           toDecimal128(1, 9))) AS Value
FROM ${otel_traces}
WHERE SpanAttributes['spanledger.outcome.name'] != ''
GROUP BY RunTraceId, Name;
