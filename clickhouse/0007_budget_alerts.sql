-- Budget alert state: an append-only log of what happened to each alert, so a
-- threshold fires once per budget, scope, period and channel however many
-- evaluators run (collectors, cron jobs, restarts), and a missed delivery is retried.
--
-- One alert (AlertId = sha256 of budget, scope, period, kind, threshold, channel)
-- has numbered delivery attempts. Attempt N starts with ONE claim row
-- (State 'claimed', or 'superseded' when a higher threshold fired in the same
-- evaluation and this one is recorded without a message): every evaluator
-- inserts its claim with insert_deduplication_token 'claim:<AlertId>:<N>', the
-- engine keeps the first and drops the others, and only the evaluator whose
-- Owner the row holds delivers. The owner then appends 'delivered', or
-- 'failed' with NextAttemptAt (backoff), and a later evaluation claims N+1.
-- Payload is the JSON body of the alert, so every attempt sends the same body.
CREATE TABLE IF NOT EXISTS budget_alerts ${ON_CLUSTER}
(
    AlertId String,
    Budget String,
    Scope String,
    PeriodStart Date,
    PeriodEnd Date,
    Kind LowCardinality(String),
    Threshold Decimal(18, 6),
    Channel LowCardinality(String),
    Attempt UInt32,
    State LowCardinality(String),
    Owner String,
    EventTime DateTime64(3, 'UTC'),
    NextAttemptAt DateTime64(3, 'UTC'),
    Spent Decimal(38, 12),
    Forecast Nullable(Decimal(38, 12)),
    Amount Decimal(38, 12),
    Payload String CODEC(ZSTD(1)),
    Error String
)
ENGINE = ${MergeTree}
PARTITION BY toYYYYMM(PeriodStart)
ORDER BY (Budget, Scope, PeriodStart, Kind, Threshold, Channel, AlertId, Attempt)
SETTINGS index_granularity = 8192${DEDUP_SETTING};
