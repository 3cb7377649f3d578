"""``spanledger prices show|unpriced``: what a model costs, and which calls have no price.

``show`` answers "what price will (or did) this model get, and from where?"
before anyone reads a report: every catalog and override period, and which
one is in force. ``unpriced`` lists the calls the store holds without a price,
grouped by provider/model, i.e. the to-do list for the overrides file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from spanledger.errors import UsageError
from spanledger.pricing.catalog import (
    PRICES_FILE_ENV,
    CallPricePeriod,
    PriceCatalog,
    PricePeriod,
)

UNPRICED_SQL = """
SELECT Provider, Model, count() AS calls, min(Timestamp) AS first_seen, max(Timestamp) AS last_seen,
       sum(InputTokens) AS input_tokens, sum(OutputTokens) AS output_tokens,
       sum(CacheReadTokens) AS cache_read_tokens, sum(CacheWriteTokens) AS cache_write_tokens
FROM llm_calls
WHERE Status = 'unpriced'
GROUP BY Provider, Model
ORDER BY calls DESC, Provider, Model
"""
UNPRICED_COLUMNS = (
    "provider",
    "model",
    "calls",
    "first_seen",
    "last_seen",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("prices", help="show model prices; list unpriced calls")
    sub = parser.add_subparsers(dest="prices_command", required=True, metavar="SUBCOMMAND")

    show = sub.add_parser("show", help="price periods of a model (catalog and overrides)")
    show.add_argument(
        "model", metavar="MODEL", help="model name (or a tool / vector database priced per call)"
    )
    show.add_argument("--provider", help="provider name as on spans (openai, aws.bedrock, ...)")
    show.add_argument(
        "--at", help="mark the period in force on this day, YYYY-MM-DD (default today)"
    )
    show.add_argument(
        "--prices", metavar="FILE", help=f"overrides file (default: ${PRICES_FILE_ENV} if set)"
    )
    show.add_argument("--format", choices=("table", "json"), default="table")
    show.set_defaults(func=cmd_show)

    unpriced = sub.add_parser("unpriced", help="calls in the store that have no price, per model")
    unpriced.add_argument(
        "--url", help="store URL (default: $SPANLEDGER_CLICKHOUSE_URL or chdb://./spanledger-data)"
    )
    unpriced.add_argument("--format", choices=("table", "json"), default="table")
    unpriced.set_defaults(func=cmd_unpriced)


def _parse_day(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--at: expected a date YYYY-MM-DD, got {text!r}") from None
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def _money(value: Decimal | None) -> str:
    return "-" if value is None else f"{value.normalize():f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def cmd_show(args: argparse.Namespace) -> int:
    at = _parse_day(args.at)
    prices_file = args.prices or os.environ.get(PRICES_FILE_ENV) or None
    catalog = PriceCatalog(prices_file)
    periods = catalog.describe(args.model, args.provider, at=at)
    if not periods:
        calls = catalog.describe_calls(args.model, at=at)
        if calls:
            return _show_calls(args, at, calls)
        where = catalog.version + (f" or {prices_file}" if prices_file else "")
        prov = f" (provider {args.provider})" if args.provider else ""
        raise UsageError(f"unknown model {args.model!r}{prov}: not in {where}")
    if args.format == "json":
        doc = {
            "model": args.model,
            "provider": args.provider,
            "at": at.date().isoformat(),
            "unit": "USD per million tokens",
            "periods": [p.to_dict() for p in periods],
        }
        print(json.dumps(doc, indent=2))
        return 0
    print(f"{args.model}: USD per million tokens; '*' = in force on {at.date().isoformat()}")
    headers = (
        "",
        "SOURCE",
        "PROVIDER",
        "MODEL",
        "FROM",
        "UNTIL",
        "INPUT",
        "OUTPUT",
        "CACHE_READ",
        "CACHE_WRITE",
        "DISCOUNT",
        "NOTES",
    )
    print(_table(headers, [_row(p) for p in periods]))
    return 0


def _show_calls(args: argparse.Namespace, at: dt.datetime, calls: list[CallPricePeriod]) -> int:
    """``prices show NAME`` for a tool or vector database priced per call."""
    if args.format == "json":
        doc = {
            "name": args.model,
            "at": at.date().isoformat(),
            "unit": "USD per call",
            "periods": [c.to_dict() for c in calls],
        }
        print(json.dumps(doc, indent=2))
        return 0
    print(f"{args.model}: USD per call; '*' = in force on {at.date().isoformat()}")
    rows = [
        [
            "*" if c.in_force else "",
            c.source,
            c.kind,
            c.pattern,
            c.effective_from.isoformat() if c.effective_from else "-",
            c.effective_until.isoformat() if c.effective_until else "-",
            _money(c.per_call),
            "; ".join(c.notes),
        ]
        for c in calls
    ]
    print(_table(("", "SOURCE", "KIND", "NAME", "FROM", "UNTIL", "PER_CALL", "NOTES"), rows))
    return 0


def _row(p: PricePeriod) -> list[str]:
    return [
        "*" if p.in_force else "",
        p.source,
        p.provider or "any",
        p.model,
        p.effective_from.isoformat() if p.effective_from else "-",
        p.effective_until.isoformat() if p.effective_until else "-",
        _money(p.input),
        _money(p.output),
        _money(p.cache_read),
        _money(p.cache_write),
        f"{_money(p.discount_percent)}%" if p.discount_percent is not None else "-",
        "; ".join(p.notes),
    ]


def cmd_unpriced(args: argparse.Namespace) -> int:
    from spanledger.store import open_store

    with open_store(args.url, read_only=True) as store:
        rows = store.query(UNPRICED_SQL)
    records = [dict(zip(UNPRICED_COLUMNS, row, strict=True)) for row in rows]
    if args.format == "json":
        print(
            json.dumps(
                [
                    {
                        k: (
                            v.isoformat()
                            if isinstance(v, dt.datetime)
                            else int(v)
                            if isinstance(v, int | Decimal)
                            else v
                        )
                        for k, v in r.items()
                    }
                    for r in records
                ],
                indent=2,
            )
        )
        return 0
    if not records:
        print("no unpriced calls")
        return 0
    print(
        _table(
            [c.upper() for c in UNPRICED_COLUMNS],
            [
                [
                    str(r["provider"]) or "-",
                    str(r["model"]) or "-",
                    str(r["calls"]),
                    _when(r["first_seen"]),
                    _when(r["last_seen"]),
                    str(r["input_tokens"]),
                    str(r["output_tokens"]),
                    str(r["cache_read_tokens"]),
                    str(r["cache_write_tokens"]),
                ]
                for r in records
            ],
        )
    )
    return 0


def _when(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)
