"""The one shape every report takes before it is rendered: typed columns, rows, a total.

Builders (spend, traces) fill it with exact values; :mod:`formats` and
:mod:`html` only render it, so a number is computed once and shown the same
way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

#: "number": a count that may have decimals (outcome values), shown and exported exactly
Kind = Literal["text", "int", "money", "percent", "ratio", "seconds", "number"]
#: how an unknown (``na_when``) cell reads in a table or the HTML report
UNPRICED = "unpriced"


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    header: str
    kind: Kind = "text"
    #: summed into the TOTAL row (money and counts); False for rates and labels
    total: bool = False
    #: money made of earlier columns, e.g. charge = (+1, "cost"), (+1, "shared_cost"):
    #: displayed as the sum of their displayed values, so rows add up across as well as down
    parts: tuple[tuple[int, str], ...] = ()
    #: a row key that, when true, makes this cell unknown rather than zero: shown as
    #: ``unpriced`` (table, HTML), empty (CSV), null (JSON); e.g. the cost of a group whose
    #: calls all lack a price is not $0.00
    na_when: str = ""


@dataclass(slots=True)
class Report:
    name: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    #: values of the TOTAL row (None: the report has no total row)
    total: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    #: machine-readable context (period, model, parameters) for JSON output
    meta: dict[str, Any] = field(default_factory=dict)

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if c.key == key)
