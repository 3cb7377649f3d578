"""Python values in and out of ClickHouse, the same for every backend.

Reports compare money to the pico-dollar and times across backends, so both
the embedded engine and the HTTP client must hand back the same Python types:
``Decimal`` for Decimal columns, timezone-aware UTC ``datetime`` for DateTime
columns, ``dict`` for Map columns. Query parameters use ClickHouse's own
``{name:Type}`` placeholders; this module renders Python values into the text
form ClickHouse parses for them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pyarrow as pa

UTC = dt.UTC


def _timestamp_to_us(typ: pa.DataType) -> pa.DataType:
    """The same type with every timestamp at microsecond precision (Python's limit)."""
    if pa.types.is_timestamp(typ):
        return pa.timestamp("us", tz=typ.tz or "UTC")
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        inner = _timestamp_to_us(typ.value_type)
        return pa.list_(inner) if inner != typ.value_type else typ
    return typ


def arrow_rows(table: pa.Table) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and row tuples of an Arrow result, with normalized Python types.

    Nanosecond timestamps become ``datetime`` (truncated to microseconds) rather
    than pandas ``Timestamp`` so callers get the standard library type.
    """
    columns: list[list[Any]] = []
    for column in table.columns:
        target = _timestamp_to_us(column.type)
        if target != column.type:
            column = column.cast(target, safe=False)
        values = column.to_pylist(maps_as_pydicts="lossy")
        columns.append([normalize(v) for v in values] if _needs_normalize(column.type) else values)
    return list(table.column_names), list(zip(*columns, strict=True)) if columns else []


def _needs_normalize(typ: pa.DataType) -> bool:
    return pa.types.is_timestamp(typ) or pa.types.is_list(typ) or pa.types.is_large_list(typ)


def normalize(value: Any) -> Any:
    """A result value in the canonical form (aware datetimes in UTC, lists of same)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, tuple):
        return tuple(normalize(v) for v in value)
    return value


def param_text(value: Any) -> str:
    """``value`` as the text ClickHouse parses for a ``{name:Type}`` parameter."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + ",".join(_literal(v) for v in value) + "]"
    if value is None:
        return "\\N"
    raise TypeError(f"cannot pass {type(value).__name__} as a ClickHouse query parameter")


def _literal(value: Any) -> str:
    """An element inside an Array parameter: strings and times quoted."""
    if isinstance(value, str | dt.date):
        text = param_text(value)
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return param_text(value)


def params_text(params: dict[str, Any] | None) -> dict[str, str] | None:
    if not params:
        return None
    return {name: param_text(value) for name, value in params.items()}
