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
from spanledger.reports.formats import text_table

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


#: table headers of ``prices show`` for token prices and for per-call prices
TOKEN_HEADERS = ("", "SOURCE", "PROVIDER", "MODEL", "FROM", "UNTIL", "INPUT", "OUTPUT",
                 "CACHE_READ", "CACHE_WRITE", "DISCOUNT", "NOTES")
CALL_HEADERS = ("", "SOURCE", "KIND", "NAME", "FROM", "UNTIL", "PER_CALL", "NOTES")


def cmd_show(args: argparse.Namespace) -> int:
    at = _parse_day(args.at)
    prices_file = args.prices or os.environ.get(PRICES_FILE_ENV) or None
    catalog = PriceCatalog(prices_file)
    periods = catalog.describe(args.model, args.provider, at=at)
    if periods:
        return _print_periods(
            args, at, {"model": args.model, "provider": args.provider}, "USD per million tokens",
            [p.to_dict() for p in periods], TOKEN_HEADERS, [_token_row(p) for p in periods])
    # not a model: a tool or vector database priced per call?
    calls = catalog.describe_calls(args.model, at=at)
    if calls:
        return _print_periods(
            args, at, {"name": args.model}, "USD per call",
            [c.to_dict() for c in calls], CALL_HEADERS, [_call_row(c) for c in calls])
    where = catalog.version + (f" or {prices_file}" if prices_file else "")
    prov = f" (provider {args.provider})" if args.provider else ""
    raise UsageError(f"unknown model {args.model!r}{prov}: not in {where}")


def _print_periods(args: argparse.Namespace, at: dt.datetime, subject: dict[str, str | None],
                   unit: str, periods: list[dict[str, Any]], headers: Sequence[str],
                   rows: list[list[str]]) -> int:
    """One answer of ``prices show``: a JSON document, or a title line and a table."""
    day = at.date().isoformat()
    if args.format == "json":
        print(json.dumps({**subject, "at": day, "unit": unit, "periods": periods}, indent=2))
        return 0
    print(f"{args.model}: {unit}; '*' = in force on {day}")
    print(_table_text(headers, rows))
    return 0


def _validity(in_force: bool, source: str, what: str, name: str,
              start: dt.date | None, until: dt.date | None) -> list[str]:
    """The columns every price period starts with: in force, source, what, from, until."""
    return ["*" if in_force else "", source, what, name,
            start.isoformat() if start else "-", until.isoformat() if until else "-"]


def _token_row(p: PricePeriod) -> list[str]:
    return [
        *_validity(p.in_force, p.source, p.provider or "any", p.model, p.effective_from,
                   p.effective_until),
        _money(p.input),
        _money(p.output),
        _money(p.cache_read),
        _money(p.cache_write),
        f"{_money(p.discount_percent)}%" if p.discount_percent is not None else "-",
        "; ".join(p.notes),
    ]


def _call_row(c: CallPricePeriod) -> list[str]:
    return [
        *_validity(c.in_force, c.source, c.kind, c.pattern, c.effective_from, c.effective_until),
        _money(c.per_call),
        "; ".join(c.notes),
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
        _table_text(
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


def _table_text(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    return "\n".join(text_table(headers, rows))


def _when(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)
