"""``spanledger quarantine list``: the spans the collector set aside, and why.

The collector never lets one bad span stop ingestion: spans it cannot store
(times past what the schema holds, values ClickHouse refuses, bytes that are
not OTLP) go to ``spanledger_quarantine`` with a reason. This lists them. The
store is opened read-only, so it works while the collector runs (through its
SQL front). ``--format json`` includes each span as OTLP/JSON, ready to be
fixed and sent again to ``/v1/traces``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
from typing import Any

from spanledger.errors import UsageError

LIST_SQL = """
SELECT Time, Reason, ServiceName, TraceId, SpanId, Segment, Detail, Span
FROM spanledger_quarantine
WHERE Time >= {since:DateTime64(3, 'UTC')}
ORDER BY Time, Segment, TraceId, SpanId
LIMIT {limit:UInt32}
"""
COLUMNS = ("time", "reason", "service", "trace_id", "span_id", "segment", "detail", "span")
#: characters of the detail shown per row in the table (json has all of it)
DETAIL_WIDTH = 100


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "quarantine", help="spans the collector set aside (and why)",
        description="Spans the collector could not store, kept in spanledger_quarantine "
                    "with the reason.")
    sub = parser.add_subparsers(dest="quarantine_command", required=True, metavar="SUBCOMMAND")
    ls = sub.add_parser("list", help="list quarantined spans, oldest first",
                        description="List quarantined spans with their reason, oldest first.")
    ls.add_argument("--since", metavar="YYYY-MM-DD",
                    help="only spans quarantined on or after this day (UTC)")
    ls.add_argument("--format", choices=("table", "json"), default="table")
    ls.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    ls.add_argument("--url", help="store URL (default: $SPANLEDGER_CLICKHOUSE_URL or "
                                  "chdb://./spanledger-data)")
    ls.set_defaults(func=cmd_list)


def _since(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since: expected a date YYYY-MM-DD, got {text!r}") from None
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def cmd_list(args: argparse.Namespace) -> int:
    since = _since(args.since)
    if not 1 <= args.limit <= 1_000_000:
        raise UsageError(f"--limit must be between 1 and 1000000, got {args.limit}")
    from spanledger.store import open_store

    with open_store(args.url, read_only=True) as store:
        rows = store.query(LIST_SQL, {"since": since.replace(tzinfo=None), "limit": args.limit})
    records = [dict(zip(COLUMNS, row, strict=True)) for row in rows]
    if args.format == "json":
        print(json.dumps([_json_record(r) for r in records], indent=2, ensure_ascii=False))
        return 0
    if not records:
        print("no quarantined spans" + (f" since {args.since}" if args.since else ""))
        return 0
    headers = ("TIME", "REASON", "SERVICE", "TRACE_ID", "SPAN_ID", "DETAIL")
    table = [[_when(r["time"]), r["reason"], r["service"] or "-", r["trace_id"] or "-",
              r["span_id"] or "-", _short(r["detail"])] for r in records]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print(f"{len(records)} quarantined span(s)"
          + (f" (first {args.limit}; use --limit)" if len(records) == args.limit else ""))
    return 0


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, dt.datetime) else str(value)


def _short(text: str) -> str:
    one_line = " ".join(str(text).split())
    return one_line if len(one_line) <= DETAIL_WIDTH else one_line[: DETAIL_WIDTH - 1] + "…"


def _json_record(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    out["time"] = record["time"].isoformat() if isinstance(record["time"], dt.datetime) \
        else str(record["time"])
    # the span as the JSON object it is (a cut or raw-bytes span stays a string)
    with contextlib.suppress(TypeError, ValueError):
        out["span"] = json.loads(record["span"])
    return out
