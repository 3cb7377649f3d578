"""``spanledger period close|list|reopen``: freeze a month once its invoice is sent.

After ``spanledger period close 2026-11`` the numbers of November (and of every month
before it) never change again: spans dated in it that arrive later are late
arrivals, booked in the open period and shown there as an adjustment
(``report spend`` notes and its ``late`` column). Closing writes to the store, so on
the embedded store it runs while the collector is stopped (or point ``--url`` at the
ClickHouse server the collectors write to). Reopening changes an invoice that may
have been sent: it asks for ``--confirm``.
"""

from __future__ import annotations

import argparse
import getpass
import os
from typing import Any

from spanledger.errors import UsageError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "period", help="close a month (its invoice never changes again), list, reopen",
        description="Closed periods: a closed month's numbers never change; spans for it "
                    "that arrive later are booked as late arrivals in the open period.")
    sub = parser.add_subparsers(dest="period_command", required=True, metavar="SUBCOMMAND")
    close = sub.add_parser("close", help="freeze a month (YYYY-MM) and every month before it",
                           description="Freeze a month: later spans for it (or any month "
                                       "before it) are booked in the open period, flagged late.")
    close.add_argument("month", metavar="YYYY-MM")
    _common(close)
    ls = sub.add_parser("list", help="closed months and where the open period starts")
    ls.add_argument("--url", help=_URL_HELP)
    ls.set_defaults(func=cmd_list)
    reopen = sub.add_parser("reopen", help="reopen a closed month (needs --confirm)",
                            description="Reopen a closed month: spans for it that arrive from "
                                        "now on change its numbers again. Late spans already "
                                        "booked elsewhere stay there.")
    reopen.add_argument("month", metavar="YYYY-MM")
    reopen.add_argument("--confirm", action="store_true",
                        help="yes: the month's invoice may change from now on")
    _common(reopen)
    close.set_defaults(func=cmd_close)
    reopen.set_defaults(func=cmd_reopen)


_URL_HELP = ("store URL (default: $SPANLEDGER_CLICKHOUSE_URL or chdb://./spanledger-data; an "
             "embedded store must not be held by a running collector)")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--note", default="", help="why (kept with the change)")
    parser.add_argument("--by", help="who (default: the current user)")
    parser.add_argument("--url", help=_URL_HELP)


def _who(args: argparse.Namespace) -> str:
    if args.by:
        return str(args.by)
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "")


def cmd_close(args: argparse.Namespace) -> int:
    from spanledger.reports.closing import close_month, month_states, month_totals, open_from
    from spanledger.reports.period import parse_month
    from spanledger.store import open_store

    period = parse_month(args.month, "MONTH")
    with open_store(args.url) as store:
        state, changed = close_month(store, args.month, by=_who(args), note=args.note)
        start = open_from(month_states(store))
        totals = month_totals(store, period)
    verb = "closed" if changed else "already closed"
    print(f"{period.label} {verb} ({state.at:%Y-%m-%d %H:%M} UTC by {state.by or '-'}): "
          f"{totals.calls} calls, {totals.cost:.2f} USD, frozen")
    print(f"spans dated before {start} that arrive from now on are booked as late arrivals "
          "in the open period")
    return 0


def cmd_reopen(args: argparse.Namespace) -> int:
    from spanledger.reports.closing import reopen_month
    from spanledger.reports.period import parse_month
    from spanledger.store import open_store

    period = parse_month(args.month, "MONTH")
    if not args.confirm:
        raise UsageError(f"reopening {period.label} changes an invoice that may have been "
                         "sent: repeat with --confirm")
    with open_store(args.url) as store:
        reopen_month(store, args.month, by=_who(args), note=args.note)
    print(f"{period.label} reopened: spans for it that arrive from now on change its numbers "
          "(late arrivals already booked stay where they were booked)")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from spanledger.reports.closing import month_states, open_from
    from spanledger.store import open_store

    with open_store(args.url, read_only=True) as store:
        states = month_states(store)
    if not states:
        print("no month was ever closed: every span is booked on its own day")
        return 0
    headers = ("MONTH", "STATE", "SINCE", "BY", "NOTE")
    rows = [(s.label, s.state, f"{s.at:%Y-%m-%d %H:%M}", s.by or "-", s.note) for s in states]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(f"open period starts {open_from(states)} (earlier spans are booked as late arrivals)")
    return 0
