"""The collector's configuration: one typed object from YAML, defaults and CLI flags.

Every key is documented in ``collector-config/spanledger.yaml``. The file is
optional (defaults work out of the box); a typo in it is a
:class:`~spanledger.yamlconf.ConfigError` naming ``file:line: key`` rather
than a silently ignored setting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from spanledger import yamlconf
from spanledger.store.discovery import TOKEN_ENV
from spanledger.yamlconf import ConfigError, Node


@dataclass
class GrpcReceiver:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 4317
    max_message_mb: int = 16


@dataclass
class HttpReceiver:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 4318
    max_body_mb: int = 16


@dataclass
class PricingConfig:
    enabled: bool = True
    #: YAML price overrides (None: the genai-prices catalog, or $SPANLEDGER_PRICES_FILE)
    prices: str | None = None


@dataclass
class BatchConfig:
    #: a spool segment is sealed and written once it holds this many spans ...
    max_spans: int = 50_000
    #: ... or this many milliseconds after its first span arrived
    timeout_ms: int = 200
    #: processes converting segments to Arrow (0: in the writer thread)
    workers: int = 2


@dataclass
class ExporterConfig:
    #: storage URL; None = $SPANLEDGER_CLICKHOUSE_URL, else chdb://./spanledger-data
    url: str | None = None
    #: run the migrations at start (idempotent)
    migrate: bool = True


@dataclass
class SpoolConfig:
    #: None = ``<store dir>/spool`` for chdb, ``./spanledger-spool`` otherwise
    dir: str | None = None
    #: above this many MB waiting on disk, requests get UNAVAILABLE / 503
    max_mb: int = 512
    #: seal a segment at this size even before batch.max_spans
    segment_mb: int = 32


@dataclass
class SqlHttpConfig:
    #: None = on for the embedded (chdb) store, off for a ClickHouse server
    enabled: bool | None = None
    host: str = "127.0.0.1"
    port: int = 8123


@dataclass
class TelemetryConfig:
    host: str = "127.0.0.1"
    #: None = serve /healthz and /metrics on the OTLP/HTTP receiver's port
    port: int | None = None


@dataclass
class CollectorConfig:
    grpc: GrpcReceiver = field(default_factory=GrpcReceiver)
    http: HttpReceiver = field(default_factory=HttpReceiver)
    bearer_token: str | None = None
    pricing: PricingConfig = field(default_factory=PricingConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    clickhouse: ExporterConfig = field(default_factory=ExporterConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    sql_http: SqlHttpConfig = field(default_factory=SqlHttpConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    #: seconds SIGTERM may spend flushing the spool before exiting
    shutdown_timeout_s: int = 30
    source: str = "<defaults>"

    @property
    def token(self) -> str | None:
        return self.bearer_token or os.environ.get(TOKEN_ENV) or None


def load_config(path: str | Path | None) -> CollectorConfig:
    """The config from ``path`` (None: all defaults)."""
    cfg = CollectorConfig()
    if path is None:
        return cfg
    root = yamlconf.load(path)
    cfg.source = str(path)
    if not root.is_mapping():
        raise root.error("expected a mapping of sections")
    root.check_keys({"receivers", "auth", "processors", "exporters", "spool", "sql_http",
                     "telemetry", "shutdown_timeout_s"})
    cfg.shutdown_timeout_s = _int(root, "shutdown_timeout_s", cfg.shutdown_timeout_s, 1)
    if (receivers := _section(root, "receivers")) is not None:
        receivers.check_keys({"otlp"})
        if (otlp := _section(receivers, "otlp")) is not None:
            otlp.check_keys({"grpc", "http"})
            _load_grpc(otlp, cfg.grpc)
            _load_http(otlp, cfg.http)
    if (auth := _section(root, "auth")) is not None:
        auth.check_keys({"bearer_token", "bearer_token_env"})
        cfg.bearer_token = _str(auth, "bearer_token")
        env = _str(auth, "bearer_token_env")
        if env and not cfg.bearer_token:
            cfg.bearer_token = os.environ.get(env) or None
    if (procs := _section(root, "processors")) is not None:
        procs.check_keys({"pricing", "batch"})
        if (p := _section(procs, "pricing")) is not None:
            p.check_keys({"enabled", "prices"})
            cfg.pricing.enabled = bool(p.get_bool("enabled", True))
            prices = _str(p, "prices")
            if prices:
                cfg.pricing.prices = str(_relative(cfg.source, prices))
        if (b := _section(procs, "batch")) is not None:
            b.check_keys({"max_spans", "timeout_ms", "workers"})
            cfg.batch.workers = _int(b, "workers", cfg.batch.workers, 0)
            cfg.batch.max_spans = _int(b, "max_spans", cfg.batch.max_spans, 1)
            cfg.batch.timeout_ms = _int(b, "timeout_ms", cfg.batch.timeout_ms, 1)
    if (exps := _section(root, "exporters")) is not None:
        exps.check_keys({"clickhouse"})
        if (ch := _section(exps, "clickhouse")) is not None:
            ch.check_keys({"url", "migrate"})
            cfg.clickhouse.url = _str(ch, "url")
            cfg.clickhouse.migrate = bool(ch.get_bool("migrate", True))
    if (spool := _section(root, "spool")) is not None:
        spool.check_keys({"dir", "max_mb", "segment_mb"})
        d = _str(spool, "dir")
        cfg.spool.dir = str(_relative(cfg.source, d)) if d else None
        cfg.spool.max_mb = _int(spool, "max_mb", cfg.spool.max_mb, 1)
        cfg.spool.segment_mb = _int(spool, "segment_mb", cfg.spool.segment_mb, 1)
    if (sql := _section(root, "sql_http")) is not None:
        sql.check_keys({"enabled", "host", "port"})
        cfg.sql_http.enabled = sql.get_bool("enabled") if _set(sql, "enabled") else None
        cfg.sql_http.host = sql.get_str("host", cfg.sql_http.host) or cfg.sql_http.host
        cfg.sql_http.port = _port(sql, "port", cfg.sql_http.port)
    if (tel := _section(root, "telemetry")) is not None:
        tel.check_keys({"host", "port"})
        cfg.telemetry.host = tel.get_str("host", cfg.telemetry.host) or cfg.telemetry.host
        if _set(tel, "port"):
            cfg.telemetry.port = _port(tel, "port", 0)
    return cfg


def _load_grpc(otlp: Node, grpc: GrpcReceiver) -> None:
    if not otlp.has("grpc"):
        return
    node = otlp.child("grpc")
    if _is_null(node):  # a bare `grpc:` keeps the defaults
        return
    node.check_keys({"enabled", "host", "port", "max_message_mb"})
    grpc.enabled = bool(node.get_bool("enabled", True))
    grpc.host = node.get_str("host", grpc.host) or grpc.host
    grpc.port = _port(node, "port", grpc.port)
    grpc.max_message_mb = _int(node, "max_message_mb", grpc.max_message_mb, 1)


def _load_http(otlp: Node, http: HttpReceiver) -> None:
    if not otlp.has("http"):
        return
    node = otlp.child("http")
    if _is_null(node):
        return
    node.check_keys({"enabled", "host", "port", "max_body_mb"})
    http.enabled = bool(node.get_bool("enabled", True))
    http.host = node.get_str("host", http.host) or http.host
    http.port = _port(node, "port", http.port)
    http.max_body_mb = _int(node, "max_body_mb", http.max_body_mb, 1)


def _is_null(node: Node) -> bool:
    raw = node._node  # a bare `key:` is a null scalar: "use the defaults"
    return getattr(raw, "tag", "").endswith(":null")


def _set(node: Node, key: str) -> bool:
    """The key is present with a value (``key:`` alone means "the default")."""
    return node.has(key) and not _is_null(node.child(key))


def _str(node: Node, key: str) -> str | None:
    return node.get_str(key) if _set(node, key) else None


def _section(parent: Node, key: str) -> Node | None:
    if not parent.has(key):
        return None
    node = parent.child(key)
    if _is_null(node):
        return None
    if not node.is_mapping():
        raise node.error("expected a mapping (key: value)")
    return node


def _int(node: Node, key: str, default: int, minimum: int) -> int:
    value = node.get_int(key, default, minimum=minimum)
    return default if value is None else value


def _port(node: Node, key: str, default: int) -> int:
    value = _int(node, key, default, 0)
    if value > 65535:
        raise node.error(f"must be a TCP port (0-65535), got {value}", key=key)
    return value


def _relative(config_file: str, value: str) -> Path:
    """Paths in the file are relative to the file, like every collector config."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else Path(config_file).resolve().parent / p


__all__ = ["CollectorConfig", "ConfigError", "load_config"]
