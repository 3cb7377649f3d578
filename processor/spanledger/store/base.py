"""The one interface every storage backend offers (embedded chdb, ClickHouse server).

Reports, migrations and the collector's writer talk to this protocol only, so
the same SQL runs on the embedded engine in tests and on a server in production.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, Self

import pyarrow as pa


class StoreError(RuntimeError):
    """The store refused or could not run a statement (message from ClickHouse)."""


class StoreUnavailable(StoreError):
    """The store cannot be reached right now: callers spool and retry."""


class StoreLocked(StoreUnavailable):
    """Another process (usually ``spanledger collector``) owns this embedded store."""


class Store(Protocol):
    url: str

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a SELECT, as Python values (Decimal for decimals, datetime for times)."""

    def query_columns(
        self, sql: str, params: dict[str, Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and rows of a SELECT."""

    def command(self, sql: str, settings: dict[str, Any] | None = None) -> None:
        """A statement without result rows (DDL, INSERT ... SELECT)."""

    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        """Insert ``data`` into ``table``; a repeated ``dedup_token`` inserts nothing
        again, in the table and in every materialized view below it."""

    def insert_arrow_file(
        self, table: str, path: str | Path, dedup_token: str | None = None
    ) -> None:
        """Insert the rows of the Arrow IPC stream file at ``path`` into ``table``.

        The file's rows form one insert, so a replay of the same file with the
        same ``dedup_token`` is recognized (and skipped) exactly like a repeated
        :meth:`insert_arrow`. Each backend reads the file its cheapest way.
        """

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class StoreHandle:
    """What every backend shares: its URL, the read-only guard, ``with`` support."""

    url: str
    read_only: bool

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, read_only={self.read_only})"

    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError(f"store {self.url} was opened read-only")


def dedup_settings(dedup_token: str | None) -> dict[str, Any]:
    """Settings that make a repeated insert a no-op in the table AND in every
    materialized view below it, so replays and retries never double count.

    Every backend's inserts take their settings from here, and only here.
    """
    settings: dict[str, Any] = {"deduplicate_blocks_in_dependent_materialized_views": 1}
    if dedup_token is not None:
        settings["insert_deduplication_token"] = dedup_token
    return settings


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def columns_of(names: Sequence[str]) -> str:
    return ", ".join(quote_ident(n) for n in names)
