"""``spanledger db migrate``: create or update the ClickHouse schema.

Safe to run on every deploy: applied migrations are recorded and skipped, so a
second run prints "up to date" and exits 0.
"""

from __future__ import annotations

import argparse
from typing import Any

from spanledger.errors import UsageError
from spanledger.store import DEFAULT_URL, ENV_VAR, open_store, parse_url


def register(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="manage the ClickHouse schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="SUBCOMMAND")
    mig = db_sub.add_parser(
        "migrate",
        help="create or update the tables and materialized views (idempotent)",
        description="Run the spanledger ClickHouse migrations that have not run yet.",
    )
    mig.add_argument(
        "--url",
        help=f"chdb://PATH or http(s)://user:pass@host:port/db (default: ${ENV_VAR}, "
        f"else {DEFAULT_URL})",
    )
    mig.add_argument(
        "--cluster",
        metavar="NAME",
        help="create Replicated local tables ON CLUSTER NAME with Distributed tables over them",
    )
    mig.add_argument(
        "--ttl-days",
        type=int,
        metavar="N",
        help="drop raw spans, calls and per-trace rows after N days (daily rollup is kept)",
    )
    mig.set_defaults(func=migrate_command)


def migrate_command(args: argparse.Namespace) -> int:
    from spanledger.store.migrate import migrate, placeholders

    if args.ttl_days is not None and args.ttl_days <= 0:
        raise UsageError(f"--ttl-days must be a positive number of days, not {args.ttl_days}")
    try:
        placeholders(args.cluster, args.ttl_days)
    except ValueError as exc:
        raise UsageError(f"--cluster: {exc}") from exc
    parsed = parse_url(args.url)
    if args.cluster and parsed.is_chdb:
        raise UsageError("--cluster needs a ClickHouse server URL (http(s)://...), not chdb://")
    with open_store(parsed.raw) as store:
        applied = migrate(store, cluster=args.cluster, ttl_days=args.ttl_days)
    if applied:
        for name in applied:
            print(f"applied {name}")
    else:
        print(f"{store.url}: schema up to date")
    return 0
