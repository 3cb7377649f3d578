"""``spanledger reconcile FILE...``: does the provider's bill tie out with what was metered?

Exit codes: 0 the unexplained variance is within ``--tolerance``; 1 it is not
(or the store cannot be read); 2 a bad flag or an export that cannot be read
(``file:line: field: problem``). Flags are checked before any file or the store
is opened.
"""

from __future__ import annotations

import argparse

from spanledger.cli.report import check_format, decimal_arg, emit, period_flags, with_store
from spanledger.reports.formats import FORMATS

EPILOG = """\
exports (recognised by their content; pass a provider's cost AND usage export to
compare token counts too):
  openai-costs     OpenAI Costs API JSON (/v1/organization/costs, group_by=line_item)
  openai-usage     OpenAI Usage API completions JSON (group_by=model)
  anthropic-cost   Anthropic cost report JSON (amounts in cents, group_by=description)
  anthropic-usage  Anthropic usage report JSON (group_by=model)
  focus            FOCUS CSV from AWS (Bedrock), Azure (Azure OpenAI), Google Cloud (Vertex AI)
rows: day x provider x model x token type: billed, metered, variance, tokens,
coverage (metered / billed) and the reason: calls not metered (services without
spanledger), unpriced model, discount missing from the overrides, price change,
batch / priority tier, cache or reasoning tokens, self-hosted; else (unexplained).
exit 1 when the unexplained variance exceeds --tolerance of the bill.
samples: collector-config/reconcile-samples/
"""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "reconcile", help="compare provider bills and usage exports with what was metered",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE", help="provider export files")
    period_flags(p, "the days the exports cover")
    p.add_argument("--summary", action="store_true",
                   help="per provider, the variance by cause instead of every row")
    p.add_argument("--tolerance", default="1%",
                   help="unexplained variance allowed, 0.01 or 1%% of the bill (default 1%%)")
    p.add_argument("--prices", metavar="FILE", help="price overrides YAML the services use "
                   "(default $SPANLEDGER_PRICES_FILE)")
    p.add_argument("--format", default="table", help=f"{' | '.join(FORMATS)} (default table)")
    p.add_argument("--url", help="store URL (default $SPANLEDGER_CLICKHOUSE_URL or "
                                 "chdb://./spanledger-data)")
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spanledger.reconcile.readers import read_exports
    from spanledger.reconcile.report import (
        ReconcileOptions,
        reconcile,
        rows_report,
        summary_report,
    )
    from spanledger.reports.formats import render
    from spanledger.reports.period import resolve_period

    check_format(args.format)
    period = None
    if args.period or args.date_from or args.date_to:
        period = resolve_period(args.period, args.date_from, args.date_to)
    opts = ReconcileOptions(tuple(args.files), period, decimal_arg("--tolerance")(args.tolerance),
                            args.prices)
    opts.validate()
    exports = read_exports(opts.files)
    result = with_store(args.url, lambda s: reconcile(s, opts, exports))
    report = summary_report(result) if args.summary else rows_report(result)
    emit(render(report, args.format), args.output)
    return result.exit_code
