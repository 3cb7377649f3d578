"""Render a :class:`~spanledger.reports.tabular.Report` as table, CSV or JSON.

- table: for people. Money is shown in dollars and cents; each money column
  is rounded with the largest-remainder method so the rows shown add up to
  the TOTAL shown under them (never off by a cent).
- csv: for spreadsheets and scripts. Full precision (money to 1e-12 USD as
  stored), one header row of column keys, no TOTAL row (so summing a column
  does not count everything twice).
- json: for programs. Money and percentages are strings holding exact
  decimals (``"12.345000000000"``) so no JSON parser turns them into floats;
  counts are integers. ``total`` and ``notes`` sit beside ``rows``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from spanledger.reports.chargeback import CENT, round_for_display
from spanledger.reports.tabular import UNPRICED, Column, Report

FORMATS = ("table", "csv", "json")
MONEY_EXACT = Decimal("1e-12")
PERCENT_EXACT = Decimal("1e-6")


def render(report: Report, fmt: str) -> str:
    if fmt == "table":
        return render_table(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "json":
        return render_json(report)
    raise ValueError(f"unknown format {fmt!r}")


# -- exact values (csv/json) -----------------------------------------------------------

def exact(value: Any, col: Column) -> Any:
    if value is None:
        return None
    if col.kind == "money":
        return f"{Decimal(value).quantize(MONEY_EXACT):f}"
    if col.kind in ("percent", "ratio"):
        return f"{Decimal(value).quantize(PERCENT_EXACT):f}"
    if col.kind == "seconds":
        return round(float(value), 3)
    if col.kind == "number":
        return _plain(Decimal(value))
    return value


def _value(row: dict[str, Any], col: Column) -> Any:
    """The cell's value; None when the row marks it unknown (``Column.na_when``)."""
    if col.na_when and row.get(col.na_when):
        return None
    return row.get(col.key)


def _plain(value: Decimal) -> str:
    """``2`` for 2.000000000, ``2.5`` for 2.500000000: the number without trailing zeros."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def render_csv(report: Report) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([c.key for c in report.columns])
    for row in report.rows:
        w.writerow(["" if (v := exact(_value(row, c), c)) is None else v
                    for c in report.columns])
    return buf.getvalue()


def render_json(report: Report) -> str:
    def conv(d: dict[str, Any]) -> dict[str, Any]:
        return {c.key: exact(_value(d, c), c) for c in report.columns if c.key in d}

    doc = {
        "report": report.name,
        "title": report.title,
        **report.meta,
        "columns": [{"key": c.key, "header": c.header, "kind": c.kind} for c in report.columns],
        "rows": [conv(r) for r in report.rows],
        "total": conv(report.total) if report.total is not None else None,
        "notes": report.notes,
    }
    return json.dumps(doc, indent=2, default=str) + "\n"


# -- display values (table, html) ----------------------------------------------------------

def fmt_money(value: Decimal) -> str:
    """Thousands separators, and the decimals the value was rounded to (2 or 4)."""
    exponent = value.as_tuple().exponent
    places = max(2, -exponent) if isinstance(exponent, int) else 2
    return f"{value:,.{places}f}"


def display_quantum(report: Report) -> Decimal:
    """Cents, unless every amount is below $100: then 4 decimals, so a pilot's
    $0.0042 calls do not all show as 0.00."""
    values = [abs(Decimal(r[c.key])) for r in [*report.rows, report.total or {}]
              for c in report.columns if c.kind == "money" and r.get(c.key) is not None]
    return CENT if values and max(values) >= 100 else Decimal("0.0001")


def display_rows(report: Report) -> tuple[list[dict[str, str]], dict[str, str] | None]:
    """Rows and TOTAL as display strings; money columns reconciled to the displayed total."""
    quantum = display_quantum(report)
    rounded: dict[str, list[Decimal | None]] = {}
    totals: dict[str, Decimal] = {}
    for col in report.columns:
        if col.kind != "money":
            continue
        idx = [i for i, r in enumerate(report.rows) if r.get(col.key) is not None]
        values = [Decimal(report.rows[i][col.key]) for i in idx]
        if col.parts and all(k in rounded for _, k in col.parts):
            # shown as the sum of the columns it is made of, so a row adds up across too
            def combine(vals: list[Decimal | None]) -> Decimal:
                return sum((sign * (Decimal(0) if v is None else v) for sign, v in vals),
                           Decimal(0)).quantize(quantum)
            rounded[col.key] = [
                combine([(s, rounded[k][i]) for s, k in col.parts])
                if report.rows[i].get(col.key) is not None else None
                for i in range(len(report.rows))]
            totals[col.key] = combine([(s, totals[k]) for s, k in col.parts])
            continue
        if col.total and report.total is not None:
            shown, total = round_for_display(values, quantum)
        else:  # nothing to add up to: plain rounding
            shown, total = [v.quantize(quantum) for v in values], Decimal(0)
        col_vals: list[Decimal | None] = [None] * len(report.rows)
        for i, v in zip(idx, shown, strict=True):
            col_vals[i] = v
        rounded[col.key] = col_vals
        totals[col.key] = total
    rows = []
    for i, row in enumerate(report.rows):
        rows.append({c.key: UNPRICED if c.na_when and row.get(c.na_when) else
                     _show(rounded[c.key][i] if c.kind == "money" else row.get(c.key), c)
                     for c in report.columns})
    total_row = None
    if report.total is not None:
        total_row = {}
        for c in report.columns:
            v = report.total.get(c.key)
            if c.kind == "money" and c.total:
                v = totals[c.key]
            elif c.kind == "money" and v is not None:  # a rate (cost per ...): rounded alike
                v = Decimal(v).quantize(quantum)
            total_row[c.key] = (UNPRICED if c.na_when and report.total.get(c.na_when)
                                else _show(v, c))
    return rows, total_row


def _show(value: Any, col: Column) -> str:
    if value is None:
        return "-"
    if col.kind == "money":
        return fmt_money(Decimal(value))
    if col.kind == "int":
        return f"{int(value):,}"
    if col.kind == "percent":
        return f"{Decimal(value):.1f}%"
    if col.kind == "ratio":
        return f"x{Decimal(value):.1f}"
    if col.kind == "seconds":
        return f"{float(value):.1f}s"
    if col.kind == "number":
        whole, _, frac = _plain(Decimal(value)).partition(".")
        return f"{int(whole):,}" + (f".{frac}" if frac else "")
    return str(value)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *,
               right: Sequence[bool] | None = None, total: Sequence[str] | None = None,
               rule: bool = False) -> list[str]:
    """Plain-text table lines: every column as wide as its widest cell, two spaces apart.

    The one text layout of the command line (reports and ``prices``), so every
    table a user reads lines up the same way. ``right`` right-aligns a column
    (numbers); ``rule`` draws dashes under the headers and above ``total``.
    """
    every = [headers, *rows, *([total] if total is not None else [])]
    widths = [max(len(r[i]) for r in every) for i in range(len(headers))]
    flush_right = right if right is not None else [False] * len(headers)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w)
                         for c, w, r in zip(cells, widths, flush_right, strict=True)).rstrip()

    sep = ["  ".join("-" * w for w in widths)] if rule else []
    out = [line(headers), *sep, *(line(r) for r in rows)]
    if total is not None:
        out += [*sep, line(total)]
    return out


def render_table(report: Report) -> str:
    rows, total = display_rows(report)
    body = [[r[c.key] for c in report.columns] for r in rows]
    tail = [total[c.key] if total[c.key] != "-" else "" for c in report.columns] if total else None
    table = text_table([c.header for c in report.columns], body,
                       right=[c.kind != "text" for c in report.columns], total=tail, rule=True)
    if not report.rows:
        table.insert(2, "(no data in this period)")
    out = [report.title, "", *table]
    out += [f"note: {n}" for n in report.notes]
    return "\n".join(out) + "\n"
