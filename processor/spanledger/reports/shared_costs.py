"""``--shared-costs FILE``: shared platform costs per month, from hand-edited YAML.

Loaded through :mod:`spanledger.yamlconf`, so a typo is reported as
``file:line: key: problem`` (exit 2). Amounts are monthly; a report period
gets each month's amount prorated by the days it covers. Example with every
key: ``collector-config/shared-costs.example.yaml``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from spanledger import yamlconf
from spanledger.reports.period import Period

_MONTH_KEY = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True, slots=True)
class SharedCosts:
    """Shared platform costs per month: item name -> USD."""

    file: str
    months: dict[tuple[int, int], dict[str, Decimal]]
    default: dict[str, Decimal]

    def for_period(self, period: Period) -> dict[str, Decimal]:
        """Each item's amount over ``period`` (months prorated by days covered)."""
        items = sorted({k for m in self.months.values() for k in m} | set(self.default))
        out: dict[str, Decimal] = {}
        for item in items:
            per_month: dict[tuple[int, int], Decimal] = {}
            for year, month, _ in period.months():
                table = self.months.get((year, month), self.default)
                if item in table:
                    per_month[(year, month)] = table[item]
            amount = period.prorate_monthly(per_month)
            if amount:
                out[item] = amount
        return out


def _items(node: yamlconf.Node) -> dict[str, Decimal]:
    if not node.is_mapping():
        raise node.error("expected a mapping of cost item -> monthly USD amount")
    out = {}
    for key, _ in node.items():
        value = node.get_decimal(key, required=True, minimum=Decimal(0))
        assert value is not None
        out[key] = value
    return out


def load_shared_costs(path: str | Path) -> SharedCosts:
    root = yamlconf.load(path)
    if not root.is_mapping():
        raise root.error("expected a mapping with 'months' and/or 'default'")
    root.check_keys({"months", "default", "currency"})
    currency = root.get_str("currency", "USD")
    if currency != "USD":
        raise root.error("only USD is supported", key="currency")
    if not (root.has("months") or root.has("default")):
        raise root.error("needs 'months' (YYYY-MM: {item: amount}) or 'default'")
    months: dict[tuple[int, int], dict[str, Decimal]] = {}
    if root.has("months"):
        months_node = root.child("months")
        if not months_node.is_mapping():
            raise months_node.error("expected a mapping YYYY-MM -> cost items")
        for key, child in months_node.items():
            if not _MONTH_KEY.match(key):
                raise months_node.error(f"expected a month YYYY-MM, got {key!r}", key=key)
            months[(int(key[:4]), int(key[5:]))] = _items(child)
    default = _items(root.child("default")) if root.has("default") else {}
    return SharedCosts(str(path), months, default)
