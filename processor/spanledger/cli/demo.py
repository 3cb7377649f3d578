"""``spanledger demo``: the whole pipeline on this machine, in an empty folder.

It writes the default store (``./spanledger-data``) unless ``--store``/``--url``
says otherwise, so ``spanledger report ...`` run afterwards in the same folder
reads what the demo made. A second run refuses to add a second month of data
on top of the first; ``--reset`` deletes the embedded store and starts again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SIZES = {"small": 2_000, "full": 20_000}

EPILOG = """\
what it does:
  starts the embedded collector (OTLP/gRPC on a free port), then runs sample
  services of a made-up company (support, search, sales, ml-platform teams)
  through the real OpenAI and Anthropic clients and their OpenTelemetry
  instrumentations against a local stub provider, with spanledger's
  CostSpanProcessor, exporting over OTLP; traces are backdated over --days.
  The services record outcomes (resolved tickets, accepted answers, conversions a
  CRM webhook reports later). Then it prints spend by team and feature, the top
  traces, cost per outcome and unit economics per customer (revenue:
  collector-config/demo-revenue.yaml), and writes an HTML report. Prices:
  genai-prices plus collector-config/demo-prices.yaml. With --serve it keeps
  the collector running with its live /report page until Ctrl-C.
"""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "demo", help="run the whole pipeline on sample data and show the reports",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--calls", type=int, help="LLM calls to make (default 20000)")
    size.add_argument("--size", choices=sorted(SIZES),
                      help="small = 2000 calls, full = 20000 (default)")
    p.add_argument("--days", type=int, default=31, help="spread the calls over this many days "
                                                        "ending today (default 31)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--store", metavar="DIR", help="embedded store directory "
                                                      "(default ./spanledger-data)")
    where.add_argument("--url", help="store URL (chdb://DIR or http(s)://user:pass@host:port/db; "
                                     "default $SPANLEDGER_CLICKHOUSE_URL or chdb://./spanledger-data)")
    p.add_argument("--reset", action="store_true",
                   help="delete the embedded store first if it already holds data")
    p.add_argument("--workers", type=int, default=2, help="service processes (default 2)")
    p.add_argument("--seed", type=int, default=7, help="random seed of the sample data")
    p.add_argument("--html", metavar="FILE", help="HTML report path "
                                                  "(default ./spanledger-report-demo.html)")
    p.add_argument("--quiet", action="store_true", help="do not print the reports")
    p.add_argument("--serve", action="store_true",
                   help="afterwards, keep serving the live report (/report, with period, team "
                        "and feature pickers) until Ctrl-C; the URL is printed")
    p.add_argument("--serve-port", type=int, default=0,
                   help="port of the live report and SQL front (default: any free port)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spanledger.demo.runner import DemoError, DemoOptions, run_demo

    calls = args.calls if args.calls is not None else SIZES[args.size or "full"]
    url = f"chdb://{args.store}" if args.store else args.url
    opts = DemoOptions(calls=calls, days=args.days, seed=args.seed, workers=args.workers,
                       url=url, reset=args.reset, html=Path(args.html) if args.html else None,
                       show_reports=not args.quiet, serve=args.serve,
                       serve_port=args.serve_port)
    try:
        run_demo(opts)
    except DemoError as exc:
        print(f"spanledger demo: error: {exc}", file=sys.stderr)
        return 1
    return 0
