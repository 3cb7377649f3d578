"""``--revenue FILE``: what each customer pays, to set their AI cost against (YAML or CSV).

Finance keeps revenue per customer in a spreadsheet or the billing system; the
unit-economics report divides each customer's AI cost by it (AI cost as % of
revenue, gross margin after AI cost) and flags the customers at or above a
threshold. Amounts are monthly USD, prorated onto the report's period by the
days of each month it covers (a full month gets exactly its amount). An entry
with a ``month`` applies to that month only and wins over the customer's plain
entry, so a contract change or a one-off month can be written down as such.

YAML (read through :mod:`spanledger.yamlconf`, so a mistake is
``file:line: key: problem``, exit 2)::

    threshold_percent: 20           # flag AI cost >= 20 % of revenue (optional)
    customers:
      - {customer: acme-corp, monthly: 12000}
      - {customer: acme-corp, monthly: 15000, month: 2026-11}

CSV (a ``.csv`` file; header row, then one entry per line, errors ``file:line:
column: problem``)::

    customer,monthly,month
    acme-corp,12000,
    acme-corp,15000,2026-11

Examples: ``collector-config/revenue.example.yaml`` and ``revenue.example.csv``.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from spanledger import yamlconf
from spanledger.reports.chargeback import UNATTRIBUTED
from spanledger.reports.period import Period
from spanledger.yamlconf import ConfigError

#: AI cost at or above this share of a customer's revenue is flagged (percent)
DEFAULT_THRESHOLD_PERCENT = Decimal(20)
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
CSV_COLUMNS = ("customer", "monthly", "month")


@dataclass(frozen=True, slots=True)
class Revenue:
    """Monthly revenue per customer ("" = untagged), plus month-specific entries."""

    file: str
    threshold_percent: Decimal | None
    #: customer -> USD every month
    monthly: dict[str, Decimal]
    #: (customer, year, month) -> USD in that month only (wins over ``monthly``)
    months: dict[tuple[str, int, int], Decimal]

    @property
    def customers(self) -> set[str]:
        return set(self.monthly) | {c for c, _, _ in self.months}

    def for_period(self, customer: str, period: Period) -> Decimal | None:
        """The customer's revenue over ``period`` (None: the file does not name them)."""
        if customer not in self.customers:
            return None
        per_month: dict[tuple[int, int], Decimal] = {}
        for year, month, _ in period.months():
            amount = self.months.get((customer, year, month), self.monthly.get(customer))
            if amount is not None:
                per_month[(year, month)] = amount
        return period.prorate_monthly(per_month)


def load_revenue(path: str | Path) -> Revenue:
    """The revenue file at ``path``: CSV when it ends in ``.csv``, else YAML."""
    if str(path).lower().endswith(".csv"):
        return _load_csv(path)
    return _load_yaml(path)


class _Entries:
    """Collects entries, refusing a customer (and month) given twice."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.monthly: dict[str, Decimal] = {}
        self.months: dict[tuple[str, int, int], Decimal] = {}

    def add(self, customer: str, amount: Decimal, month: tuple[int, int] | None) -> str | None:
        """Add an entry; returns a problem to report, or None."""
        key = "" if customer == UNATTRIBUTED else customer
        if month is None:
            if key in self.monthly:
                return f"revenue for {customer} given twice"
            self.monthly[key] = amount
        else:
            if (key, *month) in self.months:
                return f"revenue for {customer} in {month[0]:04d}-{month[1]:02d} given twice"
            self.months[(key, *month)] = amount
        return None

    def revenue(self, threshold: Decimal | None) -> Revenue:
        return Revenue(self.file, threshold, self.monthly, self.months)


def _parse_month(text: str) -> tuple[int, int] | None:
    m = _MONTH.match(text.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        return None
    return int(m.group(1)), int(m.group(2))


def _load_yaml(path: str | Path) -> Revenue:
    root = yamlconf.load(path)
    if not root.is_mapping():
        raise root.error("expected a mapping with 'customers' (and 'threshold_percent')")
    root.check_keys({"threshold_percent", "customers"})
    threshold = root.get_decimal("threshold_percent", None, minimum=Decimal(0))
    entries = _Entries(str(path))
    for item in root.list("customers", required=True):
        if not item.is_mapping():
            raise item.error("expected a mapping with 'customer' and 'monthly'")
        item.check_keys({"customer", "monthly", "month", "note"})
        customer = item.get_str("customer", required=True)
        amount = item.get_decimal("monthly", required=True, minimum=Decimal(0))
        assert customer is not None and amount is not None
        month = None
        if item.has("month"):
            text = item.get_str("month", required=True) or ""
            month = _parse_month(text)
            if month is None:
                raise item.error(f"expected a month YYYY-MM, got {text!r}", key="month")
        problem = entries.add(customer, amount, month)
        if problem:
            raise item.error(problem, key="customer")
    return entries.revenue(threshold)


def _load_csv(path: str | Path) -> Revenue:
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # a spreadsheet's BOM is fine
    except FileNotFoundError:
        raise ConfigError(file, None, None, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(file, None, None, f"cannot read: {exc}") from None
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if "customer" not in header or "monthly" not in header:
        raise ConfigError(file, 1, None, "the header row must name the columns customer and "
                          f"monthly (and optionally month), got {','.join(header) or 'nothing'}")
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        raise ConfigError(file, 1, unknown[0],
                          f"unknown column (expected some of: {', '.join(CSV_COLUMNS)})")
    entries = _Entries(file)
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            raise ConfigError(file, line, None, f"{len(cells)} values for {len(header)} columns")
        row = dict(zip(header, (c.strip() for c in cells), strict=False))
        customer = row.get("customer", "")
        if not customer:
            raise ConfigError(file, line, "customer", "required value is missing")
        raw = row.get("monthly", "").replace("_", "").replace(",", "")
        try:
            amount = Decimal(raw)
        except InvalidOperation:
            raise ConfigError(file, line, "monthly",
                              f"expected a number, got {row.get('monthly', '')!r}") from None
        if not amount.is_finite() or amount < 0:
            raise ConfigError(file, line, "monthly", f"must be a number >= 0, got {raw!r}")
        month = None
        if row.get("month"):
            month = _parse_month(row["month"])
            if month is None:
                raise ConfigError(file, line, "month",
                                  f"expected a month YYYY-MM, got {row['month']!r}")
        problem = entries.add(customer, amount, month)
        if problem:
            raise ConfigError(file, line, "customer", problem)
    return entries.revenue(None)
