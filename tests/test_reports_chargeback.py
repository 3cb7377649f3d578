"""The chargeback arithmetic on plain Decimals: rounding, allocation, thresholds, projection."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from spanledger.reports import chargeback as cb
from spanledger.reports.period import Period

D = Decimal


def test_largest_remainder_hits_target_and_favours_largest_remainders() -> None:
    assert cb.largest_remainder([D("1.005"), D("2.004"), D("3.001")], D("6.01"), D("0.01")) == [
        D("1.01"), D("2.00"), D("3.00")]
    thirds = [D(1) / 3] * 3
    assert cb.largest_remainder(thirds, D("1.00"), D("0.01")) == [D("0.34"), D("0.33"), D("0.33")]


def test_round_for_display_rows_sum_to_shown_total() -> None:
    rows = [D("0.335"), D("0.335"), D("0.335")]
    shown, total = cb.round_for_display(rows)
    assert total == D("1.00") and sum(shown) == total
    negative = [D("-1.005"), D("2.3333"), D("-0.3333")]
    shown, total = cb.round_for_display(negative)
    assert sum(shown) == total == D("1.00")  # 0.995, half-even


def test_prorate_shared_sums_exactly_at_pico_dollars() -> None:
    parts = cb.prorate_shared([D(1), D(1), D(1)], D(100))
    assert parts is not None and sum(parts) == D(100)
    assert parts == [D("33.333333333334"), D("33.333333333333"), D("33.333333333333")]
    assert cb.prorate_shared([D(0), D(0)], D(100)) is None  # nothing to prorate by


def test_proportional_uses_input_plus_output_tokens() -> None:
    groups = [cb.GroupSpend(("a",), input_tokens=700, output_tokens=300),  # 1000
              cb.GroupSpend(("b",), input_tokens=1500, output_tokens=500)]  # 2000
    assert cb.proportional(groups, D("10.00")) == [D("3.33"), D("6.67")]
    assert cb.proportional([cb.GroupSpend(("a",))], D("10")) is None


@pytest.mark.parametrize(("used", "expected"), [
    (D("49.999999"), None), (D(50), D(50)), (D("79.99"), D(50)), (D(80), D(80)),
    (D(100), D(100)), (D("119.9999"), D(100)), (D(120), D(120)), (D(500), D(120)),
])
def test_thresholds_are_reached_at_greater_or_equal(used: Decimal,
                                                     expected: Decimal | None) -> None:
    assert cb.crossed(used, D(120)) == expected


def test_budget_status_and_projection() -> None:
    st = cb.budget_status(D(60), D(100), D(120), elapsed_days=10, period_days=30)
    assert st.threshold == D(50) and not st.hard_stop and st.state == ">= 50%"
    assert st.projected == D(180) and st.projected_percent == D(180)
    assert st.projected_threshold == D(120)
    st = cb.budget_status(D(120), D(100), D(120), elapsed_days=30, period_days=30)
    assert st.hard_stop and st.state == "HARD STOP (120%)" and st.projected == D(120)
    assert cb.project(D(5), 0, 30) == D(5)  # before the period starts: no extrapolation


def test_period_prorates_monthly_amounts_by_days() -> None:
    october = Period(dt.date(2026, 10, 1), dt.date(2026, 10, 31))
    assert october.prorate_monthly(D(310)) == D(310)
    assert Period(dt.date(2026, 10, 1), dt.date(2026, 10, 10)).prorate_monthly(D(310)) == D(100)
    span = Period(dt.date(2026, 10, 17), dt.date(2026, 11, 15))  # 15/31 of Oct + 15/30 of Nov
    assert span.prorate_monthly({(2026, 10): D(310), (2026, 11): D(600)}) == D(150) + D(300)
    assert october.elapsed_days(dt.date(2026, 10, 10)) == 10
    assert october.elapsed_days(dt.date(2026, 9, 30)) == 0
    assert october.elapsed_days(dt.date(2027, 1, 1)) == 31
