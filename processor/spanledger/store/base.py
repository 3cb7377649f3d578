"""The one interface every storage backend offers (embedded chdb, ClickHouse server).

Reports, migrations and the collector's writer talk to this protocol only, so
the same SQL runs on the embedded engine in tests and on a server in production.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self

import pyarrow as pa

_CODE_RE = re.compile(r"Code:\s*(\d+)")
_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)")

#: ClickHouse errors that belong to the rows of an insert, not to the store: the same
#: rows fail the same way however often they are retried, other rows go in.
#: (Codes that can also mean a broken schema or a sick server, like TYPE_MISMATCH or
#: MEMORY_LIMIT_EXCEEDED, are deliberately absent: those are retried, never quarantined.)
DATA_ERROR_CODES: dict[int, str] = {
    6: "CANNOT_PARSE_TEXT",
    27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
    38: "CANNOT_PARSE_DATE",
    41: "CANNOT_PARSE_DATETIME",
    69: "ARGUMENT_OUT_OF_BOUND",
    70: "CANNOT_CONVERT_TYPE",
    72: "CANNOT_PARSE_NUMBER",
    117: "INCORRECT_DATA",
    128: "TOO_LARGE_ARRAY_SIZE",
    131: "TOO_LARGE_STRING_SIZE",
    190: "SIZES_OF_ARRAYS_DONT_MATCH",
    321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
    395: "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO",
    407: "DECIMAL_OVERFLOW",
    # a CONSTRAINT ... CHECK on the table: an operator's way to refuse rows
    469: "VIOLATED_CONSTRAINT",
}
#: code 252 (TOO_MANY_PARTS) is a data error only for this message: too many days in
#: one block. "Too many parts" (merges behind) is the server's trouble and passes.
_TOO_MANY_PARTITIONS = "Too many partitions for single INSERT block"
#: ClickHouse names the view in the message when the error happened in one: the
#: insert into the table itself had already been committed
_IN_VIEW = "while pushing to view"


class StoreError(RuntimeError):
    """The store refused or could not run a statement (message from ClickHouse).

    ``code`` and ``name`` are ClickHouse's error code and name when the message
    carries them (``Code: 407. ... (DECIMAL_OVERFLOW)``), else None.
    """

    def __init__(self, message: str = "", code: int | None = None,
                 name: str | None = None) -> None:
        super().__init__(message)
        text = str(message)
        if code is None and (m := _CODE_RE.search(text)):
            code = int(m.group(1))
        if name is None and code is not None:
            found = _NAME_RE.findall(text)
            name = found[-1] if found else None
        self.code = code
        self.name = name
        #: rows the table gained anyway, when a failed insert can tell (a view failed
        #: after the table took them); None: unknown
        self.written: int | None = None

    @property
    def is_data_error(self) -> bool:
        """True when the rows themselves cannot be inserted (retrying them cannot help)."""
        if self.code == 252:
            return _TOO_MANY_PARTITIONS in str(self)
        return self.code in DATA_ERROR_CODES

    @property
    def in_view(self) -> bool:
        """True when a materialized view failed after the table itself took the rows."""
        return _IN_VIEW in str(self)


class StoreUnavailable(StoreError):
    """The store cannot be reached right now: callers spool and retry."""


class StoreLocked(StoreUnavailable):
    """Another process (usually ``spanledger collector``) owns this embedded store."""


@dataclass(frozen=True, slots=True)
class Inserted:
    """What one insert did."""

    #: rows handed to the store
    rows: int
    #: rows the table really gained; fewer than ``rows`` when ClickHouse recognized a
    #: replayed dedup token (or part of one); None when the backend cannot tell
    written: int | None


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
        self, table: str, path: str | Path, dedup_token: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Inserted:
        """Insert the rows of the Arrow IPC stream file at ``path`` into ``table``.

        The file's rows form one insert, so a replay of the same file with the
        same ``dedup_token`` is recognized (and skipped) exactly like a repeated
        :meth:`insert_arrow`. Each backend reads the file its cheapest way.
        ``settings`` are added to the insert's own (dedup) settings.
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
