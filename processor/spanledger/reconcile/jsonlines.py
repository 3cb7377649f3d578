"""JSON that remembers where each object started, so a bad export is reported as ``file:line``.

``json.loads`` forgets positions; a finance user told "KeyError: 'amount'" about a
4 MB cost export cannot find the row. Here every JSON object comes back as a
:class:`Located` dict that knows its line, numbers come back as
:class:`~decimal.Decimal` (``0.1`` stays exactly 0.1; a bill is money), and
:class:`ExportError` says ``file:line: path: problem`` (exit code 2).
"""

from __future__ import annotations

import bisect
import json
import json.decoder
import json.scanner
from decimal import Decimal
from typing import Any

from spanledger.errors import UsageError


class ExportError(UsageError):
    """A provider export that cannot be read: ``file:line: where: problem``."""

    def __init__(self, file: str, line: int | None, where: str | None, problem: str) -> None:
        self.file, self.line, self.where, self.problem = file, line, where, problem
        at = f"{file}:{line}" if line else file
        super().__init__(f"{at}: {where}: {problem}" if where else f"{at}: {problem}")


class Located(dict[str, Any]):
    """A JSON object and the line (1-based) its ``{`` is on."""

    line: int = 0


def _line_finder(text: str) -> Any:
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def line_of(index: int) -> int:
        return bisect.bisect_right(starts, index)

    return line_of


def loads(text: str, file: str) -> Any:
    """Parse ``text``; objects are :class:`Located`, numbers Decimal (ints stay int)."""
    line_of = _line_finder(text)

    def parse_object(s_and_end: tuple[str, int], *args: Any, **kwargs: Any) -> tuple[Any, int]:
        start = s_and_end[1] - 1
        obj, end = json.decoder.JSONObject(s_and_end, *args, **kwargs)
        located = Located(obj)
        located.line = line_of(start)
        return located, end

    decoder = json.JSONDecoder(parse_float=Decimal)
    decoder.parse_object = parse_object  # type: ignore[attr-defined]
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # the C scanner ignores the hook
    try:
        return decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise ExportError(file, exc.lineno, None, f"invalid JSON: {exc.msg}") from None

