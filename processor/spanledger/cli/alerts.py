"""``spanledger alerts check``: evaluate the budgets once and deliver what fires (cron-friendly).

Exit codes: 0 nothing fired, 1 at least one alert fired (or, on a read-only
store, would fire), 2 a usage or budgets-file error, 3 the store could not
be read. An alert already sent (by a collector, an earlier run, another
host) is never sent again: the state is in the store's ``budget_alerts``.
While a collector holds the embedded store, this check reads through the
collector's SQL front, reports what would fire and leaves delivery to the
collector.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from spanledger.errors import UsageError

EXIT_NONE, EXIT_FIRED, EXIT_STORE = 0, 1, 3


def register(subparsers: Any) -> None:
    alerts = subparsers.add_parser("alerts", help="budget alerts: evaluate and deliver")
    sub = alerts.add_subparsers(dest="alerts_command", required=True, metavar="SUBCOMMAND")
    check = sub.add_parser(
        "check", help="evaluate every budget once; exit 1 if an alert fired",
        description="Evaluate the budgets file against the store, deliver the alerts that "
                    "fire (each threshold once per period), retry failed deliveries. "
                    "Exit 0: none fired, 1: fired, 2: usage error, 3: store unreadable.")
    check.add_argument("--budgets", metavar="FILE", required=True, help="budgets YAML")
    check.add_argument("--url", help="store URL (default $SPANLEDGER_CLICKHOUSE_URL or "
                                     "chdb://./spanledger-data)")
    check.add_argument("--as-of", metavar="WHEN",
                       help="evaluate as of this UTC time (YYYY-MM-DD[THH:MM]; a date means "
                            "the end of that day; default now)")
    check.add_argument("--dry-run", action="store_true",
                       help="show what would fire; send and record nothing")
    check.add_argument("--format", default="text", help="text | json (default text)")
    check.set_defaults(func=run_check)


def parse_when(text: str | None, flag: str = "--as-of") -> dt.datetime | None:
    """A UTC instant; a bare date is the last moment of that day."""
    if not text:
        return None
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime.combine(day, dt.time(23, 59, 59, 999999), dt.UTC)
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{flag}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM, got {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def run_check(args: argparse.Namespace) -> int:
    from spanledger.budgets.runner import AlertRunner
    from spanledger.reports.budgets import load_budget_file
    from spanledger.store import StoreError, StoreLocked, open_store

    if args.format not in ("text", "json"):
        raise UsageError(f"--format: unknown format {args.format!r} (expected text or json)")
    now = parse_when(args.as_of)
    budgets = load_budget_file(args.budgets)
    try:
        try:
            store = open_store(args.url, read_only=args.dry_run)
        except StoreLocked:  # the collector holds the embedded store: read through its front
            store = open_store(args.url, read_only=True)
        with store:
            result = AlertRunner(store, budgets, dry_run=args.dry_run).run_once(now)
    except StoreError as exc:
        print(f"spanledger alerts: error: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return EXIT_STORE
    fired = result.new
    if args.format == "json":
        print(json.dumps({
            "as_of": result.now.isoformat(), "read_only": result.read_only,
            "budgets": len(result.states),
            "fired": [_fired(f) for f in fired],
            "retried": [_fired(f) for f in result.retried],
        }, indent=2))
    else:
        for f in fired:
            status = ("would fire" if f.delivered is None else
                      "sent" if f.delivered else f"FAILED ({f.error}; retried later)")
            print(f"[{status}] {f.text}")
        for f in result.retried:
            print(f"[retry {'sent' if f.delivered else 'failed: ' + f.error}] {f.text}")
        summary = (f"{len(result.states)} budget scopes as of {result.now:%Y-%m-%d %H:%M} UTC: "
                   f"{len(fired)} alert(s) fired")
        if result.read_only and not args.dry_run:
            summary += (" (read-only store: nothing was sent here; the collector holding the "
                        "store delivers, or run `spanledger db migrate` for budget_alerts)")
        print(summary, file=sys.stderr)
    return EXIT_FIRED if fired else EXIT_NONE


def _fired(f: Any) -> dict[str, Any]:
    k = f.key
    return {"id": k.alert_id, "budget": k.budget, "scope": k.scope,
            "period": [k.period_start.isoformat(), k.period_end.isoformat()], "kind": k.kind,
            "threshold": f"{k.threshold.normalize():f}", "channel": k.channel,
            "attempt": f.attempt, "delivered": f.delivered, "error": f.error or None,
            "text": f.text}
