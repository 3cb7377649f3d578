-- Spans the collector could not store, each with the reason, so that no bad
-- input stops ingestion and none disappears unseen (`spanledger quarantine list`).
-- Reason is a short code (timestamp_out_of_range, store_rejected, ...); Detail
-- has the specifics, e.g. ClickHouse's own error message. Span is the span as
-- OTLP/JSON (an ExportTraceServiceRequest holding just it, so it can be fixed and
-- sent again to /v1/traces), cut at 64 KB; a record that could not even be
-- decoded is kept as base64 of its bytes. Segment names the spool segment it came
-- from. Rows leave after 90 days.
CREATE TABLE IF NOT EXISTS spanledger_quarantine ${ON_CLUSTER}
(
    Time DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    Segment String CODEC(ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String),
    Reason LowCardinality(String),
    Detail String CODEC(ZSTD(1)),
    Span String CODEC(ZSTD(3))
)
ENGINE = ${MergeTree}
PARTITION BY toYYYYMM(Time)
ORDER BY (Time, Reason)
TTL toDateTime(Time) + toIntervalDay(90)
SETTINGS index_granularity = 8192${DEDUP_SETTING};
