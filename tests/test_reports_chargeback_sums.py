"""The sums finance relies on, for any numbers: an invoice split per line adds up to the
invoice to the cent, hybrid charges add up to the cost, GPU shares add up to the pool."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from spanledger.reports import chargeback as cb
from spanledger.reports.gpu_costs import GpuCosts, Pool, allocate_gpu
from spanledger.reports.period import Period
from spanledger.reports.queries import ModelUsageRow

D = Decimal
money = st.decimals(min_value=D("-5"), max_value=D("5000"), places=6, allow_nan=False,
                    allow_infinity=False)
volume = st.integers(min_value=0, max_value=10**9)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["gpt-4o", "gpt-4o-mini", "claude", "gemini", "o3"]),
                       st.tuples(money, st.lists(volume, min_size=3, max_size=3)), min_size=1))
def test_invoice_split_per_line_sums_to_the_invoice_to_the_cent(
        lines: dict[str, tuple[Decimal, list[int]]]) -> None:
    invoice = cb.InvoiceLines({("openai", m): amount for m, (amount, _) in lines.items()})
    volumes = {("openai", m): v for m, (_, v) in lines.items()}
    charges, splits = cb.proportional_by_line(volumes, invoice, 4, placeholder=3)
    assert sum(charges, D(0)) == invoice.total.quantize(D("0.01"))
    assert all(c == c.quantize(D("0.01")) for c in charges)
    for s in splits:
        assert sum(s.parts, D(0)) == s.amount
        weights = volumes[s.key]
        assert all(p == 0 for p, w in zip(s.parts, weights, strict=False) if not w) or (
            s.unallocated)  # nobody is charged for a model they did not use


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["prod", "staging", "dev", ""]),
                       st.decimals(min_value=D(0), max_value=D(10**6), places=12,
                                   allow_nan=False, allow_infinity=False)),
       st.decimals(min_value=D(0), max_value=D(1), places=4, allow_nan=False))
def test_hybrid_shown_plus_charged_is_the_cost(costs: dict[str, Decimal], markup: Decimal) -> None:
    rules = {"prod": ("cost-plus", markup), "staging": ("showback", D(0))}
    h = cb.hybrid(costs, lambda env: rules.get(env, ("chargeback", D(0))))
    assert h.shown + h.charged == sum(costs.values(), D(0))
    assert h.charge == h.charged + h.markup and h.markup >= 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), volume,
                          st.integers(min_value=0, max_value=10**12)), max_size=12),
       st.sampled_from(["tokens", "span_seconds"]),
       st.decimals(min_value=D("0.01"), max_value=D(50), places=2, allow_nan=False))
def test_gpu_shares_sum_to_the_pool_cost(usage: list[tuple[str, int, int]], by: str,
                                         hourly: Decimal) -> None:
    pool = Pool("p", "L40S", 3, hourly, None, None, ("llama-*",),
                "tokens" if by == "tokens" else "span_seconds")
    costs = GpuCosts("gpu.yaml", (pool,))
    rows = [ModelUsageRow((team,), "llama-3", 1, tokens, ns) for team, tokens, ns in usage]
    period = Period(dt.date(2026, 2, 3), dt.date(2026, 3, 9))  # two partial months
    shares = allocate_gpu(costs, rows, period, 1)
    assert sum((s.cost for s in shares), D(0)) == pool.cost(period)
    assert pool.cost(period) == hourly * 3 * 24 * (26 + 9)
