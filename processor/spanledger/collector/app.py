"""The collector assembled: receivers -> spool -> pricing/convert -> ClickHouse writer.

``Collector(config).start()`` runs everything in background threads (and a
small process pool for conversion) and returns; ``stop()`` stops intake,
flushes the spool into the store within ``shutdown_timeout_s``, withdraws the
SQL endpoint advertisement and closes the store. The CLI and the demo both
use this class, so the demo runs exactly what users run.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from spanledger.collector.access import Access
from spanledger.collector.config import CollectorConfig
from spanledger.collector.metrics import Metrics
from spanledger.collector.receivers.grpc_receiver import GrpcReceiver
from spanledger.collector.receivers.http_receiver import HttpServer
from spanledger.collector.receivers.intake import Intake
from spanledger.collector.report_page import REPORT_PATH, ReportRenderer, report_pages
from spanledger.collector.spool import Spool
from spanledger.collector.writer import Writer
from spanledger.store import open_store
from spanledger.store.base import Store
from spanledger.store.url import parse_url

log = logging.getLogger(__name__)


def check_prices_file(cfg: CollectorConfig) -> None:
    """Read the prices file the workers will use, here: a mistake in it is a
    :class:`~spanledger.yamlconf.ConfigError` (``file:line: key: problem``) at
    start-up, not a traceback in a worker or a writer that dies after "ready"."""
    from spanledger.pricing.catalog import PRICES_FILE_ENV
    from spanledger.pricing.overrides import load_overrides

    prices = cfg.pricing.prices or os.environ.get(PRICES_FILE_ENV)
    if cfg.pricing.enabled and prices:
        load_overrides(prices)


class Collector:
    def __init__(self, config: CollectorConfig, *, report: ReportRenderer | None = None) -> None:
        """``report`` renders the live ``/report`` page on the SQL front (None: no page)."""
        self.config = config
        self.report = report
        self.metrics = Metrics()
        self.store: Store | None = None
        self.spool: Spool | None = None
        self.writer: Writer | None = None
        self.grpc: GrpcReceiver | None = None
        self.http: HttpServer | None = None
        self.telemetry: HttpServer | None = None
        self.sql_http = None
        self.budget_schedule = None
        self.store_path: str | None = None
        #: who may write, read and claim which attribution (auth section, tokens file)
        self.access = Access()
        self._stopped = threading.Event()
        self._started = False

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> Collector:
        cfg = self.config
        check_prices_file(cfg)  # before the store is opened and any port bound
        self.access = Access.load(cfg.shared_token, cfg.auth.tokens_file)
        parsed = parse_url(cfg.clickhouse.url)
        self.store = open_store(parsed.raw, migrate=cfg.clickhouse.migrate)
        try:
            self._start_rest(parsed.is_chdb)
        except BaseException:
            self._teardown(flush_timeout=0)
            raise
        self._started = True
        return self

    def _start_rest(self, embedded: bool) -> None:
        cfg = self.config
        assert self.store is not None
        if embedded:
            self.store_path = (getattr(self.store, "path", None)
                               or parse_url(cfg.clickhouse.url).path)
        spool_dir = cfg.spool.dir or (str(Path(self.store_path) / "spool") if self.store_path
                                      else "./spanledger-spool")
        mb = 1024 * 1024
        self.spool = Spool(spool_dir, max_bytes=cfg.spool.max_mb * mb,
                           segment_bytes=cfg.spool.segment_mb * mb,
                           segment_spans=cfg.batch.max_spans,
                           segment_age_s=cfg.batch.timeout_ms / 1000)
        replay = self.spool.recover()
        if replay:
            log.info("spool: replaying %d segment(s) left by a previous run", replay)
        self.writer = Writer(self.spool, self.store, self.metrics, workers=cfg.batch.workers,
                             pricing=cfg.pricing.enabled, prices_file=cfg.pricing.prices,
                             policy=self.access.policy(), bounds=cfg.trust.bounds(),
                             dedup_window=cfg.trust.dedup_window_spans)
        self.writer.start()
        self._gauges()
        if cfg.budgets.file:
            from spanledger.collector.budget_schedule import BudgetSchedule

            self.budget_schedule = BudgetSchedule(self.store, cfg.budgets.file,
                                                  cfg.budgets.every_s, self.metrics).start()
        budgets = {"budgets_state": self.budget_schedule.state_json if self.budget_schedule
                   else None, "read_auth": self.access.read_header}
        intake = Intake(self.spool, self.metrics, cfg.token, self.access)
        if cfg.grpc.enabled:
            self.grpc = GrpcReceiver(intake, cfg.grpc.host, cfg.grpc.port, cfg.grpc.max_message_mb)
            self.grpc.start()
        shared_telemetry = cfg.telemetry.port is None and cfg.http.enabled
        if cfg.http.enabled:
            self.http = HttpServer(cfg.http.host, cfg.http.port, intake=intake,
                                   max_body_mb=cfg.http.max_body_mb,
                                   health=self.health if shared_telemetry else None,
                                   metrics_text=self.metrics.render if shared_telemetry else None,
                                   **(budgets if shared_telemetry else {}))
            self.http.start()
        if not shared_telemetry:
            self.telemetry = HttpServer(cfg.telemetry.host, cfg.telemetry.port or 0, intake=None,
                                        max_body_mb=1, health=self.health,
                                        metrics_text=self.metrics.render, **budgets)
            self.telemetry.start()
        sql_enabled = cfg.sql_http.enabled if cfg.sql_http.enabled is not None else embedded
        if sql_enabled:
            self._start_sql_http()

    def _start_sql_http(self) -> None:
        from spanledger.store import discovery
        from spanledger.store.sql_http import SqlHttpServer

        cfg = self.config.sql_http
        try:
            pages = report_pages(self.store, self.report) if self.report is not None else None
            self.sql_http = SqlHttpServer(
                self.store, cfg.host, cfg.port, authorize=self.access.can_read,
                max_execution_time=cfg.max_execution_time_s, max_memory_mb=cfg.max_memory_mb,
                max_result_mb=cfg.max_result_mb, max_queued=cfg.max_queued,
                max_wait_s=cfg.max_wait_s, pages=pages,
            ).start()
        except OSError as exc:
            log.warning("read-only SQL endpoint not started on %s:%s: %s (reports cannot read "
                        "the embedded store while the collector runs)", cfg.host, cfg.port, exc)
            self.sql_http = None
            return
        if self.store_path:
            discovery.advertise(self.store_path, self.sql_http.url)

    def _gauges(self) -> None:
        spool, writer = self.spool, self.writer
        assert spool is not None and writer is not None
        m = self.metrics
        m.gauge("spool_bytes", "bytes waiting in the spool", lambda: spool.total_bytes)
        m.gauge("spool_segments", "segments waiting in the spool (incl. the open one)",
                lambda: spool.segments)
        m.gauge("queue_depth_spans", "spans acknowledged but not yet written (incl. replays)",
                lambda: spool.pending_spans)
        m.gauge("writer_healthy", "1 when the writer runs and inserts succeed",
                lambda: 1 if writer.healthy else 0)
        m.gauge("quarantine_files_pending", "quarantine files waiting for the store",
                lambda: writer.quarantine.pending)
        m.counter("spool_errors_total", "spool steps after durability (seal, delete) that "
                  "failed and are retried", lambda: spool.errors)

    def health(self) -> tuple[bool, str]:
        writer, spool = self.writer, self.spool
        if writer is None or spool is None:
            return False, "starting"
        ok, why = writer.status()
        if not ok:
            return False, why
        if spool.error is not None:
            return False, f"spool failing (requests still durable): {spool.error}"
        if spool.full:
            return False, "spool full: refusing data until the store catches up"
        return True, "ok"

    def stop(self, timeout: float | None = None) -> bool:
        """Stop intake and flush; True when everything acknowledged is in the store."""
        if self._stopped.is_set():
            return True
        self._stopped.set()
        return self._teardown(self.config.shutdown_timeout_s if timeout is None else timeout)

    def _teardown(self, flush_timeout: float) -> bool:
        flushed = True
        if self.budget_schedule is not None:
            self.budget_schedule.stop()
        if self.grpc is not None:
            self.grpc.stop(grace=2)
        if self.http is not None:
            self.http.stop()
        if self.spool is not None:
            self.spool.close_intake()
        if self.writer is not None:
            flushed = self.writer.stop(flush_timeout)
            if not flushed:
                log.warning("spool not empty at exit: it is replayed at the next start")
        if self.telemetry is not None:
            self.telemetry.stop()
        if self.sql_http is not None:
            from spanledger.store import discovery

            if self.store_path:
                discovery.withdraw(self.store_path)
            self.sql_http.stop()
        if self.store is not None:
            self.store.close()
            self.store = None
        return flushed

    def wait(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)

    # -- where it listens ----------------------------------------------------------
    def endpoints(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.grpc is not None:
            out["otlp_grpc"] = f"{self.grpc.host}:{self.grpc.port}"
        if self.http is not None:
            out["otlp_http"] = f"http://{self.http.host}:{self.http.port}/v1/traces"
        tel = self.telemetry or self.http
        if tel is not None:
            out["healthz"] = f"http://{tel.host}:{tel.port}/healthz"
            out["metrics"] = f"http://{tel.host}:{tel.port}/metrics"
        if self.sql_http is not None:
            out["sql_http"] = self.sql_http.url
            if self.report is not None:
                out["report"] = self.sql_http.url + REPORT_PATH
        if self.budget_schedule is not None and tel is not None:
            out["budgets_state"] = f"http://{tel.host}:{tel.port}/budgets/state"
        if self.store is not None:
            out["store"] = getattr(self.store, "url", "")
        return out
