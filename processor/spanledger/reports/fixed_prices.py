"""``--model fixed --fixed-prices FILE``: a fixed monthly price per team or use case, from YAML.

Some teams want to know their AI bill before the month starts. They pay a fixed
monthly price; what it cost is shown beside it, and the difference is the
platform's margin (positive: the platform earned, negative: it absorbed the
overrun). Keyed like a budgets file (``by`` names the dimensions); loaded through
:mod:`spanledger.yamlconf`, so a mistake is ``file:line: key: problem`` (exit 2).
Example with every key: ``collector-config/fixed-prices.example.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal

from spanledger import yamlconf
from spanledger.reports.budgets import keyed_by, monthly_entries

Unlisted = Literal["actual", "zero"]


@dataclass(frozen=True, slots=True)
class FixedPrices:
    """Fixed monthly USD prices keyed by group values in the order of the report's ``--by``."""

    file: str
    by: tuple[str, ...]
    monthly: dict[tuple[str, ...], Decimal]
    #: groups without a fixed price: charged their actual cost, or nothing
    unlisted: Unlisted = "actual"


def load_fixed_prices(path: str | Path, dims: tuple[str, ...] | None = None) -> FixedPrices:
    root = yamlconf.load(path)
    if not root.is_mapping():
        raise root.error("expected a mapping with 'by' and 'prices'")
    root.check_keys({"by", "prices", "unlisted", "currency"})
    if root.get_str("currency", "USD") != "USD":
        raise root.error("only USD is supported", key="currency")
    by, dims = keyed_by(root, dims, "fixed prices")
    unlisted = root.get_str("unlisted", "actual")
    if unlisted not in ("actual", "zero"):
        raise root.error(f"expected actual or zero, got {unlisted!r}", key="unlisted")
    entries = monthly_entries(root, "prices", by, dims, set(), "fixed price")
    return FixedPrices(str(path), dims, {key: monthly for key, monthly, _ in entries},
                       "actual" if unlisted == "actual" else "zero")
