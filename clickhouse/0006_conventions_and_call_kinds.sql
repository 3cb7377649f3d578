-- One call, one cost, whatever instruments it; LLM, tool and vector-database calls apart.
--
-- 1. llm_calls reads every usage convention spanledger prices (pricing/conventions.py):
--    first the normalized values the processor or the collector priced from
--    (spanledger.usage.*, spanledger.model, spanledger.provider), then, for spans that
--    arrived through a collector that does not price (the contrib exporter), the
--    instrumentations' own names: GenAI semconv current and legacy, OpenInference's
--    llm.token_count.*, the anthropic SDK's cache writes, pydantic-ai's details. Input
--    INCLUDES the cache in every column; OpenLLMetry's Bedrock spans and openlit's
--    Anthropic spans report it without, and get the cache added.
-- 2. New llm_calls columns: CallKind ('llm' | 'tool' | 'vector_db'), CacheWrite1hTokens,
--    CostReported (a cost another tool put on the span: never summed), PriceTier,
--    Convention, DuplicateOf. Rows written before this migration read CallKind 'llm'.
-- 3. Status 'duplicate': the second span of a provider call another span counts. It is
--    in llm_calls (visible, with DuplicateOf), never in a cost, a call count or a token sum.
-- 4. llm_cost_daily and llm_cost_by_trace count the kinds apart (LlmCalls, ToolCalls,
--    VectorCalls) and the duplicates (DuplicateSpans); ToolCost / VectorCost are the parts
--    of Cost spent on tools and vector databases. Calls keeps its meaning (counted calls of
--    every kind); LlmCalls of rows written before this migration reads as their Calls.
--    An aggregate tool span (a tool that called a model) counts as a tool call, not an LLM
--    call. The SummingMergeTree sums the new columns like the old ones.
--
-- The views are recreated (DROP + CREATE): spans inserted while this migration runs may
-- miss a rollup; run it before the collectors start, as `spanledger db migrate` does.
-- On a cluster ${llm_calls} is the shard-local table and the public name a Distributed
-- table over it: both get the new columns (on one server the second ALTER is a no-op).

ALTER TABLE ${llm_calls} ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS CallKind LowCardinality(String) DEFAULT 'llm' AFTER Operation,
    ADD COLUMN IF NOT EXISTS CacheWrite1hTokens UInt64 AFTER CacheWriteTokens,
    ADD COLUMN IF NOT EXISTS CostReported Decimal(38, 12) AFTER CostRollup,
    ADD COLUMN IF NOT EXISTS PriceTier LowCardinality(String) AFTER PriceSource,
    ADD COLUMN IF NOT EXISTS Convention LowCardinality(String) AFTER PriceTier,
    ADD COLUMN IF NOT EXISTS DuplicateOf String AFTER Convention;

ALTER TABLE llm_calls ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS CallKind LowCardinality(String) DEFAULT 'llm' AFTER Operation,
    ADD COLUMN IF NOT EXISTS CacheWrite1hTokens UInt64 AFTER CacheWriteTokens,
    ADD COLUMN IF NOT EXISTS CostReported Decimal(38, 12) AFTER CostRollup,
    ADD COLUMN IF NOT EXISTS PriceTier LowCardinality(String) AFTER PriceSource,
    ADD COLUMN IF NOT EXISTS Convention LowCardinality(String) AFTER PriceTier,
    ADD COLUMN IF NOT EXISTS DuplicateOf String AFTER Convention;

ALTER TABLE ${llm_cost_daily} ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS LlmCalls UInt64 DEFAULT Calls AFTER Errors,
    ADD COLUMN IF NOT EXISTS ToolCalls UInt64 AFTER LlmCalls,
    ADD COLUMN IF NOT EXISTS VectorCalls UInt64 AFTER ToolCalls,
    ADD COLUMN IF NOT EXISTS DuplicateSpans UInt64 AFTER VectorCalls,
    ADD COLUMN IF NOT EXISTS ToolCost Decimal(38, 12) AFTER Cost,
    ADD COLUMN IF NOT EXISTS VectorCost Decimal(38, 12) AFTER ToolCost;

ALTER TABLE llm_cost_daily ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS LlmCalls UInt64 DEFAULT Calls AFTER Errors,
    ADD COLUMN IF NOT EXISTS ToolCalls UInt64 AFTER LlmCalls,
    ADD COLUMN IF NOT EXISTS VectorCalls UInt64 AFTER ToolCalls,
    ADD COLUMN IF NOT EXISTS DuplicateSpans UInt64 AFTER VectorCalls,
    ADD COLUMN IF NOT EXISTS ToolCost Decimal(38, 12) AFTER Cost,
    ADD COLUMN IF NOT EXISTS VectorCost Decimal(38, 12) AFTER ToolCost;

ALTER TABLE ${llm_cost_by_trace} ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS LlmCalls SimpleAggregateFunction(sum, UInt64) DEFAULT Calls AFTER Calls,
    ADD COLUMN IF NOT EXISTS ToolCalls SimpleAggregateFunction(sum, UInt64) AFTER LlmCalls,
    ADD COLUMN IF NOT EXISTS VectorCalls SimpleAggregateFunction(sum, UInt64) AFTER ToolCalls,
    ADD COLUMN IF NOT EXISTS DuplicateSpans SimpleAggregateFunction(sum, UInt64) AFTER VectorCalls;

ALTER TABLE llm_cost_by_trace ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS LlmCalls SimpleAggregateFunction(sum, UInt64) DEFAULT Calls AFTER Calls,
    ADD COLUMN IF NOT EXISTS ToolCalls SimpleAggregateFunction(sum, UInt64) AFTER LlmCalls,
    ADD COLUMN IF NOT EXISTS VectorCalls SimpleAggregateFunction(sum, UInt64) AFTER ToolCalls,
    ADD COLUMN IF NOT EXISTS DuplicateSpans SimpleAggregateFunction(sum, UInt64) AFTER VectorCalls;

DROP VIEW IF EXISTS llm_calls_mv ${ON_CLUSTER};

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_calls_mv ${ON_CLUSTER} TO ${llm_calls} AS
WITH
    SpanAttributes['spanledger.cost.status'] AS SpanStatus,
    if(SpanAttributes['db.system.name'] != '', SpanAttributes['db.system.name'],
       SpanAttributes['db.system']) AS DbSystem,
    -- instrumentations whose input count EXCLUDES the cache (pricing/conventions.py)
    ScopeName LIKE 'opentelemetry.instrumentation.bedrock%'
        OR (ScopeName LIKE 'openlit%' AND lower(Provider) = 'anthropic') AS InputWithoutCache,
    multiIf(mapContains(SpanAttributes, 'gen_ai.usage.cache_read.input_tokens'),
                SpanAttributes['gen_ai.usage.cache_read.input_tokens'],
            mapContains(SpanAttributes, 'gen_ai.usage.cache_read_input_tokens'),
                SpanAttributes['gen_ai.usage.cache_read_input_tokens'],
            mapContains(SpanAttributes, 'llm.token_count.prompt_details.cache_read'),
                SpanAttributes['llm.token_count.prompt_details.cache_read'],
            SpanAttributes['gen_ai.usage.details.cache_read_tokens']) AS OwnCacheRead,
    multiIf(mapContains(SpanAttributes, 'gen_ai.usage.cache_write.input_tokens'),
                SpanAttributes['gen_ai.usage.cache_write.input_tokens'],
            mapContains(SpanAttributes, 'gen_ai.usage.cache_creation.input_tokens'),
                SpanAttributes['gen_ai.usage.cache_creation.input_tokens'],
            mapContains(SpanAttributes, 'gen_ai.usage.cache_creation_input_tokens'),
                SpanAttributes['gen_ai.usage.cache_creation_input_tokens'],
            mapContains(SpanAttributes, 'llm.token_count.prompt_details.cache_write'),
                SpanAttributes['llm.token_count.prompt_details.cache_write'],
            SpanAttributes['gen_ai.usage.details.cache_write_tokens']) AS OwnCacheWrite,
    multiIf(mapContains(SpanAttributes, 'gen_ai.usage.input_tokens'),
                SpanAttributes['gen_ai.usage.input_tokens'],
            mapContains(SpanAttributes, 'gen_ai.usage.prompt_tokens'),
                SpanAttributes['gen_ai.usage.prompt_tokens'],
            SpanAttributes['llm.token_count.prompt']) AS OwnInput,
    multiIf(mapContains(SpanAttributes, 'gen_ai.usage.output_tokens'),
                SpanAttributes['gen_ai.usage.output_tokens'],
            mapContains(SpanAttributes, 'gen_ai.usage.completion_tokens'),
                SpanAttributes['gen_ai.usage.completion_tokens'],
            SpanAttributes['llm.token_count.completion']) AS OwnOutput,
    multiIf(mapContains(SpanAttributes, 'gen_ai.usage.reasoning.output_tokens'),
                SpanAttributes['gen_ai.usage.reasoning.output_tokens'],
            mapContains(SpanAttributes, 'gen_ai.usage.reasoning_tokens'),
                SpanAttributes['gen_ai.usage.reasoning_tokens'],
            mapContains(SpanAttributes, 'llm.token_count.completion_details.reasoning'),
                SpanAttributes['llm.token_count.completion_details.reasoning'],
            SpanAttributes['gen_ai.usage.details.reasoning_tokens']) AS OwnReasoning,
    mapContains(SpanAttributes, 'spanledger.usage.input_tokens') AS Normalized
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
    multiIf(SpanAttributes['spanledger.provider'] != '', SpanAttributes['spanledger.provider'],
            SpanAttributes['gen_ai.provider.name'] != '', SpanAttributes['gen_ai.provider.name'],
            SpanAttributes['gen_ai.system'] != '', SpanAttributes['gen_ai.system'],
            SpanAttributes['llm.provider'] != '', SpanAttributes['llm.provider'],
            SpanAttributes['llm.system']) AS Provider,
    SpanAttributes['gen_ai.operation.name'] AS Operation,
    multiIf(Operation = 'execute_tool', 'tool',
            Operation = 'retrieval'
                OR DbSystem IN ('chroma', 'pinecone', 'qdrant', 'weaviate', 'milvus', 'lancedb',
                                'marqo', 'pgvector', 'vespa', 'turbopuffer',
                                'mongodb_atlas_vector_search'), 'vector_db',
            DbSystem != '' AND InputTokens + OutputTokens = 0, 'vector_db',
            SpanAttributes['gen_ai.tool.name'] != '' AND InputTokens + OutputTokens = 0, 'tool',
            'llm') AS CallKind,
    SpanAttributes['gen_ai.request.model'] AS RequestModel,
    multiIf(SpanAttributes['gen_ai.response.model'] != '', SpanAttributes['gen_ai.response.model'],
            SpanAttributes['llm.model_name'] != '', SpanAttributes['llm.model_name'],
            SpanAttributes['embedding.model_name']) AS ResponseModel,
    -- what was billed: the model priced, else the answering one, else the requested one;
    -- spans priced per call (vector databases, tools) are named by their system or tool
    multiIf(SpanAttributes['spanledger.model'] != '', SpanAttributes['spanledger.model'],
            ResponseModel != '', ResponseModel,
            RequestModel != '', RequestModel,
            DbSystem != '', DbSystem,
            SpanAttributes['gen_ai.tool.name']) AS Model,
    SpanAttributes['gen_ai.agent.name'] AS AgentName,
    if(Normalized, toUInt64OrZero(SpanAttributes['spanledger.usage.input_tokens']),
       toUInt64OrZero(OwnInput) + if(InputWithoutCache,
           toUInt64OrZero(OwnCacheRead) + toUInt64OrZero(OwnCacheWrite), 0)) AS InputTokens,
    if(Normalized, toUInt64OrZero(SpanAttributes['spanledger.usage.output_tokens']),
       toUInt64OrZero(OwnOutput)) AS OutputTokens,
    if(Normalized, toUInt64OrZero(SpanAttributes['spanledger.usage.cache_read_tokens']),
       toUInt64OrZero(OwnCacheRead)) AS CacheReadTokens,
    if(Normalized, toUInt64OrZero(SpanAttributes['spanledger.usage.cache_write_tokens']),
       toUInt64OrZero(OwnCacheWrite)) AS CacheWriteTokens,
    if(Normalized, toUInt64OrZero(SpanAttributes['spanledger.usage.cache_write_1h_tokens']),
       toUInt64OrZero(SpanAttributes['anthropic.usage.cache_creation.ephemeral_1h_input_tokens']))
        AS CacheWrite1hTokens,
    if(Normalized, toUInt64OrZero(SpanAttributes['spanledger.usage.reasoning_tokens']),
       toUInt64OrZero(OwnReasoning)) AS ReasoningTokens,
    toDecimal128OrZero(SpanAttributes['spanledger.cost.input'], 12) AS CostInput,
    toDecimal128OrZero(SpanAttributes['spanledger.cost.output'], 12) AS CostOutput,
    toDecimal128OrZero(SpanAttributes['spanledger.cost.cache_read'], 12) AS CostCacheRead,
    toDecimal128OrZero(SpanAttributes['spanledger.cost.cache_write'], 12) AS CostCacheWrite,
    if(Status = 'priced', toDecimal128OrZero(SpanAttributes['gen_ai.usage.cost'], 12),
       toDecimal128(0, 12)) AS Cost,
    toDecimal128OrZero(SpanAttributes['spanledger.cost.rollup'], 12) AS CostRollup,
    -- a cost another tool reported: ours keep it in spanledger.cost.reported; on a span
    -- nobody priced, its own cost attributes are that tool's
    toDecimal128OrZero(multiIf(
        SpanAttributes['spanledger.cost.reported'] != '', SpanAttributes['spanledger.cost.reported'],
        SpanStatus != '', '',
        SpanAttributes['gen_ai.usage.cost'] != '', SpanAttributes['gen_ai.usage.cost'],
        SpanAttributes['gen_ai.usage.cost.amount'] != '', SpanAttributes['gen_ai.usage.cost.amount'],
        SpanAttributes['gen_ai.cost.total_cost'] != '', SpanAttributes['gen_ai.cost.total_cost'],
        SpanAttributes['llm.cost.total'] != '', SpanAttributes['llm.cost.total'],
        SpanAttributes['operation.cost']), 12) AS CostReported,
    multiIf(SpanStatus != '', SpanStatus,
            CallKind != 'llm' AND InputTokens + OutputTokens = 0, 'no_usage',
            'unpriced') AS Status,
    SpanAttributes['spanledger.price.source'] AS PriceSource,
    SpanAttributes['spanledger.price.tier'] AS PriceTier,
    SpanAttributes['spanledger.convention'] AS Convention,
    SpanAttributes['spanledger.duplicate_of'] AS DuplicateOf,
    toUInt32OrZero(SpanAttributes['spanledger.step']) AS Step,
    Duration AS DurationNs,
    StatusCode
FROM ${otel_traces}
WHERE SpanAttributes['spanledger.cost.status'] IN ('priced', 'unpriced', 'aggregate', 'duplicate')
   -- a span with usage that nobody priced (a collector that does not price): unpriced
   OR (SpanAttributes['spanledger.cost.status'] = ''
       AND (mapContains(SpanAttributes, 'gen_ai.usage.input_tokens')
         OR mapContains(SpanAttributes, 'gen_ai.usage.prompt_tokens')
         OR mapContains(SpanAttributes, 'gen_ai.usage.output_tokens')
         OR mapContains(SpanAttributes, 'gen_ai.usage.completion_tokens')
         OR mapContains(SpanAttributes, 'llm.token_count.prompt')
         OR mapContains(SpanAttributes, 'llm.token_count.completion')))
   -- tool and vector-database calls, priced or not: counted apart from LLM calls
   OR SpanAttributes['gen_ai.operation.name'] IN ('execute_tool', 'retrieval')
   OR SpanAttributes['db.system.name'] IN ('chroma', 'pinecone', 'qdrant', 'weaviate', 'milvus',
       'lancedb', 'marqo', 'pgvector', 'vespa', 'turbopuffer', 'mongodb_atlas_vector_search')
   OR SpanAttributes['db.system'] IN ('chroma', 'pinecone', 'qdrant', 'weaviate', 'milvus',
       'lancedb', 'marqo', 'pgvector', 'vespa', 'turbopuffer', 'mongodb_atlas_vector_search');

DROP VIEW IF EXISTS llm_cost_by_trace_mv ${ON_CLUSTER};

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
    -- the models a run used (tools and vector databases are counted, not listed)
    groupUniqArrayIf(toString(Model), Status NOT IN ('aggregate', 'duplicate')
                     AND Model != '' AND CallKind = 'llm') AS Models,
    countIf(Status NOT IN ('aggregate', 'duplicate')) AS Calls,
    countIf(CallKind = 'llm' AND Status NOT IN ('aggregate', 'duplicate')) AS LlmCalls,
    countIf(CallKind = 'tool' AND Status != 'duplicate') AS ToolCalls,
    countIf(CallKind = 'vector_db' AND Status != 'duplicate') AS VectorCalls,
    countIf(Status = 'duplicate') AS DuplicateSpans,
    countIf(Status = 'unpriced') AS UnpricedCalls,
    countIf(Status NOT IN ('aggregate', 'duplicate')
            AND StatusCode IN ('Error', 'STATUS_CODE_ERROR')) AS ErrorCalls,
    sumIf(InputTokens, Status NOT IN ('aggregate', 'duplicate')) AS InputTokens,
    sumIf(OutputTokens, Status NOT IN ('aggregate', 'duplicate')) AS OutputTokens,
    sumIf(CacheReadTokens, Status NOT IN ('aggregate', 'duplicate')) AS CacheReadTokens,
    sumIf(CacheWriteTokens, Status NOT IN ('aggregate', 'duplicate')) AS CacheWriteTokens,
    sumIf(Cost, Status = 'priced') AS Cost
FROM ${llm_calls}
GROUP BY TraceId;

DROP VIEW IF EXISTS llm_cost_daily_mv ${ON_CLUSTER};

-- One row per key and status. 'aggregate' rows are left out, except a tool span that
-- called a model (aggregate, but a tool call all the same: ToolCalls only); 'duplicate'
-- rows count DuplicateSpans and nothing else.
CREATE MATERIALIZED VIEW IF NOT EXISTS llm_cost_daily_mv ${ON_CLUSTER} TO ${llm_cost_daily} AS
SELECT
    Day, Team, Feature, Customer, CostCenter, Environment, ServiceName, Provider, Model, Status,
    countIf(Status NOT IN ('aggregate', 'duplicate')) AS Calls,
    countIf(Status NOT IN ('aggregate', 'duplicate')
            AND StatusCode IN ('Error', 'STATUS_CODE_ERROR')) AS Errors,
    countIf(CallKind = 'llm' AND Status NOT IN ('aggregate', 'duplicate')) AS LlmCalls,
    countIf(CallKind = 'tool' AND Status != 'duplicate') AS ToolCalls,
    countIf(CallKind = 'vector_db' AND Status != 'duplicate') AS VectorCalls,
    countIf(Status = 'duplicate') AS DuplicateSpans,
    sumIf(InputTokens, Status NOT IN ('aggregate', 'duplicate')) AS InputTokens,
    sumIf(OutputTokens, Status NOT IN ('aggregate', 'duplicate')) AS OutputTokens,
    sumIf(CacheReadTokens, Status NOT IN ('aggregate', 'duplicate')) AS CacheReadTokens,
    sumIf(CacheWriteTokens, Status NOT IN ('aggregate', 'duplicate')) AS CacheWriteTokens,
    sumIf(ReasoningTokens, Status NOT IN ('aggregate', 'duplicate')) AS ReasoningTokens,
    -- ${llm_calls}.Cost: the column (a bare Cost would be the alias on the line above)
    sumIf(${llm_calls}.Cost, Status = 'priced') AS Cost,
    sumIf(${llm_calls}.Cost, Status = 'priced' AND CallKind = 'tool') AS ToolCost,
    sumIf(${llm_calls}.Cost, Status = 'priced' AND CallKind = 'vector_db') AS VectorCost
FROM ${llm_calls}
WHERE Status != 'aggregate' OR CallKind != 'llm'
GROUP BY Day, Team, Feature, Customer, CostCenter, Environment, ServiceName, Provider, Model, Status;
