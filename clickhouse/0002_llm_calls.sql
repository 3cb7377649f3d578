-- One typed row per priced, unpriced or aggregate GenAI span.
-- A span that carries GenAI usage but no spanledger status (written by a
-- collector that does not price) lands here as `unpriced`: visible, never a silent zero.
-- Money is Decimal(38, 12): exact to the pico-dollar, summed without drift.
CREATE TABLE IF NOT EXISTS ${llm_calls} ${ON_CLUSTER}
(
    Timestamp DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    Day Date CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    SpanName LowCardinality(String),
    ServiceName LowCardinality(String),
    Environment LowCardinality(String),
    Team LowCardinality(String),
    Feature LowCardinality(String),
    Customer String CODEC(ZSTD(1)),
    User String CODEC(ZSTD(1)),
    CostCenter LowCardinality(String),
    Provider LowCardinality(String),
    Operation LowCardinality(String),
    RequestModel LowCardinality(String),
    ResponseModel LowCardinality(String),
    Model LowCardinality(String),
    AgentName LowCardinality(String),
    InputTokens UInt64,
    OutputTokens UInt64,
    CacheReadTokens UInt64,
    CacheWriteTokens UInt64,
    ReasoningTokens UInt64,
    CostInput Decimal(38, 12),
    CostOutput Decimal(38, 12),
    CostCacheRead Decimal(38, 12),
    CostCacheWrite Decimal(38, 12),
    Cost Decimal(38, 12),
    CostRollup Decimal(38, 12),
    Status LowCardinality(String),
    PriceSource LowCardinality(String),
    Step UInt32,
    DurationNs UInt64,
    StatusCode LowCardinality(String),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ${MergeTree}
PARTITION BY toYYYYMM(Day)
ORDER BY (Day, Team, Feature, Model, TraceId, SpanId)
${TTL_CALLS}
SETTINGS index_granularity = 8192${DEDUP_SETTING};

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_calls_mv ${ON_CLUSTER} TO ${llm_calls} AS
SELECT
    toDateTime64(Timestamp, 9, 'UTC') AS Timestamp,
    toDate(Timestamp, 'UTC') AS Day,
    TraceId,
    SpanId,
    ParentSpanId,
    SpanName,
    ServiceName,
    if(ResourceAttributes['deployment.environment.name'] != '',
       ResourceAttributes['deployment.environment.name'],
       ResourceAttributes['deployment.environment']) AS Environment,
    SpanAttributes['spanledger.team'] AS Team,
    SpanAttributes['spanledger.feature'] AS Feature,
    SpanAttributes['spanledger.customer'] AS Customer,
    SpanAttributes['spanledger.user'] AS User,
    SpanAttributes['spanledger.cost_center'] AS CostCenter,
    if(SpanAttributes['gen_ai.provider.name'] != '',
       SpanAttributes['gen_ai.provider.name'],
       SpanAttributes['gen_ai.system']) AS Provider,
    SpanAttributes['gen_ai.operation.name'] AS Operation,
    SpanAttributes['gen_ai.request.model'] AS RequestModel,
    SpanAttributes['gen_ai.response.model'] AS ResponseModel,
    -- what was billed: the answering model, else the requested one; spans priced
    -- per call (vector databases, tools) are named by their system or tool
    multiIf(ResponseModel != '', ResponseModel,
            RequestModel != '', RequestModel,
            SpanAttributes['db.system.name'] != '', SpanAttributes['db.system.name'],
            SpanAttributes['db.system'] != '', SpanAttributes['db.system'],
            SpanAttributes['gen_ai.tool.name']) AS Model,
    SpanAttributes['gen_ai.agent.name'] AS AgentName,
    toUInt64OrZero(if(mapContains(SpanAttributes, 'gen_ai.usage.input_tokens'),
        SpanAttributes['gen_ai.usage.input_tokens'],
        SpanAttributes['gen_ai.usage.prompt_tokens'])) AS InputTokens,
    toUInt64OrZero(if(mapContains(SpanAttributes, 'gen_ai.usage.output_tokens'),
        SpanAttributes['gen_ai.usage.output_tokens'],
        SpanAttributes['gen_ai.usage.completion_tokens'])) AS OutputTokens,
    toUInt64OrZero(if(mapContains(SpanAttributes, 'gen_ai.usage.cache_read.input_tokens'),
        SpanAttributes['gen_ai.usage.cache_read.input_tokens'],
        SpanAttributes['gen_ai.usage.cache_read_input_tokens'])) AS CacheReadTokens,
    toUInt64OrZero(if(mapContains(SpanAttributes, 'gen_ai.usage.cache_creation.input_tokens'),
        SpanAttributes['gen_ai.usage.cache_creation.input_tokens'],
        SpanAttributes['gen_ai.usage.cache_creation_input_tokens'])) AS CacheWriteTokens,
    toUInt64OrZero(if(mapContains(SpanAttributes, 'gen_ai.usage.reasoning.output_tokens'),
        SpanAttributes['gen_ai.usage.reasoning.output_tokens'],
        SpanAttributes['gen_ai.usage.reasoning_tokens'])) AS ReasoningTokens,
    toDecimal128OrZero(SpanAttributes['spanledger.cost.input'], 12) AS CostInput,
    toDecimal128OrZero(SpanAttributes['spanledger.cost.output'], 12) AS CostOutput,
    toDecimal128OrZero(SpanAttributes['spanledger.cost.cache_read'], 12) AS CostCacheRead,
    toDecimal128OrZero(SpanAttributes['spanledger.cost.cache_write'], 12) AS CostCacheWrite,
    if(Status = 'priced', toDecimal128OrZero(SpanAttributes['gen_ai.usage.cost'], 12),
       toDecimal128(0, 12)) AS Cost,
    toDecimal128OrZero(SpanAttributes['spanledger.cost.rollup'], 12) AS CostRollup,
    if(SpanAttributes['spanledger.cost.status'] != '',
       SpanAttributes['spanledger.cost.status'], 'unpriced') AS Status,
    SpanAttributes['spanledger.price.source'] AS PriceSource,
    toUInt32OrZero(SpanAttributes['spanledger.step']) AS Step,
    Duration AS DurationNs,
    StatusCode
FROM ${otel_traces}
WHERE SpanAttributes['spanledger.cost.status'] IN ('priced', 'unpriced', 'aggregate')
   OR (SpanAttributes['spanledger.cost.status'] = ''
       AND (mapContains(SpanAttributes, 'gen_ai.usage.input_tokens')
         OR mapContains(SpanAttributes, 'gen_ai.usage.prompt_tokens')
         OR mapContains(SpanAttributes, 'gen_ai.usage.output_tokens')
         OR mapContains(SpanAttributes, 'gen_ai.usage.completion_tokens')));
