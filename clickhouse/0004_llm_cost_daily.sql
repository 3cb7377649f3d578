-- Showback and chargeback read this: per day x attribution x model x status.
-- Empty attribution strings are kept as such (reports label them
-- "(unattributed)") so untagged spend is its own visible row.
CREATE TABLE IF NOT EXISTS ${llm_cost_daily} ${ON_CLUSTER}
(
    Day Date,
    Team LowCardinality(String),
    Feature LowCardinality(String),
    Customer String,
    CostCenter LowCardinality(String),
    Environment LowCardinality(String),
    ServiceName LowCardinality(String),
    Provider LowCardinality(String),
    Model LowCardinality(String),
    Status LowCardinality(String),
    Calls UInt64,
    Errors UInt64,
    InputTokens UInt64,
    OutputTokens UInt64,
    CacheReadTokens UInt64,
    CacheWriteTokens UInt64,
    ReasoningTokens UInt64,
    Cost Decimal(38, 12)
)
-- No column list: SummingMergeTree sums every numeric column outside the sorting
-- key, which is exactly Calls..Cost, and the bare name also fits the Replicated
-- engine's (zoo_path, replica) arguments on a cluster.
ENGINE = ${SummingMergeTree}
PARTITION BY toYYYYMM(Day)
ORDER BY (Day, Team, Feature, Customer, CostCenter, Environment, ServiceName, Provider, Model, Status)
${TTL_DAILY}
SETTINGS index_granularity = 8192${DEDUP_SETTING};

-- StatusCode: the contrib exporter writes 'Error' (ptrace StatusCode.String());
-- older releases wrote 'STATUS_CODE_ERROR'. Both count as errors.
CREATE MATERIALIZED VIEW IF NOT EXISTS llm_cost_daily_mv ${ON_CLUSTER} TO ${llm_cost_daily} AS
SELECT
    Day, Team, Feature, Customer, CostCenter, Environment, ServiceName, Provider, Model, Status,
    count() AS Calls,
    countIf(StatusCode IN ('Error', 'STATUS_CODE_ERROR')) AS Errors,
    sum(InputTokens) AS InputTokens,
    sum(OutputTokens) AS OutputTokens,
    sum(CacheReadTokens) AS CacheReadTokens,
    sum(CacheWriteTokens) AS CacheWriteTokens,
    sum(ReasoningTokens) AS ReasoningTokens,
    sum(Cost) AS Cost
FROM ${llm_calls}
WHERE Status != 'aggregate'
GROUP BY Day, Team, Feature, Customer, CostCenter, Environment, ServiceName, Provider, Model, Status;
