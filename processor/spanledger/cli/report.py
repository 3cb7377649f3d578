"""``spanledger report spend|traces|disagreements|gpu|unit-economics|budgets|anomalies|html``:
showback, chargeback, agent runs, reported costs vs the collector's, GPU pools, cost per outcome
and per customer, budgets and anomalies.

Flags are validated before the store is opened, so a typo costs nothing and
is reported as one line with exit code 2. The store is opened read-only: a
report may run while the collector writes (it then goes through the
collector's SQL front).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from spanledger.errors import UsageError
from spanledger.reports.chargeback import DEFAULT_MARKUP, UNATTRIBUTED
from spanledger.reports.formats import FORMATS, render
from spanledger.reports.period import Period, parse_date, resolve_period, utc_today
from spanledger.reports.queries import DIMENSIONS, parse_dimensions
from spanledger.reports.spend import MODELS
from spanledger.reports.tabular import Report
from spanledger.store.base import Store

if TYPE_CHECKING:
    from spanledger.reports.budgets import BudgetFile

T = TypeVar("T")

SPEND_EPILOG = f"""\
models:
  showback      actual cost (or the snapshot cost with --snapshot-prices)
  proportional  --invoice-total split by token volume = input tokens (incl. cached)
                + output tokens of every call, priced or not; or --invoice FILE (a
                provider's cost export): each provider/model line split by the
                volume of the groups that used that model; sums to the invoice to
                the cent (largest remainder)
  cost-plus     cost x (1 + --markup); markup defaults to {DEFAULT_MARKUP}
  budget        charge against monthly budgets per group (--budgets FILE), with the
                50/80/100% alert and the hard stop (default 120%) reached at >=,
                and a month-end projection by linear run-rate over elapsed days
  fixed         a fixed monthly price per group (--fixed-prices FILE); the
                difference to actual cost is the platform margin
  hybrid        a rule per deployment environment (--hybrid FILE): showback
                (shown, not charged), chargeback, or cost-plus
GPU pools (--gpu-costs FILE) add each group's share of the GPUs that serve
self-hosted models (by tokens or span-seconds) to its charge; those calls carry
no per-token cost then. Shared costs (--shared-costs FILE) are prorated by each
group's share of charge.
Empty attribution is the row "{UNATTRIBUTED}"; unpriced calls are counted, never $0.
dimensions for --by: {", ".join(DIMENSIONS)}
formats: table (cents, rows add up to TOTAL), csv (full precision, header row,
no TOTAL row), json (money as exact decimal strings), focus (FinOps FOCUS 1.3 CSV:
actual cost per day and token type at full detail, list cost before discounts;
unpriced calls left out and counted on stderr; --by and the chargeback flags do not
apply)
"""


def decimal_arg(flag: str) -> Callable[[str], Decimal]:
    def parse(text: str) -> Decimal:
        t = text.strip()
        percent = t.endswith("%")
        try:
            value = Decimal(t.rstrip("%").replace("_", "").replace(",", ""))
        except InvalidOperation:
            raise UsageError(f"{flag}: expected a number, got {text!r}") from None
        if not value.is_finite():
            raise UsageError(f"{flag}: expected a finite number, got {text!r}")
        return value / 100 if percent else value
    return parse


def markup_arg(text: str) -> Decimal:
    """A markup as a fraction (0.15) or a percentage (15%).

    A bare number above 1 is refused: ``--markup 15`` is far more often a 15% typed
    without its sign than a 1500% markup, and an invoice is the wrong place to find out.
    """
    value = decimal_arg("--markup")(text)
    if value > 1 and not text.strip().endswith("%"):
        raise UsageError(f"--markup: {text} would be a {value * 100:f}% markup; write "
                         f"{value:f}% (or {value / 100:f}) for {value:f} percent, or "
                         f"{value * 100:f}% if you mean it")
    return value


def period_flags(p: argparse.ArgumentParser,
                 default: str = "the current month, UTC") -> None:
    g = p.add_argument_group(f"period (default: {default})")
    g.add_argument("--period", metavar="YYYY-MM", help="a calendar month")
    g.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="first day (inclusive)")
    g.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="last day (inclusive)")


def common_flags(p: argparse.ArgumentParser, formats: tuple[str, ...] | None = FORMATS) -> None:
    """Period, environment, format, store and output flags every report takes."""
    period_flags(p)
    p.add_argument("--env", help="only this deployment environment (e.g. prod)")
    if formats:
        p.add_argument("--format", default="table", help=f"{' | '.join(formats)} (default table)")
    p.add_argument("--url", help="store URL (default $SPANLEDGER_CLICKHOUSE_URL or "
                                 "chdb://./spanledger-data)")
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")


def _output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="table", help=f"{' | '.join(FORMATS)} (default table)")
    p.add_argument("--url", help="store URL (default $SPANLEDGER_CLICKHOUSE_URL or "
                                 "chdb://./spanledger-data)")
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    report = subparsers.add_parser("report", help="spend, chargeback and agent-run reports")
    sub = report.add_subparsers(dest="report", required=True, metavar="REPORT")

    spend = sub.add_parser(
        "spend", help="showback / chargeback by team, feature, customer, ...",
        epilog=SPEND_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_flags(spend, (*FORMATS, "focus"))
    spend.add_argument("--by", help="comma-separated group dimensions "
                       f"(default team): {','.join(DIMENSIONS)}")
    spend.add_argument("--model", default="showback",
                       help=f"{' | '.join(MODELS)} (default showback)")
    spend.add_argument("--markup",
                       help=f"cost-plus markup, 0.15 or 15%% (default {DEFAULT_MARKUP})")
    spend.add_argument("--invoice-total", metavar="AMOUNT",
                       help="USD invoice to split (proportional)")
    spend.add_argument("--invoice", metavar="FILE", action="append",
                       help="provider cost export to split line by line (proportional; "
                            "repeat for several providers)")
    spend.add_argument("--shared-costs", metavar="FILE", help="shared platform costs YAML")
    spend.add_argument("--budgets", metavar="FILE", help="monthly budgets YAML (--model budget)")
    spend.add_argument("--fixed-prices", metavar="FILE",
                       help="fixed monthly prices YAML (--model fixed)")
    spend.add_argument("--hybrid", metavar="FILE",
                       help="per-environment rules YAML (--model hybrid)")
    spend.add_argument("--gpu-costs", metavar="FILE",
                       help="GPU pools of self-hosted models YAML, shared out by use")
    spend.add_argument("--snapshot-prices", metavar="YYYY-MM-DD",
                       help="charge at the prices in force on this date; actual shown beside")
    spend.add_argument("--prices", metavar="FILE",
                       help="price overrides YAML for --snapshot-prices, the one the services "
                            "and collector use (default $SPANLEDGER_PRICES_FILE)")
    spend.add_argument("--as-of", metavar="YYYY-MM-DD",
                       help="'today' for the budget projection (default: today, UTC)")
    spend.set_defaults(func=run_spend)

    traces = sub.add_parser("traces", help="most expensive agent runs and their amplification")
    common_flags(traces)
    traces.add_argument("--top", type=int, default=10, help="how many runs (default 10)")
    traces.add_argument("--feature", help=f"only this feature ({UNATTRIBUTED!r} for untagged)")
    traces.set_defaults(func=run_traces)

    disagreements = sub.add_parser(
        "disagreements", help="costs the spans arrived with vs the collector's (never summed)",
        description="Per service x model: calls that came with a cost of their own (a "
                    "service's, another tool's), those that differ from the collector's, and "
                    "both sums; then late arrivals, invalid rows, rejected claims and "
                    "quarantined spans of the period.")
    common_flags(disagreements)
    disagreements.set_defaults(func=run_disagreements)

    gpu = sub.add_parser("gpu", help="GPU pools of self-hosted models, shared out by use")
    common_flags(gpu)
    gpu.add_argument("--gpu-costs", metavar="FILE", required=True, help="GPU pools YAML")
    gpu.add_argument("--by", help="comma-separated group dimensions (default team)")
    gpu.set_defaults(func=run_gpu)

    units = sub.add_parser(
        "unit-economics", help="cost per outcome by feature; per customer, margin on revenue",
        epilog=UNIT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_flags(units)
    units.add_argument("--by", choices=("feature", "customer"), default=None,
                       help="feature: cost per outcome and waste (default); customer: AI cost, "
                            "active users, revenue and margin (default with --revenue)")
    units.add_argument("--team", help=f"only this team ({UNATTRIBUTED!r} for untagged)")
    units.add_argument("--feature", help=f"only this feature ({UNATTRIBUTED!r} for untagged)")
    units.add_argument("--revenue", metavar="FILE",
                       help="revenue per customer, YAML or CSV (--by customer)")
    units.add_argument("--threshold", metavar="PERCENT",
                       help="flag customers whose AI cost is >= this %% of their revenue "
                            "(default: the file's threshold_percent, else 20)")
    units.set_defaults(func=run_unit_economics)

    budgets = sub.add_parser(
        "budgets", help="every budget: spent, forecast, thresholds reached, alerts sent",
        description="State of every budget of the file in its current period: spend so far, "
                    "period-end forecast (weekday-seasonal run-rate, else linear), thresholds "
                    "reached (at >=), and the alerts sent for it.")
    budgets.add_argument("--budgets", metavar="FILE", required=True, help="budgets YAML")
    budgets.add_argument("--as-of", metavar="WHEN",
                         help="evaluate as of this UTC time (YYYY-MM-DD[THH:MM]; default now)")
    _output_flags(budgets)
    budgets.set_defaults(func=run_budgets)

    anomalies = sub.add_parser(
        "anomalies", help="spend spikes, slow creeps and runaway agent runs",
        description="Daily spend per team, feature, customer and model against its own "
                    "robust, day-of-week aware baseline (median and MAD of the 28 days "
                    "before), and agent runs against their feature's p95. Thresholds: the "
                    "budgets file's anomalies section (--budgets), else the defaults.")
    period_flags(anomalies)
    anomalies.add_argument("--budgets", metavar="FILE", help="budgets YAML (anomalies: section)")
    anomalies.add_argument("--as-of", metavar="YYYY-MM-DD",
                           help="last day of the default window (the 7 days to today)")
    _output_flags(anomalies)
    anomalies.set_defaults(func=run_anomalies)

    html = sub.add_parser("html", help="one self-contained HTML report with charts")
    common_flags(html, formats=None)
    html.add_argument("--budgets", metavar="FILE", help="budgets YAML for the budget-burn chart")
    html.add_argument("--by", default=None,
                      help="dimensions the budgets file is keyed by (default: the file's own)")
    html.add_argument("--top", type=int, default=10, help="top traces shown (default 10)")
    html.add_argument("--revenue", metavar="FILE",
                      help="revenue per customer (YAML or CSV) for the unit-economics section")
    html.add_argument("--as-of", metavar="WHEN",
                      help="'now' of the budgets and anomalies sections (default now)")
    html.set_defaults(func=run_html)


UNIT_EPILOG = f"""\
views:
  --by feature   per team x feature x outcome name: the cost of the feature's runs
                 (traces) that started in the period / the outcomes counted for them,
                 and the waste: runs that produced no outcome of any name. Outcomes come
                 from spanledger.outcome(name, value) in the services; one recorded later
                 with trace_id= counts for the run it names.
  --by customer  per customer: AI cost, runs, active users (distinct users with a call),
                 cost per active user; with --revenue FILE also AI cost as % of revenue,
                 margin after AI cost, and a flag at >= --threshold percent.
revenue file: monthly USD per customer (optionally per month), prorated onto the
period by days; YAML (customers: [{{customer: acme, monthly: 12000}}]) or CSV
(header customer,monthly[,month]); see collector-config/revenue.example.yaml.
Untagged runs are "{UNATTRIBUTED}"; unpriced calls are counted, never $0.
"""


def percent_arg(flag: str, text: str) -> Decimal:
    """``20`` or ``20%``: a percentage, >= 0."""
    value = decimal_arg(flag)(text.strip().rstrip("%"))
    if value < 0:
        raise UsageError(f"{flag}: expected a percentage >= 0, got {text!r}")
    return value


def _period(args: argparse.Namespace) -> Period:
    return resolve_period(args.period, args.date_from, args.date_to)


def check_format(fmt: str, allowed: tuple[str, ...] = FORMATS) -> None:
    if fmt not in allowed:
        raise UsageError(
            f"--format: unknown format {fmt!r} (expected one of: {', '.join(allowed)})")


def _run_focus(args: argparse.Namespace) -> int:
    """FOCUS export: actual cost at full detail, so grouping and chargeback flags do not apply."""
    from spanledger.reports.focus import build_focus_report

    ignored = [flag for flag, value in (
        ("--by", args.by), ("--markup", args.markup), ("--invoice-total", args.invoice_total),
        ("--invoice", args.invoice), ("--shared-costs", args.shared_costs),
        ("--budgets", args.budgets), ("--fixed-prices", args.fixed_prices),
        ("--hybrid", args.hybrid), ("--gpu-costs", args.gpu_costs),
        ("--snapshot-prices", args.snapshot_prices), ("--as-of", args.as_of)) if value]
    if args.model != "showback":
        ignored.insert(0, "--model")
    if ignored:
        raise UsageError(f"--format focus exports actual cost per day at full detail; "
                         f"{', '.join(ignored)} do not apply")
    period = _period(args)
    report = with_store(args.url, lambda s: build_focus_report(s, period, args.env))
    emit(render(report, "csv"), args.output)
    for note in report.notes:  # a CSV has no room for them: what was left out, and why
        print(f"spanledger report spend: note: {note}", file=sys.stderr)
    return 0


def with_store(url: str | None, work: Callable[[Store], T]) -> T:
    """Run ``work`` on the store, read-only; store errors go to cli.main (one line, exit 1/2)."""
    from spanledger.store import open_store

    with open_store(url, read_only=True) as store:
        return work(store)


def emit(text: str, output: str | None) -> None:
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--output: cannot write {output}: {exc.strerror or exc}") from None
        print(f"wrote {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def run_spend(args: argparse.Namespace) -> int:
    from spanledger.reports.budgets import load_budgets
    from spanledger.reports.fixed_prices import load_fixed_prices
    from spanledger.reports.gpu_costs import load_gpu_costs
    from spanledger.reports.hybrid import load_hybrid
    from spanledger.reports.shared_costs import load_shared_costs
    from spanledger.reports.spend import SpendOptions, build_spend_report

    check_format(args.format, (*FORMATS, "focus"))
    if args.format == "focus":
        return _run_focus(args)
    dims = parse_dimensions(args.by)
    opts = SpendOptions(
        period=_period(args), dims=dims, model=args.model,
        markup=markup_arg(args.markup) if args.markup is not None else None,
        invoice_total=(decimal_arg("--invoice-total")(args.invoice_total)
                       if args.invoice_total is not None else None),
        snapshot=(parse_date(args.snapshot_prices, "--snapshot-prices")
                  if args.snapshot_prices else None),
        prices=args.prices,
        env=args.env,
        today=parse_date(args.as_of, "--as-of") if args.as_of else None,
    )
    # flags first, before reading any file
    opts.validate({"budgets": bool(args.budgets), "fixed": bool(args.fixed_prices),
                   "hybrid": bool(args.hybrid), "gpu": bool(args.gpu_costs),
                   "invoice": bool(args.invoice)})
    invoice = None
    if args.invoice:
        from spanledger.reconcile.invoice import invoice_lines

        invoice = invoice_lines(args.invoice, opts.period)
    opts = dataclasses.replace(
        opts,
        shared=load_shared_costs(args.shared_costs) if args.shared_costs else None,
        budgets=load_budgets(args.budgets, dims) if args.budgets else None,
        fixed=load_fixed_prices(args.fixed_prices, dims) if args.fixed_prices else None,
        hybrid=load_hybrid(args.hybrid) if args.hybrid else None,
        gpu=load_gpu_costs(args.gpu_costs) if args.gpu_costs else None,
        invoice=invoice,
    )
    report = with_store(args.url, lambda s: build_spend_report(s, opts))
    emit(render(report, args.format), args.output)
    return 0


def run_gpu(args: argparse.Namespace) -> int:
    from spanledger.reports.gpu import build_gpu_report
    from spanledger.reports.gpu_costs import load_gpu_costs

    check_format(args.format)
    dims = parse_dimensions(args.by)
    period = _period(args)
    costs = load_gpu_costs(args.gpu_costs)
    report = with_store(args.url, lambda s: build_gpu_report(s, costs, period, dims, args.env))
    emit(render(report, args.format), args.output)
    return 0


def run_disagreements(args: argparse.Namespace) -> int:
    from spanledger.reports.disagreements import build_disagreements_report

    check_format(args.format)
    period = _period(args)
    report = with_store(args.url, lambda s: build_disagreements_report(s, period, args.env))
    emit(render(report, args.format), args.output)
    return 0


def run_traces(args: argparse.Namespace) -> int:
    from spanledger.reports.traces import build_traces_report

    check_format(args.format)
    if args.top < 1:
        raise UsageError(f"--top must be at least 1, got {args.top}")
    period = _period(args)
    feature = args.feature
    if feature == UNATTRIBUTED:
        feature = ""

    def work(store: Store) -> Report:
        return build_traces_report(store, period, args.top, feature, args.env)

    report = with_store(args.url, work)
    emit(render(report, args.format), args.output)
    return 0


def _untagged(value: str | None) -> str | None:
    return "" if value == UNATTRIBUTED else value


def run_unit_economics(args: argparse.Namespace) -> int:
    from spanledger.reports.queries import Scope
    from spanledger.reports.revenue import load_revenue
    from spanledger.reports.unit_economics import build_unit_economics

    check_format(args.format)
    by = args.by or ("customer" if args.revenue else "feature")
    if by == "feature" and (args.revenue or args.threshold):
        raise UsageError("--revenue and --threshold apply to --by customer")
    threshold = percent_arg("--threshold", args.threshold) if args.threshold else None
    period = _period(args)
    scope = Scope(args.env, _untagged(args.team), _untagged(args.feature))
    revenue = load_revenue(args.revenue) if args.revenue else None
    report = with_store(args.url, lambda s: build_unit_economics(
        s, period, by, scope, revenue, threshold))
    emit(render(report, args.format), args.output)
    return 0


def run_budgets(args: argparse.Namespace) -> int:
    from spanledger.budgets.report import build_budgets_report
    from spanledger.cli.alerts import parse_when
    from spanledger.reports.budgets import load_budget_file

    check_format(args.format)
    now = parse_when(args.as_of) or dt.datetime.now(dt.UTC)
    budgets = load_budget_file(args.budgets)
    report = with_store(args.url, lambda s: build_budgets_report(s, budgets, now))
    emit(render(report, args.format), args.output)
    return 0


def _anomaly_window(args: argparse.Namespace) -> Period:
    if args.period or args.date_from or args.date_to:
        if args.as_of:
            raise UsageError("--as-of sets the default window; it cannot be combined with "
                             "--period or --from/--to")
        return _period(args)
    end = parse_date(args.as_of, "--as-of") if args.as_of else utc_today()
    return Period(end - dt.timedelta(days=6), end)


def run_anomalies(args: argparse.Namespace) -> int:
    from spanledger.budgets.report import build_anomalies_report
    from spanledger.reports.budgets import AnomalySettings, load_budget_file

    check_format(args.format)
    window = _anomaly_window(args)
    settings = load_budget_file(args.budgets).anomalies if args.budgets else AnomalySettings()
    report = with_store(args.url, lambda s: build_anomalies_report(s, window, settings))
    emit(render(report, args.format), args.output)
    return 0


def budget_sections(budget_file: BudgetFile | None
                    ) -> Callable[[Store, Period, dt.datetime], dict[str, Any]]:
    """What the budgets layer adds to the HTML report, for ``report html`` and the
    collector's live page: the budgets of the file (if any) as of now, the anomalies of
    the last 7 days of the period up to now (the file's thresholds, else the defaults),
    and the month-end forecaster the budgets use."""
    from spanledger.budgets.forecast import forecast_period
    from spanledger.budgets.report import build_anomalies_report, build_budgets_report
    from spanledger.reports.budgets import AnomalySettings

    settings = budget_file.anomalies if budget_file else AnomalySettings()

    def forecaster(daily: Mapping[dt.date, Decimal], period: Period,
                   now: dt.datetime) -> tuple[Decimal | None, str]:
        found = forecast_period(daily, period, now)
        return found.total, found.method

    def build(store: Store, period: Period, now: dt.datetime) -> dict[str, Any]:
        window = Period(max(period.start, min(period.end, now.date()) - dt.timedelta(days=6)),
                        min(period.end, now.date()))
        return {"budget_status": build_budgets_report(store, budget_file, now)
                if budget_file else None,
                "anomalies": build_anomalies_report(store, window, settings)
                if window.days > 0 else None,
                "forecaster": forecaster}

    return build


def run_html(args: argparse.Namespace) -> int:
    from spanledger.cli.alerts import parse_when
    from spanledger.reports.budgets import load_budget_file, load_budgets
    from spanledger.reports.html import write_html_report
    from spanledger.reports.revenue import load_revenue

    period = _period(args)
    if args.top < 1:
        raise UsageError(f"--top must be at least 1, got {args.top}")
    budgets = budget_file = None
    if args.budgets:
        budget_file = load_budget_file(args.budgets)
        if budget_file.by is not None:  # the burn chart needs the report shape (monthly: by)
            budgets = load_budgets(args.budgets, parse_dimensions(args.by) if args.by else None)
        elif args.by:
            raise UsageError("--by: the budgets file has no `by` (monthly budgets) to chart")
    elif args.by:
        raise UsageError("--by applies with --budgets only")
    now = parse_when(args.as_of) or dt.datetime.now(dt.UTC)
    revenue = load_revenue(args.revenue) if args.revenue else None
    output = Path(args.output or f"spanledger-report-{period.label.replace('..', '_')}.html")
    sections = budget_sections(budget_file)

    def work(store: Store) -> Path:
        return write_html_report(store, output, period, budgets=budgets, env=args.env,
                                 top=args.top, now=now, revenue=revenue,
                                 **sections(store, period, now))

    print(with_store(args.url, work))
    return 0
