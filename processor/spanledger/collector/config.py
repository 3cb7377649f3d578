"""The collector's configuration, declared once: these models are the file's shape.

Every key is documented in ``collector-config/spanledger.yaml``. The file is
optional (defaults work out of the box); a typo or a wrong value in it is a
:class:`~spanledger.yamlconf.ConfigError` naming ``file:line: key`` rather
than a silently ignored setting (:func:`spanledger.yamlconf.validate` maps
pydantic's errors back to the YAML). Command-line flags override the loaded
values by plain assignment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from spanledger import yamlconf
from spanledger.collector.bounds import (
    DEFAULT_MAX_COST_USD,
    DEFAULT_MAX_TOKENS,
    DEFAULT_TOLERANCE,
    SCHEMA_MAX_COST_USD,
    SCHEMA_MAX_TOKENS,
    Bounds,
)
from spanledger.collector.recent_keys import DEFAULT_CAPACITY as DEFAULT_DEDUP_WINDOW
from spanledger.store.discovery import TOKEN_ENV
from spanledger.yamlconf import ConfigError

#: validation context key: the directory of the file being loaded
CONFIG_DIR = "config_dir"


def _tcp_port(port: int) -> int:
    if port > 65535:
        raise PydanticCustomError("tcp_port", "must be a TCP port (0-65535), got {port}",
                                  {"port": port})
    return port


def _beside_config(value: str, info: ValidationInfo) -> str:
    """Paths in the file are relative to the file, like every collector config."""
    path = Path(value).expanduser()
    base = (info.context or {}).get(CONFIG_DIR)
    return str(path if path.is_absolute() or base is None else Path(base) / path)


Text = Annotated[str, Field(min_length=1)]
#: a path in the file: relative to the file
FilePath = Annotated[str, Field(min_length=1), AfterValidator(_beside_config)]
Port = Annotated[int, Field(ge=0), AfterValidator(_tcp_port)]
Count = Annotated[int, Field(ge=1)]


class Section(BaseModel):
    """A block of the file: strict types (``port: "80"`` is an error), unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ListenerConfig(Section):
    """Where one of the collector's servers listens; each kind sets its default port."""

    host: Text = "127.0.0.1"
    #: 0 = any free port (printed at start)
    port: Port | None = None


class OtlpListenerConfig(ListenerConfig):
    """An OTLP receiver: a listener that can be switched off and caps request size."""

    enabled: bool = True


class GrpcConfig(OtlpListenerConfig):
    port: Port = 4317
    #: larger requests: RESOURCE_EXHAUSTED
    max_message_mb: Count = 16


class HttpConfig(OtlpListenerConfig):
    port: Port = 4318
    #: larger bodies (also after gunzip): 413
    max_body_mb: Count = 16


class SqlHttpConfig(ListenerConfig):
    #: None = on for the embedded (chdb) store, off for a ClickHouse server
    enabled: bool | None = None
    port: Port = 8123
    #: a query is stopped after this many seconds: the embedded engine runs one statement
    #: at a time, so this is the longest the collector's inserts wait behind a read
    max_execution_time_s: Count = 10
    #: memory one query may use, and bytes it may return
    max_memory_mb: Count = 256
    max_result_mb: Count = 64
    #: queries waiting for their turn (one runs at a time); more are refused (503)
    max_queued: Annotated[int, Field(ge=0)] = 16
    #: a waiting query is refused (503) after this many seconds
    max_wait_s: Count = 30


class TelemetryConfig(ListenerConfig):
    """/healthz and /metrics; port None = served on the OTLP/HTTP receiver's port."""


class OtlpReceivers(Section):
    grpc: GrpcConfig = Field(default_factory=GrpcConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)


class Receivers(Section):
    otlp: OtlpReceivers = Field(default_factory=OtlpReceivers)


class AuthConfig(Section):
    #: one shared token: read, write and any attribution (kept next to a tokens file too)
    bearer_token: Text | None = None
    #: read the token from this environment variable instead (when bearer_token is unset)
    bearer_token_env: Text | None = None
    #: tokens file (see collector-config/tokens.example.yaml): write tokens bound to the
    #: services, teams and cost centres they may claim, read tokens for the SQL front,
    #: /report and /budgets/state
    tokens_file: FilePath | None = None

    @model_validator(mode="after")
    def _token_from_env(self) -> Self:
        if self.bearer_token_env and not self.bearer_token:
            self.bearer_token = os.environ.get(self.bearer_token_env) or None
        return self


class PricingConfig(Section):
    enabled: bool = True
    #: YAML price overrides (None: the genai-prices catalog, or $SPANLEDGER_PRICES_FILE)
    prices: FilePath | None = None


class BatchConfig(Section):
    #: a spool segment is sealed and written once it holds this many spans ...
    max_spans: Count = 50_000
    #: ... or this many milliseconds after its first span arrived
    timeout_ms: Count = 200
    #: processes converting segments to Arrow (0: in the writer thread)
    workers: Annotated[int, Field(ge=0)] = 2


class Processors(Section):
    pricing: PricingConfig = Field(default_factory=PricingConfig)
    batch: BatchConfig = Field(default_factory=BatchConfig)


class ClickHouseConfig(Section):
    #: storage URL; None = $SPANLEDGER_CLICKHOUSE_URL, else chdb://./spanledger-data
    url: Text | None = None
    #: run the migrations at start (idempotent)
    migrate: bool = True


class Exporters(Section):
    clickhouse: ClickHouseConfig = Field(default_factory=ClickHouseConfig)


class SpoolConfig(Section):
    #: None = ``<store dir>/spool`` for chdb, ``./spanledger-spool`` otherwise
    dir: FilePath | None = None
    #: above this many MB waiting on disk, requests get UNAVAILABLE / 503
    max_mb: Count = 512
    #: seal a segment at this size even before batch.max_spans
    segment_mb: Count = 32


class TrustConfig(Section):
    """What the collector refuses to store as a priced call, and what it flags.

    The ceilings may be raised up to the schema's hard bounds (``clickhouse/0010_trust.sql``
    counts a row beyond them nowhere), never past: what the collector stores, the views
    count, and ARCHITECTURE.md ("Bounds") shows no sum can overflow with them.
    """

    #: a call with a token count (input, output, cache, reasoning) above this: quarantined
    max_tokens_per_call: Annotated[int, Field(ge=1, le=SCHEMA_MAX_TOKENS)] = DEFAULT_MAX_TOKENS
    #: a call whose cost (ours, or one it arrives with) is above this USD: quarantined
    max_cost_per_call_usd: Annotated[float, Field(gt=0, le=SCHEMA_MAX_COST_USD)] = \
        DEFAULT_MAX_COST_USD
    #: a reported cost differing from ours by more than this share (or one pico-dollar) is
    #: a disagreement: flagged and counted, never summed
    disagreement_tolerance: Annotated[float, Field(ge=0, lt=1)] = DEFAULT_TOLERANCE
    #: GenAI spans whose (TraceId, SpanId) are remembered across segments, so an exporter's
    #: retry into a later segment is stored once (8 bytes each; 0 = off)
    dedup_window_spans: Annotated[int, Field(ge=0, le=1 << 28)] = DEFAULT_DEDUP_WINDOW

    def bounds(self) -> Bounds:
        return Bounds(self.max_tokens_per_call, float(self.max_cost_per_call_usd),
                      float(self.disagreement_tolerance))


class BudgetsConfig(Section):
    """Budget evaluation (alerts, ``GET /budgets/state``); off without a file."""

    #: budgets YAML (see collector-config/budgets.example.yaml); None = no evaluation
    file: FilePath | None = None
    #: seconds between evaluations
    every_s: Count = 60


class CollectorConfig(Section):
    """The whole file; the properties are short names for the nested sections."""

    receivers: Receivers = Field(default_factory=Receivers)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    processors: Processors = Field(default_factory=Processors)
    exporters: Exporters = Field(default_factory=Exporters)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    sql_http: SqlHttpConfig = Field(default_factory=SqlHttpConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    budgets: BudgetsConfig = Field(default_factory=BudgetsConfig)
    trust: TrustConfig = Field(default_factory=TrustConfig)
    #: seconds SIGTERM may spend flushing the spool before exiting
    shutdown_timeout_s: Count = 30

    @property
    def grpc(self) -> GrpcConfig:
        return self.receivers.otlp.grpc

    @property
    def http(self) -> HttpConfig:
        return self.receivers.otlp.http

    @property
    def pricing(self) -> PricingConfig:
        return self.processors.pricing

    @property
    def batch(self) -> BatchConfig:
        return self.processors.batch

    @property
    def clickhouse(self) -> ClickHouseConfig:
        return self.exporters.clickhouse

    @property
    def bearer_token(self) -> str | None:
        """The token from the file (or from the variable ``auth.bearer_token_env`` names)."""
        return self.auth.bearer_token

    @property
    def token(self) -> str | None:
        """What OTLP requests (and the SQL front) must present; None: no auth."""
        return self.bearer_token or os.environ.get(TOKEN_ENV) or None

    @property
    def shared_token(self) -> str | None:
        """The one token that may do everything. With a tokens file only ``auth.bearer_token``
        (or ``bearer_token_env``) is: ``$SPANLEDGER_COLLECTOR_TOKEN`` is what reports present,
        and a read token put there must not become the shared token of a collector started
        from the same shell."""
        return self.bearer_token if self.auth.tokens_file else self.token


def load_config(path: str | Path | None) -> CollectorConfig:
    """The config from ``path`` (None: all defaults)."""
    if path is None:
        return CollectorConfig()
    root = yamlconf.load(path)
    if not root.is_mapping():
        raise root.error("expected a mapping of sections")
    return yamlconf.validate(root, CollectorConfig,
                             context={CONFIG_DIR: Path(path).resolve().parent})


__all__ = ["CollectorConfig", "ConfigError", "load_config"]
