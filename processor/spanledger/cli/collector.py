"""``spanledger collector``: run the OTLP collector until SIGTERM/SIGINT.

Flags override the config file (handy for tests and the demo): ports of 0
pick free ports, and the lines printed at start say where it listens.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from spanledger.errors import UsageError

if TYPE_CHECKING:
    from spanledger.collector.config import CollectorConfig

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "collector",
        help="receive OTLP traces (gRPC 4317, HTTP 4318), price them, write to ClickHouse",
        description="Receive OTLP traces, spool them durably, price unpriced GenAI spans and "
                    "write otel_traces in ClickHouse (embedded chdb by default).",
    )
    p.add_argument("--config", metavar="FILE",
                   help="collector YAML (see collector-config/spanledger.yaml); defaults if absent")
    p.add_argument("--url", help="storage URL: chdb://DIR or http(s)://user:pass@host:8123/db")
    p.add_argument("--host", help="listen address of the OTLP receivers")
    p.add_argument("--grpc-port", type=int, help="OTLP/gRPC port (0: any free port)")
    p.add_argument("--http-port", type=int, help="OTLP/HTTP port (0: any free port)")
    p.add_argument("--sql-http-port", type=int, help="read-only SQL endpoint port (0: any)")
    p.add_argument("--no-sql-http", action="store_true", help="do not serve the SQL endpoint")
    p.add_argument("--spool-dir", help="directory of the on-disk spool")
    p.add_argument("--workers", type=int, help="conversion processes (0: in-thread)")
    p.add_argument("--prices", metavar="FILE", help="price overrides YAML")
    p.add_argument("--revenue", metavar="FILE",
                   help="revenue per customer (YAML or CSV) for the live /report page's margins")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> CollectorConfig:
    from spanledger.collector.config import load_config

    cfg = load_config(args.config)
    if args.url:
        cfg.clickhouse.url = args.url
    if args.host:
        cfg.grpc.host = cfg.http.host = args.host
    for flag, value in (("--grpc-port", args.grpc_port), ("--http-port", args.http_port),
                        ("--sql-http-port", args.sql_http_port)):
        if value is not None and not 0 <= value <= 65535:
            raise UsageError(f"{flag} must be a TCP port (0-65535), got {value}")
    if args.grpc_port is not None:
        cfg.grpc.port = args.grpc_port
    if args.http_port is not None:
        cfg.http.port = args.http_port
    if args.sql_http_port is not None:
        cfg.sql_http.port = args.sql_http_port
    if args.no_sql_http:
        cfg.sql_http.enabled = False
    if args.spool_dir:
        cfg.spool.dir = args.spool_dir
    if args.workers is not None:
        if args.workers < 0:
            raise UsageError(f"--workers must be >= 0, got {args.workers}")
        cfg.batch.workers = args.workers
    if args.prices:
        cfg.pricing.prices = args.prices
    return cfg


def run(args: argparse.Namespace) -> int:
    from spanledger.cli.report import budget_sections
    from spanledger.collector.app import Collector
    from spanledger.reports.budgets import load_budget_file
    from spanledger.reports.live import live_renderer
    from spanledger.reports.revenue import load_revenue
    from spanledger.store.url import parse_url

    cfg = build_config(args)
    parse_url(cfg.clickhouse.url)  # a bad URL fails before any port is bound (cli.main: exit 2)
    revenue = load_revenue(args.revenue) if args.revenue else None
    # the live page shows the budget states and anomalies too (the budgets file, if any)
    extras = budget_sections(load_budget_file(cfg.budgets.file) if cfg.budgets.file else None)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # the live /report page on the SQL front (the collector layer does not import reports)
    collector = Collector(cfg, report=live_renderer(revenue, extras))
    try:
        collector.start()
    except OSError as exc:
        print(f"spanledger collector: error: {exc}", file=sys.stderr)
        return 1
    for name, where in collector.endpoints().items():
        print(f"spanledger collector: {name} {where}", flush=True)
    print("spanledger collector: ready", flush=True)
    while not stop.wait(0.5):
        pass
    print("spanledger collector: stopping (flushing the spool)", flush=True)
    flushed = collector.stop()
    print("spanledger collector: stopped" + ("" if flushed else
          " (spool not empty: it is replayed at the next start)"), flush=True)
    return 0
