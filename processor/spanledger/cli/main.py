"""Entry point of the ``spanledger`` command.

Each command group lives in its own module with a ``register(subparsers)``
function; this file only wires them together and turns a user's mistake
(:class:`~spanledger.errors.UsageError`, :class:`~spanledger.yamlconf.ConfigError`, a malformed
storage URL) into one line on stderr and exit code 2, the way argparse itself
reports bad flags, and a store that cannot serve the command (locked,
unreachable, not migrated) into one line and exit code 1. Commands therefore
just open the store and let these errors through.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from spanledger.cli import (
    alerts,
    collector,
    db,
    demo,
    period,
    prices,
    quarantine,
    reconcile,
    report,
)
from spanledger.errors import UsageError
from spanledger.yamlconf import ConfigError

#: command-group modules, in the order ``--help`` lists them. Imported here,
#: not looked up by name, so the import graph (tests/test_layering.py) sees them;
#: each keeps its heavy imports inside its command function.
COMMAND_MODULES = (demo, collector, db, report, period, reconcile, alerts, quarantine,
                   prices)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spanledger",
        description="Cost and ownership for every LLM call: collect, roll up, report.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from spanledger.store import StoreError, StoreUrlError

    try:
        return int(args.func(args) or 0)
    except (UsageError, ConfigError, StoreUrlError) as exc:
        print(f"spanledger {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"spanledger {args.command}: error: {_store_problem(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _store_problem(exc: Exception) -> str:
    """ClickHouse's first line, with the fix when the schema is simply missing."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "UNKNOWN_TABLE" in message or "Unknown table" in message:
        return "the store has no spanledger schema: run `spanledger db migrate` first"
    if "AUTHENTICATION_FAILED" in message:
        return (
            "the collector serving this store refused the query: set "
            "SPANLEDGER_COLLECTOR_TOKEN to the collector's bearer token"
        )
    return message


if __name__ == "__main__":
    sys.exit(main())
