-- Trust: no writer can move another team's numbers, whoever writes otel_traces.
--
-- 1. Closed periods. spanledger_periods is an append-only log of `spanledger period
--    close|reopen YYYY-MM`; a month's state is its latest row. The open period starts the
--    day after the LATEST closed month (everything before it is frozen, closed or not;
--    1970-01-01 when nothing is closed). A span dated before it is a late arrival:
--    llm_calls keeps its own Timestamp but books it (Day) on the day it is stored, or the
--    first open day if that is later, with Late = 1; the rollups key on Day, so an invoice
--    already sent never changes and the next open period shows the adjustment
--    (llm_cost_daily.LateCalls / LateCost). The views read the log on every insert, so
--    this holds for spans from the OpenTelemetry Collector contrib exporter too.
-- 2. Invalid rows. A row the schema cannot count safely gets Status 'invalid' and a
--    reason (InvalidReason), all its numbers zero, and is left out of every rollup:
--      future       dated more than 1 day after the insert (booked like a late span)
--      before_1970  dated before the first day a Date holds (booked like a late span)
--      duration     ends past 2262-04-11, the end of DateTime64(9)
--      tokens       a token count that is negative, not a number or above 1e8
--      cost         a cost that is negative, not finite or above 1,000,000 USD
--    spanledger collector never stores such a span (it quarantines what is beyond its own,
--    lower ceilings); these hard bounds are for writers that bypass it, and they are what
--    ARCHITECTURE.md ("Bounds") proves no sum overflows with.
-- 3. What the collector says about a span it verified: CostReportedBy (`service` or
--    the tool that reported the cost), CostDisagrees (the reported cost differs from the
--    collector's beyond its tolerance: counted in llm_cost_daily.Disagreements, never
--    summed), ClaimRejected (a status claim it did not take). A status that is not one
--    of spanledger's, or `no_usage` on a span with usage, is re-derived here as well.
-- 4. outcomes_*: an outcome value outside [0, 1e12] counts 0 (its Decimal(38, 9) sum
--    cannot overflow); everything else as in 0009.
--
-- The views are recreated (DROP + CREATE) with everything 0006 (conventions, call kinds,
-- duplicates) and 0009 (outcomes) built; spans inserted while this migration runs may miss
-- a rollup: run it before the collectors start, as `spanledger db migrate` does.

CREATE TABLE IF NOT EXISTS spanledger_periods ${ON_CLUSTER}
(
    Month Date,
    State LowCardinality(String),
    At DateTime64(3, 'UTC'),
    By String,
    Note String
)
ENGINE = ${ClusterWideMergeTree}
ORDER BY (Month, At);

ALTER TABLE ${llm_calls} ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS Late UInt8 AFTER Day,
    ADD COLUMN IF NOT EXISTS InvalidReason LowCardinality(String) AFTER Status,
    ADD COLUMN IF NOT EXISTS CostReportedBy LowCardinality(String) AFTER CostReported,
    ADD COLUMN IF NOT EXISTS CostDisagrees UInt8 AFTER CostReportedBy,
    ADD COLUMN IF NOT EXISTS ClaimRejected LowCardinality(String) AFTER InvalidReason;

ALTER TABLE llm_calls ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS Late UInt8 AFTER Day,
    ADD COLUMN IF NOT EXISTS InvalidReason LowCardinality(String) AFTER Status,
    ADD COLUMN IF NOT EXISTS CostReportedBy LowCardinality(String) AFTER CostReported,
    ADD COLUMN IF NOT EXISTS CostDisagrees UInt8 AFTER CostReportedBy,
    ADD COLUMN IF NOT EXISTS ClaimRejected LowCardinality(String) AFTER InvalidReason;

ALTER TABLE ${llm_cost_daily} ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS LateCalls UInt64 AFTER DuplicateSpans,
    ADD COLUMN IF NOT EXISTS Disagreements UInt64 AFTER LateCalls,
    ADD COLUMN IF NOT EXISTS LateCost Decimal(38, 12) AFTER VectorCost;

ALTER TABLE llm_cost_daily ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS LateCalls UInt64 AFTER DuplicateSpans,
    ADD COLUMN IF NOT EXISTS Disagreements UInt64 AFTER LateCalls,
    ADD COLUMN IF NOT EXISTS LateCost Decimal(38, 12) AFTER VectorCost;

DROP VIEW IF EXISTS llm_calls_mv ${ON_CLUSTER};

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_calls_mv ${ON_CLUSTER} TO ${llm_calls} AS
WITH
    -- the first day of the open period (see 1. above), read once per inserted block
    (SELECT ifNull(addMonths(maxOrNull(Month), 1), toDate('1970-01-01'))
     FROM (SELECT Month, argMax(State, At) AS MonthState FROM spanledger_periods GROUP BY Month)
     WHERE MonthState = 'closed') AS OpenFrom,
    greatest(toDate(now(), 'UTC'), OpenFrom) AS BookedDay,
    SpanAttributes['spanledger.cost.status'] AS SpanStatus,
    SpanStatus IN ('priced', 'unpriced', 'aggregate', 'duplicate') AS KnownStatus,
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
    mapContains(SpanAttributes, 'spanledger.usage.input_tokens') AS Normalized,
    -- every token count a column is read from: a number in [0, 1e8] (or no number: 0)
    arrayAll(t -> toFloat64OrZero(t) BETWEEN 0 AND 1e8, [
        OwnInput, OwnOutput, OwnCacheRead, OwnCacheWrite, OwnReasoning,
        SpanAttributes['anthropic.usage.cache_creation.ephemeral_1h_input_tokens'],
        SpanAttributes['spanledger.usage.input_tokens'],
        SpanAttributes['spanledger.usage.output_tokens'],
        SpanAttributes['spanledger.usage.cache_read_tokens'],
        SpanAttributes['spanledger.usage.cache_write_tokens'],
        SpanAttributes['spanledger.usage.cache_write_1h_tokens'],
        SpanAttributes['spanledger.usage.reasoning_tokens']])
        -- and the input column itself, where it adds the cache to the input count
        AND (NOT InputWithoutCache OR Normalized OR toFloat64OrZero(OwnInput)
             + toFloat64OrZero(OwnCacheRead) + toFloat64OrZero(OwnCacheWrite) <= 1e8)
        AS TokensInBounds,
    -- every cost a column is read from: a finite number in [0, 1e6] USD (or no number: 0)
    arrayAll(c -> toFloat64OrZero(c) BETWEEN 0 AND 1e6, [
        SpanAttributes['gen_ai.usage.cost'],
        SpanAttributes['spanledger.cost.input'],
        SpanAttributes['spanledger.cost.output'],
        SpanAttributes['spanledger.cost.cache_read'],
        SpanAttributes['spanledger.cost.cache_write'],
        SpanAttributes['spanledger.cost.rollup'],
        SpanAttributes['spanledger.cost.reported'],
        SpanAttributes['gen_ai.usage.cost.amount'],
        SpanAttributes['gen_ai.cost.total_cost'],
        SpanAttributes['llm.cost.total'],
        SpanAttributes['operation.cost']]) AS CostInBounds,
    multiIf(Timestamp > now64(9, 'UTC') + toIntervalDay(1), 'future',
            Timestamp < toDateTime64('1970-01-01 00:00:00', 9, 'UTC'), 'before_1970',
            Duration > toUInt64(9223372036854775807 - toUnixTimestamp64Nano(Timestamp)),
                'duration',
            NOT TokensInBounds, 'tokens',
            NOT CostInBounds, 'cost',
            '') AS Invalid,
    -- dated before the open period: a late arrival (a valid one is counted, as Late)
    toDate(Timestamp, 'UTC') < OpenFrom AS BeforeOpen
SELECT
    toDateTime64(Timestamp, 9, 'UTC') AS Timestamp,
    if(BeforeOpen OR Invalid IN ('future', 'before_1970'), BookedDay,
       toDate(Timestamp, 'UTC')) AS Day,
    toUInt8(BeforeOpen AND Invalid = '') AS Late,
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
    -- an invalid row counts nothing: every number is zero (the span is in otel_traces)
    if(Invalid != '', toUInt64(0), if(Normalized,
       toUInt64OrZero(SpanAttributes['spanledger.usage.input_tokens']),
       toUInt64OrZero(OwnInput) + if(InputWithoutCache,
           toUInt64OrZero(OwnCacheRead) + toUInt64OrZero(OwnCacheWrite), 0))) AS InputTokens,
    if(Invalid != '', toUInt64(0), if(Normalized,
       toUInt64OrZero(SpanAttributes['spanledger.usage.output_tokens']),
       toUInt64OrZero(OwnOutput))) AS OutputTokens,
    if(Invalid != '', toUInt64(0), if(Normalized,
       toUInt64OrZero(SpanAttributes['spanledger.usage.cache_read_tokens']),
       toUInt64OrZero(OwnCacheRead))) AS CacheReadTokens,
    if(Invalid != '', toUInt64(0), if(Normalized,
       toUInt64OrZero(SpanAttributes['spanledger.usage.cache_write_tokens']),
       toUInt64OrZero(OwnCacheWrite))) AS CacheWriteTokens,
    if(Invalid != '', toUInt64(0), if(Normalized,
       toUInt64OrZero(SpanAttributes['spanledger.usage.cache_write_1h_tokens']),
       toUInt64OrZero(SpanAttributes['anthropic.usage.cache_creation.ephemeral_1h_input_tokens'])))
        AS CacheWrite1hTokens,
    if(Invalid != '', toUInt64(0), if(Normalized,
       toUInt64OrZero(SpanAttributes['spanledger.usage.reasoning_tokens']),
       toUInt64OrZero(OwnReasoning))) AS ReasoningTokens,
    if(Invalid != '', toDecimal128(0, 12),
       toDecimal128OrZero(SpanAttributes['spanledger.cost.input'], 12)) AS CostInput,
    if(Invalid != '', toDecimal128(0, 12),
       toDecimal128OrZero(SpanAttributes['spanledger.cost.output'], 12)) AS CostOutput,
    if(Invalid != '', toDecimal128(0, 12),
       toDecimal128OrZero(SpanAttributes['spanledger.cost.cache_read'], 12)) AS CostCacheRead,
    if(Invalid != '', toDecimal128(0, 12),
       toDecimal128OrZero(SpanAttributes['spanledger.cost.cache_write'], 12)) AS CostCacheWrite,
    if(Status = 'priced', toDecimal128OrZero(SpanAttributes['gen_ai.usage.cost'], 12),
       toDecimal128(0, 12)) AS Cost,
    if(Invalid != '', toDecimal128(0, 12),
       toDecimal128OrZero(SpanAttributes['spanledger.cost.rollup'], 12)) AS CostRollup,
    -- a cost another tool reported: ours keep it in spanledger.cost.reported; on a span
    -- nobody priced, its own cost attributes are that tool's
    if(Invalid != '', toDecimal128(0, 12), toDecimal128OrZero(multiIf(
        SpanAttributes['spanledger.cost.reported'] != '', SpanAttributes['spanledger.cost.reported'],
        SpanStatus != '', '',
        SpanAttributes['gen_ai.usage.cost'] != '', SpanAttributes['gen_ai.usage.cost'],
        SpanAttributes['gen_ai.usage.cost.amount'] != '', SpanAttributes['gen_ai.usage.cost.amount'],
        SpanAttributes['gen_ai.cost.total_cost'] != '', SpanAttributes['gen_ai.cost.total_cost'],
        SpanAttributes['llm.cost.total'] != '', SpanAttributes['llm.cost.total'],
        SpanAttributes['operation.cost']), 12)) AS CostReported,
    SpanAttributes['spanledger.cost.reported_by'] AS CostReportedBy,
    toUInt8(SpanAttributes['spanledger.cost.disagrees'] = 'true' AND Invalid = '')
        AS CostDisagrees,
    -- a status that is not spanledger's (or no_usage on a span with usage) is re-derived
    multiIf(Invalid != '', 'invalid',
            KnownStatus, SpanStatus,
            CallKind != 'llm' AND InputTokens + OutputTokens = 0, 'no_usage',
            'unpriced') AS Status,
    Invalid AS InvalidReason,
    multiIf(SpanAttributes['spanledger.claim.rejected'] != '',
                SpanAttributes['spanledger.claim.rejected'],
            SpanStatus != '' AND NOT KnownStatus AND Status != SpanStatus, SpanStatus,
            '') AS ClaimRejected,
    SpanAttributes['spanledger.price.source'] AS PriceSource,
    SpanAttributes['spanledger.price.tier'] AS PriceTier,
    SpanAttributes['spanledger.convention'] AS Convention,
    SpanAttributes['spanledger.duplicate_of'] AS DuplicateOf,
    toUInt32OrZero(SpanAttributes['spanledger.step']) AS Step,
    if(Invalid != '', toUInt64(0), Duration) AS DurationNs,
    StatusCode
FROM ${otel_traces}
WHERE SpanAttributes['spanledger.cost.status'] IN ('priced', 'unpriced', 'aggregate', 'duplicate')
   -- a span with usage and no status of spanledger's (a collector that does not price, or
   -- a status spanledger does not write): unpriced
   OR (SpanAttributes['spanledger.cost.status'] NOT IN ('priced', 'unpriced', 'aggregate',
                                                        'duplicate', 'no_usage')
       AND (mapContains(SpanAttributes, 'gen_ai.usage.input_tokens')
         OR mapContains(SpanAttributes, 'gen_ai.usage.prompt_tokens')
         OR mapContains(SpanAttributes, 'gen_ai.usage.output_tokens')
         OR mapContains(SpanAttributes, 'gen_ai.usage.completion_tokens')
         OR mapContains(SpanAttributes, 'llm.token_count.prompt')
         OR mapContains(SpanAttributes, 'llm.token_count.completion')))
   -- `no_usage` on a span that has usage: it would vanish from every table
   OR (SpanAttributes['spanledger.cost.status'] = 'no_usage'
       AND (toFloat64OrZero(OwnInput) != 0 OR toFloat64OrZero(OwnOutput) != 0))
   -- tool and vector-database calls, priced or not: counted apart from LLM calls
   OR SpanAttributes['gen_ai.operation.name'] IN ('execute_tool', 'retrieval')
   OR SpanAttributes['db.system.name'] IN ('chroma', 'pinecone', 'qdrant', 'weaviate', 'milvus',
       'lancedb', 'marqo', 'pgvector', 'vespa', 'turbopuffer', 'mongodb_atlas_vector_search')
   OR SpanAttributes['db.system'] IN ('chroma', 'pinecone', 'qdrant', 'weaviate', 'milvus',
       'lancedb', 'marqo', 'pgvector', 'vespa', 'turbopuffer', 'mongodb_atlas_vector_search');

DROP VIEW IF EXISTS llm_cost_by_trace_mv ${ON_CLUSTER};

-- StatusCode: the contrib exporter writes 'Error' (ptrace StatusCode.String());
-- older releases wrote 'STATUS_CODE_ERROR'. Both count as errors. Invalid rows count
-- nowhere; a late span adds to its run, but a run's Start is its first span on time (a
-- late span's Start is its booked day), so no run moves into a closed period.
CREATE MATERIALIZED VIEW IF NOT EXISTS llm_cost_by_trace_mv ${ON_CLUSTER} TO ${llm_cost_by_trace} AS
SELECT
    TraceId,
    min(if(Late = 1, toDateTime64(Day, 9, 'UTC'), Timestamp)) AS Start,
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
WHERE Status != 'invalid'
GROUP BY TraceId;

DROP VIEW IF EXISTS llm_cost_daily_mv ${ON_CLUSTER};

-- One row per key and status, keyed by the booked Day. 'aggregate' rows are left out,
-- except a tool span that called a model (aggregate, but a tool call all the same:
-- ToolCalls only); 'duplicate' rows count DuplicateSpans and nothing else; 'invalid' rows
-- are left out. LateCalls / LateCost: the part of Calls / Cost that are late arrivals for
-- a closed period (booked here, the adjustment). Disagreements: counted calls whose
-- reported cost differs from the collector's (never summed).
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
    countIf(Late = 1 AND Status NOT IN ('aggregate', 'duplicate')) AS LateCalls,
    countIf(CostDisagrees = 1 AND Status NOT IN ('aggregate', 'duplicate')) AS Disagreements,
    sumIf(InputTokens, Status NOT IN ('aggregate', 'duplicate')) AS InputTokens,
    sumIf(OutputTokens, Status NOT IN ('aggregate', 'duplicate')) AS OutputTokens,
    sumIf(CacheReadTokens, Status NOT IN ('aggregate', 'duplicate')) AS CacheReadTokens,
    sumIf(CacheWriteTokens, Status NOT IN ('aggregate', 'duplicate')) AS CacheWriteTokens,
    sumIf(ReasoningTokens, Status NOT IN ('aggregate', 'duplicate')) AS ReasoningTokens,
    -- ${llm_calls}.Cost: the column (a bare Cost would be the alias on the line above)
    sumIf(${llm_calls}.Cost, Status = 'priced') AS Cost,
    sumIf(${llm_calls}.Cost, Status = 'priced' AND CallKind = 'tool') AS ToolCost,
    sumIf(${llm_calls}.Cost, Status = 'priced' AND CallKind = 'vector_db') AS VectorCost,
    sumIf(${llm_calls}.Cost, Status = 'priced' AND Late = 1) AS LateCost
FROM ${llm_calls}
WHERE Status != 'invalid' AND (Status != 'aggregate' OR CallKind != 'llm')
GROUP BY Day, Team, Feature, Customer, CostCenter, Environment, ServiceName, Provider, Model, Status;

DROP VIEW IF EXISTS outcomes_daily_mv ${ON_CLUSTER};

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
    -- a value the service did not give counts 1; one that is not a number in [0, 1e12]
    -- counts 0
    sum(if(mapContains(SpanAttributes, 'spanledger.outcome.value'),
           if(toFloat64OrZero(SpanAttributes['spanledger.outcome.value']) BETWEEN 0 AND 1e12,
              toDecimal128OrZero(SpanAttributes['spanledger.outcome.value'], 9),
              toDecimal128(0, 9)),
           toDecimal128(1, 9))) AS Value
FROM ${otel_traces}
WHERE SpanAttributes['spanledger.outcome.name'] != ''
GROUP BY Day, Team, Feature, Customer, CostCenter, Environment, ServiceName, Name;

DROP VIEW IF EXISTS outcomes_by_trace_mv ${ON_CLUSTER};

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
           if(toFloat64OrZero(SpanAttributes['spanledger.outcome.value']) BETWEEN 0 AND 1e12,
              toDecimal128OrZero(SpanAttributes['spanledger.outcome.value'], 9),
              toDecimal128(0, 9)),
           toDecimal128(1, 9))) AS Value
FROM ${otel_traces}
WHERE SpanAttributes['spanledger.outcome.name'] != ''
GROUP BY RunTraceId, Name;
