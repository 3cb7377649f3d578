"""``spanledger demo`` end to end: collector, sample services, reports, HTML.

Order of work, and why:

1. Check the store first (cheap, and nothing is started if the folder
   already holds data): a second run refuses unless ``--reset``, so a demo
   never silently doubles a month of spend.
2. Start the embedded collector in this process (the same
   :class:`~spanledger.collector.app.Collector` ``spanledger collector``
   runs), OTLP/gRPC on a free port.
3. Spawn the worker processes (:mod:`.worker`), each a "service" with the
   real clients, instrumentations, the cost processor and an OTLP exporter.
   Show live counts meanwhile.
4. Stop the collector once the workers have exited (this writes what is
   left in its spool and closes the store), then read the store like a user would:
   spend by team, by feature, top traces, and the HTML report.
5. Month-end close: write the bills OpenAI and Anthropic would send for what the
   services sent them (:mod:`.provider_bills`, with a service without spanledger,
   a discount missing from the prices file and an unpriced fine-tune on them),
   and reconcile them with the store.
6. With ``serve``: start the collector again on the store, with its live
   ``/report`` page, print the URL and keep serving until Ctrl-C.

The services record outcomes (resolved tickets and conversations, accepted answers,
conversions reported by a CRM webhook in a later trace), and the demo ships a
revenue file per customer (``collector-config/demo-revenue.yaml``), so the unit
economics and the report's customer section have real content.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import multiprocessing
import os
import secrets
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from spanledger.demo.progress import Counts, ProgressLine
from spanledger.demo.provider_bills import DEMO_TERMS, Usage, plan_usages, with_legacy_service
from spanledger.demo.provider_bills import write_exports as write_bills
from spanledger.demo.scenario import MIN_CALLS, build_plan
from spanledger.demo.worker import COUNTERS, WorkerSpec, run_worker
from spanledger.errors import UsageError
from spanledger.resources import data_dir
from spanledger.store import open_store, parse_url

log = logging.getLogger(__name__)

__all__ = ["DemoError", "DemoOptions", "DemoResult", "demo_budgets_file", "demo_prices_file",
           "demo_revenue_file",
           "run_demo"]

class DemoError(RuntimeError):
    """The demo could not finish (a worker died): one line for the user, exit 1."""


@dataclass(frozen=True)
class DemoOptions:
    calls: int = 20_000
    days: int = 31
    seed: int = 7
    workers: int = 2
    #: store URL; None = $SPANLEDGER_CLICKHOUSE_URL, else chdb://./spanledger-data
    url: str | None = None
    reset: bool = False
    html: Path | None = None
    show_reports: bool = True
    #: keep serving the live report (collector + /report) until Ctrl-C
    serve: bool = False
    #: port of the served SQL front and /report (0: any free port)
    serve_port: int = 0


@dataclass
class DemoResult:
    url: str
    calls: int
    traces: int
    spans_exported: int
    rows_written: int
    seconds: float
    html: Path | None
    #: seconds from the first call to the last (None: too short to tell)
    call_seconds: float | None
    first_day: dt.date
    last_day: dt.date
    notes: list[str] = field(default_factory=list)
    #: the provider exports the demo wrote for its period, and how reconciling them went
    bills: list[Path] = field(default_factory=list)
    #: billed, metered and unexplained USD of the reconciliation, and its exit code
    reconcile: dict[str, Any] = field(default_factory=dict)

    @property
    def calls_per_s(self) -> float:
        """Throughput of the services while they ran (all of the run when unknown)."""
        seconds = self.call_seconds or self.seconds
        return self.calls / seconds if seconds else 0.0


def demo_prices_file() -> Path:
    """The demo's price overrides (self-hosted model, discount, per-call prices)."""
    return data_dir("collector-config") / "demo-prices.yaml"


def demo_revenue_file() -> Path:
    """What the demo's customers pay per month (unit economics, margins)."""
    return data_dir("collector-config") / "demo-revenue.yaml"


def demo_budgets_file() -> Path:
    """The example budgets, sized to the demo's teams and features."""
    return data_dir("collector-config") / "budgets.example.yaml"


def run_demo(opts: DemoOptions, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> DemoResult:
    if opts.calls < MIN_CALLS:
        raise UsageError(f"--calls must be at least {MIN_CALLS}, got {opts.calls}")
    if not 1 <= opts.days <= 366:
        raise UsageError(f"--days must be between 1 and 366, got {opts.days}")
    if not 1 <= opts.workers <= 16:
        raise UsageError(f"--workers must be between 1 and 16, got {opts.workers}")
    if not 0 <= opts.serve_port <= 65535:
        raise UsageError(f"--serve-port must be a TCP port (0-65535), got {opts.serve_port}")
    _check_clients()
    url = parse_url(opts.url).raw  # a malformed URL: StoreUrlError, exit 2 in main
    _prepare_store(url, opts.reset)

    from spanledger.collector.app import Collector
    from spanledger.collector.config import CollectorConfig

    cfg = CollectorConfig()
    cfg.clickhouse.url = url
    cfg.grpc.port = 0
    cfg.http.enabled = False
    cfg.sql_http.enabled = False
    cfg.telemetry.port = 0
    cfg.pricing.prices = str(demo_prices_file())
    cfg.batch.workers = 0  # two cores: the services need them; convert in the writer thread
    cfg.batch.timeout_ms = 3000
    anchor_ns = time.time_ns()
    plans = build_plan(opts.calls, opts.days, opts.seed, anchor_ns)
    planned_calls = sum(p.provider_calls for p in plans)
    traces = len(plans)
    first_day = dt.datetime.fromtimestamp(min(p.start_ns for p in plans) / 1e9, dt.UTC).date()
    last_day = dt.datetime.fromtimestamp(anchor_ns / 1e9, dt.UTC).date()
    usages = plan_usages(plans)  # what the provider saw: its bills are written after the run
    del plans  # each worker rebuilds the same plan; only the totals are needed here

    err.write(f"spanledger demo: {planned_calls:,} calls over {opts.days} days into "
              f"{parse_url(url).redacted()}\n")
    collector = Collector(cfg).start()
    log.debug("collector started: %s", collector.endpoints())
    try:
        endpoint = collector.endpoints()["otlp_grpc"]
        counters, progress = _run_workers(opts, anchor_ns, endpoint, planned_calls,
                                          collector, err)
    finally:
        # Every span is acknowledged once the workers have exited (their providers
        # shut down, which drains the export queues); stop() seals and writes the rest.
        log.debug("workers done; stopping the collector")
        flushed = collector.stop()
        log.debug("collector stopped (flushed: %s)", flushed)
    exported = _sum(counters, "spans_exported")
    rows = collector.metrics.get("spans_written_total")
    final = Counts(_sum(counters, "calls"), planned_calls, exported, rows)
    progress.finish(final)
    seconds = progress.elapsed()
    result = DemoResult(url=url, calls=final.calls, traces=traces, spans_exported=exported,
                        rows_written=rows, seconds=seconds, html=None,
                        call_seconds=progress.call_seconds(),
                        first_day=first_day, last_day=last_day)
    if not flushed:
        result.notes.append("the collector could not flush everything; it is replayed on the "
                            "next start")
    failed = _sum(counters, "export_failures")
    if failed:
        result.notes.append(f"{failed:,} spans failed to export")
    _report(result, opts, usages, out, err)
    if opts.serve:
        serve(result, out, opts.serve_port)
    return result


#: what the sample services import (the ``demo`` extra of the package)
DEMO_MODULES = ("openai", "anthropic", "opentelemetry.instrumentation.openai",
                "opentelemetry.instrumentation.anthropic")


def _check_clients() -> None:
    """Fail before starting anything when the demo's clients are not installed."""
    missing = [m for m in DEMO_MODULES if not _installed(m)]
    if missing:
        raise UsageError(f"the demo needs {', '.join(missing)}: "
                         "pip install 'spanledger[demo]'")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _prepare_store(url: str, reset: bool) -> None:
    """Refuse to add a second demo on top of existing data, or wipe it with ``--reset``."""
    parsed = parse_url(url)
    if parsed.is_chdb:
        path = Path(parsed.path)
        if path.exists() and not path.is_dir():
            raise UsageError(f"{path} is a file, not a store directory")
        if not path.exists() or not any(path.iterdir()):
            return
        if reset:
            if not ((path / "metadata").is_dir() and (path / "store").is_dir()):
                raise UsageError(f"--reset: {path} does not look like a spanledger store; "
                                 "not deleting it")
            _refuse_if_held(path)
            shutil.rmtree(path)
            return
    elif reset:
        raise UsageError("--reset deletes an embedded (chdb://) store only; point --url at an "
                         "empty database instead")
    calls = _existing_calls(url)
    if calls:
        where = parsed.path if parsed.is_chdb else parsed.redacted()
        raise UsageError(
            f"{where} already holds {calls:,} LLM calls (an earlier demo?). "
            "Run `spanledger demo --reset` to delete that store and start again, "
            "or `spanledger demo --store OTHER_DIR`")


def _refuse_if_held(path: Path) -> None:
    """Never delete a store under a running collector: it acknowledged spans that are
    only in that store (and its spool), and would go on writing into a deleted tree."""
    from spanledger.store import StoreLocked
    from spanledger.store.chdb_store import ChdbStore

    try:
        ChdbStore(path).close()
    except StoreLocked:
        raise UsageError(f"--reset: {path} is in use by another process (usually `spanledger "
                         "collector`); stop it first, or run `spanledger demo --store "
                         "OTHER_DIR`") from None


def _existing_calls(url: str) -> int:
    from spanledger.reports.queries import missing_rollups

    store = open_store(url, read_only=True)  # a locked store: StoreLocked, exit 1 in main
    try:
        if missing_rollups(store):
            return 0
        return int(store.query("SELECT sum(Calls) FROM llm_cost_daily")[0][0] or 0)
    finally:
        store.close()


def _run_workers(opts: DemoOptions, anchor_ns: int, endpoint: str, planned_calls: int,
                 collector: Any, err: TextIO) -> tuple[Any, ProgressLine]:
    # spawn, not fork: this process runs gRPC and chdb threads that must not be forked
    ctx = multiprocessing.get_context("spawn")
    counters = ctx.Array("q", opts.workers * len(COUNTERS), lock=False)
    prices = str(demo_prices_file())
    procs = [
        ctx.Process(target=run_worker, name=f"spanledger-demo-worker-{i}", daemon=True, args=(
            WorkerSpec(index=i, workers=opts.workers, calls=opts.calls, days=opts.days,
                       seed=opts.seed, anchor_ns=anchor_ns, otlp_endpoint=endpoint,
                       prices_file=prices), counters))
        for i in range(opts.workers)
    ]
    progress = ProgressLine(err)
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            progress.update(Counts(_sum(counters, "calls"), planned_calls,
                                   _sum(counters, "spans_exported"),
                                   collector.metrics.get("spans_written_total")))
            procs[0].join(timeout=0.25)
    except BaseException:
        for p in procs:
            if p.is_alive():
                p.terminate()
        raise
    bad = [p for p in procs if p.exitcode != 0 or not counters[
        procs.index(p) * len(COUNTERS) + COUNTERS.index("done")]]
    if bad:
        which = ", ".join(f"{p.name} exit {p.exitcode}" for p in bad)
        raise DemoError(f"demo worker(s) failed: {which} (see the traceback above)")
    return counters, progress


def _sum(counters: Any, name: str) -> int:
    step, slot = len(COUNTERS), COUNTERS.index(name)
    return int(sum(counters[slot::step]))


def _report(result: DemoResult, opts: DemoOptions, usages: list[Usage], out: TextIO,
            err: TextIO) -> None:
    """Print the reports a user would ask for first, write the HTML report, close the month."""
    from spanledger.budgets.report import budgets_summary
    from spanledger.reports.budgets import load_budgets
    from spanledger.reports.formats import render
    from spanledger.reports.html import write_html_report
    from spanledger.reports.period import Period
    from spanledger.reports.revenue import load_revenue
    from spanledger.reports.spend import SpendOptions, build_spend_report
    from spanledger.reports.traces import build_traces_report
    from spanledger.reports.unit_economics import build_unit_economics

    period = Period(result.first_day, result.last_day)
    html = (opts.html or Path("spanledger-report-demo.html")).resolve()
    revenue = load_revenue(demo_revenue_file())
    store = open_store(result.url, read_only=True)
    try:
        now = dt.datetime.now(dt.UTC)
        sections = _budget_sections()(store, period, now)
        status, anomalies = sections["budget_status"], sections["anomalies"]
        week = Period(max(result.first_day, min(result.last_day, now.date())
                          - dt.timedelta(days=6)), min(result.last_day, now.date()))
        if opts.show_reports:
            for title, dims in (("Spend by team", ("team",)),
                                ("Spend by feature", ("team", "feature"))):
                report = build_spend_report(store, SpendOptions(period, dims))
                out.write(f"\n== {title}, {period.label} ==\n{render(report, 'table')}")
            traces = build_traces_report(store, period, 5)
            out.write(f"\n== Most expensive traces, {period.label} ==\n{render(traces, 'table')}")
            for title, by, rev in (("Cost per outcome", "feature", None),
                                   ("Unit economics per customer", "customer", revenue)):
                units = build_unit_economics(store, period, by, revenue=rev)
                out.write(f"\n== {title}, {period.label} ==\n{render(units, 'table')}")
            out.write(f"\n== Budgets ({demo_budgets_file().name}) ==\n"
                      f"{render(budgets_summary(status), 'table')}")
            kinds = [r["kind"] for r in anomalies.rows]
            out.write(f"anomalies in {week.label}: {kinds.count('spike')} spike(s), "
                      f"{kinds.count('run')} runaway agent run(s), {kinds.count('creep')} "
                      "creep(s) (spend grown 2.5x+ in four weeks); see "
                      "spanledger report anomalies\n")
        log.debug("reports printed")
        result.html = write_html_report(store, html, period, top=10, now=now,
                                        budgets=load_budgets(demo_budgets_file()),
                                        revenue=revenue, **sections)
        log.debug("HTML report written")
        _close_month(result, store, usages, html.parent / "spanledger-demo-bills", opts, out)
    finally:
        store.close()
    rng = f"--from {result.first_day.isoformat()} --to {result.last_day.isoformat()}"
    # never echo a password: a server URL is shown without it
    url_flag = "" if opts.url is None else f" --url {parse_url(result.url).redacted()}"
    bills = (f"\n      spanledger reconcile {result.bills[0].parent}/*.json{url_flag} "
             f"--prices {demo_prices_file()} --summary") if result.bills else ""
    out.write(
        f"\nDemo data: {result.calls:,} calls in {result.traces:,} traces, "
        f"{result.spans_exported:,} spans exported, "
        f"{result.rows_written:,} rows written in {result.seconds:.1f}s "
        f"(services: {result.calls_per_s:,.0f} calls/s).\n"
        f"HTML report: {result.html}\n"
        f"Next: spanledger report spend --by feature {rng}{url_flag}\n"
        f"      spanledger report traces {rng}{url_flag}\n"
        f"      spanledger report unit-economics --by customer --revenue "
        f"{demo_revenue_file()} {rng}{url_flag}\n"
        f"      spanledger report budgets --budgets {demo_budgets_file()}{url_flag}{bills}\n")
    for note in result.notes:
        err.write(f"spanledger demo: warning: {note}\n")


def _close_month(result: DemoResult, store: Any, usages: list[Usage], folder: Path,
                 opts: DemoOptions, out: TextIO) -> None:
    """Write the providers' exports for the demo's period and reconcile them with the store."""
    from spanledger.reconcile.report import ReconcileOptions, reconcile, summary_report
    from spanledger.reports.formats import render

    result.bills = write_bills(folder, with_legacy_service(usages), DEMO_TERMS)
    res = reconcile(store, ReconcileOptions(tuple(map(str, result.bills)),
                                            prices=str(demo_prices_file())))
    result.reconcile = {"billed": res.billed, "metered": res.metered,
                        "unexplained": res.unexplained, "exit_code": res.exit_code}
    log.debug("reconciled the provider bills")
    if opts.show_reports:
        out.write(f"\n== Month-end close: the providers' bills vs metered "
                  f"(bills written to {folder}) ==\n{render(summary_report(res), 'table')}")


def _budget_sections() -> Any:
    """What the budgets layer adds to the HTML report, from the demo's budgets file: budget
    states, the anomalies of the period's last 7 days, the budgets' month-end forecaster."""
    from spanledger.budgets.forecast import forecast_period
    from spanledger.budgets.report import build_anomalies_report, build_budgets_report
    from spanledger.reports.budgets import load_budget_file
    from spanledger.reports.period import Period

    budget_file = load_budget_file(demo_budgets_file())

    def forecaster(daily: Any, period: Period, now: dt.datetime) -> tuple[Any, str]:
        found = forecast_period(daily, period, now)
        return found.total, found.method

    def build(store: Any, period: Period, now: dt.datetime) -> dict[str, Any]:
        end = min(period.end, now.date())
        window = Period(max(period.start, end - dt.timedelta(days=6)), end)
        return {"budget_status": build_budgets_report(store, budget_file, now),
                "anomalies": build_anomalies_report(store, window, budget_file.anomalies)
                if window.days > 0 else None,
                "forecaster": forecaster}

    return build


def serve(result: DemoResult, out: TextIO, port: int = 0,
          stop: threading.Event | None = None) -> None:
    """Run the collector on the demo's store with its live ``/report`` until Ctrl-C / SIGTERM.

    The report is token-protected like the SQL front: the collector's token
    (``SPANLEDGER_COLLECTOR_TOKEN``) if set, else a fresh one, printed in the URL.
    """
    from urllib.parse import urlencode

    from spanledger.collector.app import Collector
    from spanledger.collector.config import CollectorConfig
    from spanledger.reports.live import live_renderer
    from spanledger.reports.revenue import load_revenue
    from spanledger.store.discovery import TOKEN_ENV

    token = os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(18)
    cfg = CollectorConfig()
    cfg.clickhouse.url = result.url
    cfg.grpc.port = 0
    cfg.http.enabled = False
    cfg.telemetry.port = 0
    cfg.sql_http.enabled = True
    cfg.sql_http.port = port
    cfg.auth.bearer_token = token
    cfg.pricing.prices = str(demo_prices_file())
    cfg.batch.workers = 0
    collector = Collector(cfg, report=live_renderer(load_revenue(demo_revenue_file()),
                                                     _budget_sections())).start()
    stop = stop or threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set()) if (
        threading.current_thread() is threading.main_thread()) else None
    try:
        where = collector.endpoints()
        query = urlencode({"token": token, "from": result.first_day.isoformat(),
                           "to": result.last_day.isoformat()})
        out.write(f"\nLive report: {where['report']}?{query}\n"
                  f"  (the SQL front is {where['sql_http']}; reports from another terminal: "
                  f"export {TOKEN_ENV}={token})\n"
                  "Serving until Ctrl-C.\n")
        out.flush()
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        collector.stop()
        out.write("Stopped serving.\n")
        out.flush()
