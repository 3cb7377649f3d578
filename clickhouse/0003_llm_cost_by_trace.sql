-- Cost per trace: an agent that loops ten times is one expensive row.
-- Spans of one trace arriving in different batches, minutes or services are
-- separate input rows that merge here; read with GROUP BY TraceId (or FINAL).
-- Aggregate spans (invoke_agent, framework sums) add nothing.
CREATE TABLE IF NOT EXISTS ${llm_cost_by_trace} ${ON_CLUSTER}
(
    TraceId String,
    Start SimpleAggregateFunction(min, DateTime64(9, 'UTC')),
    End SimpleAggregateFunction(max, DateTime64(9, 'UTC')),
    Team SimpleAggregateFunction(max, String),
    Feature SimpleAggregateFunction(max, String),
    Customer SimpleAggregateFunction(max, String),
    CostCenter SimpleAggregateFunction(max, String),
    Environment SimpleAggregateFunction(max, String),
    AgentName SimpleAggregateFunction(max, String),
    Services SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    Models SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    Calls SimpleAggregateFunction(sum, UInt64),
    UnpricedCalls SimpleAggregateFunction(sum, UInt64),
    ErrorCalls SimpleAggregateFunction(sum, UInt64),
    InputTokens SimpleAggregateFunction(sum, UInt64),
    OutputTokens SimpleAggregateFunction(sum, UInt64),
    CacheReadTokens SimpleAggregateFunction(sum, UInt64),
    CacheWriteTokens SimpleAggregateFunction(sum, UInt64),
    Cost SimpleAggregateFunction(sum, Decimal(38, 12))
)
ENGINE = ${AggregatingMergeTree}
ORDER BY TraceId
${TTL_BY_TRACE}
SETTINGS index_granularity = 8192${DEDUP_SETTING};

-- StatusCode: the contrib exporter writes 'Error' (ptrace StatusCode.String());
-- older releases wrote 'STATUS_CODE_ERROR'. Both count as errors.
CREATE MATERIALIZED VIEW IF NOT EXISTS llm_cost_by_trace_mv ${ON_CLUSTER} TO ${llm_cost_by_trace} AS
SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(addNanoseconds(Timestamp, DurationNs)) AS End,
    max(Team) AS Team,
    max(Feature) AS Feature,
    max(Customer) AS Customer,
    max(CostCenter) AS CostCenter,
    max(Environment) AS Environment,
    max(AgentName) AS AgentName,
    groupUniqArray(toString(ServiceName)) AS Services,
    groupUniqArrayIf(toString(Model), Status != 'aggregate' AND Model != '') AS Models,
    countIf(Status != 'aggregate') AS Calls,
    countIf(Status = 'unpriced') AS UnpricedCalls,
    countIf(Status != 'aggregate' AND StatusCode IN ('Error', 'STATUS_CODE_ERROR')) AS ErrorCalls,
    sumIf(InputTokens, Status != 'aggregate') AS InputTokens,
    sumIf(OutputTokens, Status != 'aggregate') AS OutputTokens,
    sumIf(CacheReadTokens, Status != 'aggregate') AS CacheReadTokens,
    sumIf(CacheWriteTokens, Status != 'aggregate') AS CacheWriteTokens,
    sumIf(Cost, Status = 'priced') AS Cost
FROM ${llm_calls}
GROUP BY TraceId;
