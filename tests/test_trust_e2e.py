"""Issue 14's table against a running ``spanledger collector``, over OTLP/gRPC and OTLP/HTTP.

A victim's honest calls and a hostile service's attempts (forged costs, absurd counts,
a hidden call, a retry into a later segment, dates outside the window) share one
collector, as they would in production behind one shared bearer token. After SIGTERM
the store must hold the victim's calls at the collector's own price, nothing else on
the victim's team, and every attempt visible: quarantine, counters, flags.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from pathlib import Path

import requests
from genai_prices import Usage, calc_price

from support.collector import read_store_many, start_collector
from support.trust_calls import MODEL, call, ids, request

Q = Decimal("1e-12")


def _price(input_tokens: int, output_tokens: int) -> Decimal:
    """Straight from genai-prices, not through spanledger's catalog."""
    price = calc_price(Usage(input_tokens=input_tokens, output_tokens=output_tokens),
                       model_ref=MODEL, provider_id="openai",
                       genai_request_timestamp=dt.datetime.now(dt.UTC))
    return Decimal(price.total_price).quantize(Q)


def test_a_hostile_service_cannot_move_the_victims_numbers(tmp_path: Path) -> None:
    store = tmp_path / "store"
    honest = [call("victim", input_tokens=1000 + i, output_tokens=100) for i in range(4)]
    forged = [call("victim", extra={"spanledger.cost.status": "priced",
                                    "gen_ai.usage.cost": cost}) for cost in (-1000.0, 1e9,
                                                                            math.nan, 1e26)]
    counts = [call("victim", input_tokens=2**63 - 1), call("victim", input_tokens=-5)]
    hidden = call("hostile", extra={"spanledger.cost.status": "aggregate"})
    inflated = call("victim", extra={"spanledger.cost.status": "priced",
                                     "gen_ai.usage.cost": 0.5})  # within bounds: re-priced
    future = call("victim", at=dt.datetime.now(dt.UTC) + dt.timedelta(days=3))
    retried = request([call("hostile", input_tokens=10 + i) for i in range(3)], "hostile-svc")
    collector = start_collector(store)
    try:
        stub = collector.stub()
        stub.Export(request(honest, "victim-svc"), timeout=10)
        proto = {"Content-Type": "application/x-protobuf"}
        hostile = request([*forged, *counts, hidden, inflated, future], "hostile-svc")
        r = requests.post(collector.http_url, data=hostile.SerializeToString(), headers=proto,
                          timeout=10)
        assert r.status_code == 200, r.text
        stub.Export(retried, timeout=10)
        collector.wait_metric("spans_written_total", len(honest) + 6)
        # the same request again, acknowledged into a later segment: stored once
        r = requests.post(collector.http_url, data=retried.SerializeToString(), headers=proto,
                          timeout=10)
        assert r.status_code == 200, r.text
        assert collector.wait_metric("spans_retried_total", 3) == 3
        metrics = {name: collector.metric(name) for name in (
            "spans_verified_total", "cost_reported_disagreements_total")}
        _, text = collector.get("metrics")
    finally:
        assert collector.stop() == 0, "".join(collector.output)

    victim, hostile_rows, aside, invalid = read_store_many(store, [
        "SELECT sum(Calls), toString(sumIf(Cost, Status = 'priced')), "
        "sum(InputTokens), sum(Disagreements) FROM llm_cost_daily WHERE Team = 'victim'",
        "SELECT count(), uniqExact(TraceId, SpanId), countIf(ClaimRejected = 'aggregate') "
        "FROM llm_calls WHERE Team = 'hostile'",
        "SELECT TraceId, SpanId, Reason FROM spanledger_quarantine",
        "SELECT InvalidReason, count() FROM llm_calls WHERE Status = 'invalid' "
        "GROUP BY InvalidReason",
    ])
    want = sum((_price(1000 + i, 100) for i in range(4)), Decimal(0)) + _price(1000, 100)
    # the honest four and the inflated one, each at the collector's price
    ((calls, cost, input_tokens, disagreements),) = victim
    assert (calls, Decimal(cost), input_tokens, disagreements) == (5, want, 5006, 1)
    assert hostile_rows == [(4, 4, 1)]  # the hidden call counted, the retried three once
    reasons = {(t, s): reason for t, s, reason in aside}
    assert set(reasons) == ids(forged) | ids(counts)
    assert sorted(reasons.values()) == ["cost_out_of_bounds"] * 4 + ["usage_out_of_bounds"] * 2
    assert invalid == [("future", 1)]
    assert metrics == {"spans_verified_total": 2, "cost_reported_disagreements_total": 1}
    assert 'spanledger_collector_claims_rejected_total{claim="aggregate"} 1' in text
    assert 'spanledger_collector_spans_quarantined_total{reason="cost_out_of_bounds"} 4' in text
