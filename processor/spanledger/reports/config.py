"""The two hand-edited YAML files of the reports: budgets and shared platform costs.

Both go through :mod:`spanledger.yamlconf`, so a typo is reported as
``file:line: key: problem`` (exit 2) and never as a silently missing budget.
Examples with every key: ``collector-config/budgets.example.yaml`` and
``collector-config/shared-costs.example.yaml``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from spanledger import yamlconf
from spanledger.reports.chargeback import DEFAULT_HARD_STOP, UNATTRIBUTED
from spanledger.reports.period import Period
from spanledger.reports.queries import DIMENSIONS

_MONTH_KEY = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True, slots=True)
class Budget:
    monthly: Decimal
    hard_stop_percent: Decimal


@dataclass(frozen=True, slots=True)
class Budgets:
    """Monthly budgets keyed by a tuple of group values in the order of ``by``."""

    file: str
    by: tuple[str, ...]
    entries: dict[tuple[str, ...], Budget]


def _parse_by(node: yamlconf.Node) -> tuple[str, ...]:
    child = node.child("by")
    if child.is_mapping():
        raise node.error("expected a list of dimensions or 'team,feature'", key="by")
    try:
        names = node.get_str_list("by")
    except yamlconf.ConfigError:
        names = [n.strip() for n in (node.get_str("by", required=True) or "").split(",")]
    if not names:
        raise node.error("must name at least one dimension", key="by")
    for name in names:
        if name not in DIMENSIONS:
            raise node.error(f"unknown dimension {name!r} (expected some of: "
                             f"{', '.join(DIMENSIONS)})", key="by")
    if len(set(names)) != len(names):
        raise node.error("dimension repeated", key="by")
    return tuple(names)


def load_budgets(path: str | Path, dims: tuple[str, ...] | None = None) -> Budgets:
    """Budgets for the report's ``--by`` dimensions; a file keyed otherwise is an error.

    ``dims`` None: take the file's own ``by`` (the HTML report's budget chart).
    """
    root = yamlconf.load(path)
    if not root.is_mapping():
        raise root.error("expected a mapping with 'by' and 'budgets'")
    root.check_keys({"by", "hard_stop_percent", "budgets"})
    by = _parse_by(root)
    dims = by if dims is None else dims
    if set(by) != set(dims):
        raise root.error(f"budgets are keyed by {','.join(by)} but the report is "
                         f"--by {','.join(dims)}; run with --by {','.join(by)}", key="by")
    default_stop = root.get_decimal("hard_stop_percent", DEFAULT_HARD_STOP,
                                    minimum=Decimal("0.000001"))
    assert default_stop is not None
    entries: dict[tuple[str, ...], Budget] = {}
    items = root.list("budgets", required=True)
    for item in items:
        if not item.is_mapping():
            raise item.error("expected a mapping with the group keys and 'monthly'")
        item.check_keys({*by, "monthly", "hard_stop_percent"})
        values = {}
        for d in by:
            value = item.get_str(d, required=True)
            assert value is not None
            values[d] = "" if value == UNATTRIBUTED else value
        key = tuple(values[d] for d in dims)
        monthly = item.get_decimal("monthly", required=True, minimum=Decimal(0))
        assert monthly is not None
        if monthly == 0:
            raise item.error("must be > 0", key="monthly")
        stop = item.get_decimal("hard_stop_percent", default_stop, minimum=Decimal("0.000001"))
        assert stop is not None
        if key in entries:
            raise item.error(f"duplicate budget for {'/'.join(key)}")
        entries[key] = Budget(monthly, stop)
    return Budgets(str(path), dims, entries)


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
