"""Report periods: a calendar month or an inclusive date range, in UTC days.

Finance closes books by calendar month, so ``--period 2026-11`` (and the
default, the current month) is the unit; ``--from/--to`` covers quarters or
a partial month. Monthly amounts (budgets, shared platform costs) are
prorated onto a period by the share of each month's days it covers, so a
full month gets exactly its monthly amount.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal

from spanledger.errors import UsageError
from spanledger.pricing.types import usd

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, slots=True)
class Period:
    """Days ``start`` .. ``end`` inclusive (UTC calendar days, as ``llm_cost_daily.Day``)."""

    start: dt.date
    end: dt.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def end_exclusive(self) -> dt.date:
        return self.end + dt.timedelta(days=1)

    @property
    def label(self) -> str:
        first, last = month_bounds(self.start.year, self.start.month)
        if self.start == first and self.end == last:
            return f"{self.start:%Y-%m}"
        return f"{self.start.isoformat()}..{self.end.isoformat()}"

    def to_dict(self) -> dict[str, str]:
        """The period as every report's JSON ``meta`` gives it."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat(),
                "label": self.label}

    def months(self) -> list[tuple[int, int, int]]:
        """(year, month, days of this period in that month) for every month it touches."""
        out: list[tuple[int, int, int]] = []
        day = self.start
        while day <= self.end:
            _, last = month_bounds(day.year, day.month)
            stop = min(last, self.end)
            out.append((day.year, day.month, (stop - day).days + 1))
            day = stop + dt.timedelta(days=1)
        return out

    def prorate_monthly(self, monthly: dict[tuple[int, int], Decimal] | Decimal) -> Decimal:
        """Sum of a monthly amount over this period, each month weighted by days covered.

        A partial month's share is kept at 1e-12 USD (the stored scale), so it
        can be split further and still add up exactly.

        ``monthly`` is one amount for every month, or a mapping (year, month) -> amount
        (months missing from the mapping contribute nothing).
        """
        total = Decimal(0)
        for year, month, covered in self.months():
            amount = monthly if isinstance(monthly, Decimal) else monthly.get((year, month))
            if amount is None:
                continue
            in_month = calendar.monthrange(year, month)[1]
            total += amount if covered == in_month else usd(amount * covered / in_month)
        return total

    def elapsed_days(self, today: dt.date) -> int:
        """Days of the period up to and including ``today`` (0 before it starts).

        Today counts as elapsed: spend already recorded today is in the numerator,
        so leaving it out of the denominator would inflate the run-rate.
        """
        if today < self.start:
            return 0
        return (min(today, self.end) - self.start).days + 1


def month_bounds(year: int, month: int) -> tuple[dt.date, dt.date]:
    return dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1])


def parse_date(text: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{flag}: expected a date YYYY-MM-DD, got {text!r}") from None


def parse_month(text: str, flag: str = "--period") -> Period:
    m = _MONTH.match(text or "")
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise UsageError(f"{flag}: expected a month YYYY-MM, got {text!r}")
    return Period(*month_bounds(int(m.group(1)), int(m.group(2))))


def current_month(today: dt.date | None = None) -> Period:
    today = today or utc_today()
    return Period(*month_bounds(today.year, today.month))


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def resolve_period(period: str | None, date_from: str | None, date_to: str | None,
                   today: dt.date | None = None) -> Period:
    """The period named by ``--period`` or ``--from/--to`` (default: the current month)."""
    if period and (date_from or date_to):
        raise UsageError("--period cannot be combined with --from/--to")
    if period:
        return parse_month(period)
    if date_from or date_to:
        if not (date_from and date_to):
            raise UsageError("--from and --to must be given together")
        start, end = parse_date(date_from, "--from"), parse_date(date_to, "--to")
        if end < start:
            raise UsageError(f"--to {end} is before --from {start}")
        return Period(start, end)
    return current_month(today)
