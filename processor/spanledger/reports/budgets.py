"""``--budgets FILE``: monthly budgets per report group, from hand-edited YAML.

Loaded through :mod:`spanledger.yamlconf`, so a typo is reported as
``file:line: key: problem`` (exit 2) and never as a silently missing budget.
A budgets file is keyed by the dimensions it names in ``by``; a report grouped
otherwise is refused rather than matched by accident. Example with every key:
``collector-config/budgets.example.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from spanledger import yamlconf
from spanledger.reports.chargeback import DEFAULT_HARD_STOP, UNATTRIBUTED
from spanledger.reports.queries import DIMENSIONS


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


def parse_by(node: yamlconf.Node) -> tuple[str, ...]:
    """The file's ``by``: a list of dimensions or ``team,feature``."""
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


def keyed_by(root: yamlconf.Node, dims: tuple[str, ...] | None,
             what: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The file's ``by`` and the report's dimensions; a file keyed otherwise is an error."""
    by = parse_by(root)
    dims = by if dims is None else dims
    if set(by) != set(dims):
        raise root.error(f"{what} are keyed by {','.join(by)} but the report is "
                         f"--by {','.join(dims)}; run with --by {','.join(by)}", key="by")
    return by, dims


def monthly_entries(root: yamlconf.Node, list_key: str, by: tuple[str, ...],
                    dims: tuple[str, ...], extra: set[str], noun: str
                    ) -> list[tuple[tuple[str, ...], Decimal, yamlconf.Node]]:
    """Items of ``list_key``: (group key in the order of ``dims``, monthly USD > 0, item).

    Each item names every dimension of ``by`` (``(unattributed)`` for untagged
    spend) and ``monthly``; a group named twice is an error.
    """
    out: list[tuple[tuple[str, ...], Decimal, yamlconf.Node]] = []
    seen: set[tuple[str, ...]] = set()
    for item in root.list(list_key, required=True):
        if not item.is_mapping():
            raise item.error("expected a mapping with the group keys and 'monthly'")
        item.check_keys({*by, "monthly", *extra})
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
        if key in seen:
            raise item.error(f"duplicate {noun} for {'/'.join(key)}")
        seen.add(key)
        out.append((key, monthly, item))
    return out


def load_budgets(path: str | Path, dims: tuple[str, ...] | None = None) -> Budgets:
    """Budgets for the report's ``--by`` dimensions; a file keyed otherwise is an error.

    ``dims`` None: take the file's own ``by`` (the HTML report's budget chart).
    """
    root = yamlconf.load(path)
    if not root.is_mapping():
        raise root.error("expected a mapping with 'by' and 'budgets'")
    root.check_keys({"by", "hard_stop_percent", "budgets"})
    by, dims = keyed_by(root, dims, "budgets")
    default_stop = root.get_decimal("hard_stop_percent", DEFAULT_HARD_STOP,
                                    minimum=Decimal("0.000001"))
    assert default_stop is not None
    entries: dict[tuple[str, ...], Budget] = {}
    for key, monthly, item in monthly_entries(root, "budgets", by, dims, {"hard_stop_percent"},
                                                 "budget"):
        stop = item.get_decimal("hard_stop_percent", default_stop, minimum=Decimal("0.000001"))
        assert stop is not None
        entries[key] = Budget(monthly, stop)
    return Budgets(str(path), dims, entries)
