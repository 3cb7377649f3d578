"""``spanledger report traces``: agent runs by cost and amplification against the median run."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from support.reports import day, llm_span, load_store, october_spans, run_cli

D = Decimal


def test_top_traces_with_amplification(tmp_path: Path) -> None:
    url = load_store(tmp_path / "store", october_spans())
    code, out, err = run_cli(["report", "traces", "--url", url, "--period", "2026-10",
                              "--top", "3", "--format", "json"])
    assert code == 0, err
    doc = json.loads(out)
    assert doc["traces_in_period"] == 7  # r1 r2 c1 c2 c3 c4 u1; n1 is in November
    rows = doc["rows"]
    assert [r["trace_id"] for r in rows] == ["c2", "c1", "c3"]  # by cost, then calls, then id
    c2 = rows[0]
    # the aggregate invoke_agent span adds nothing: 5 calls, 10.00
    assert c2["calls"] == 5 and D(c2["cost"]) == D("10.00")
    # chat runs cost 2, 10, 2, 0 (c4 unpriced): median cost 2.00, median calls 1
    assert D(c2["cost_x"]) == D("5") and D(c2["calls_x"]) == D("5")
    assert c2["amplification"] == "x5.0 cost, x5.0 calls"
    assert c2["team"] == "support" and c2["feature"] == "chat" and c2["models"] == "gpt-4o"
    assert c2["duration_s"] == 1.0
    assert c2["start"] == "2026-10-03 08:00:00"


def test_feature_filter_and_median_within_feature(tmp_path: Path) -> None:
    url = load_store(tmp_path / "store", october_spans())
    code, out, _ = run_cli(["report", "traces", "--url", url, "--period", "2026-10",
                            "--feature", "rag", "--format", "json"])
    assert code == 0
    rows = json.loads(out)["rows"]
    assert [r["trace_id"] for r in rows] == ["r1", "r2"]
    # rag runs: r1 1.50 (2 calls), r2 0.30 (1 call); median 0.90 and 1.5 calls
    assert D(rows[0]["cost_x"]) == (D("1.50") / D("0.90")).quantize(D("1e-6"))
    assert D(rows[0]["calls_x"]) == (D(2) / D("1.5")).quantize(D("1e-6"))
    assert rows[0]["amplification"] == "x1.7 cost, x1.3 calls"
    code, out, _ = run_cli(["report", "traces", "--url", url, "--period", "2026-10",
                            "--feature", "(unattributed)", "--format", "json"])
    assert [r["trace_id"] for r in json.loads(out)["rows"]] == ["u1"]


def test_trace_split_over_batches_is_one_run(tmp_path: Path) -> None:
    """Spans of one trace written in separate inserts merge into one row (GROUP BY TraceId)."""
    from spanledger.store import open_store
    from support.reports import spans_table

    path = tmp_path / "store"
    store = open_store(f"chdb://{path}", migrate=True)
    try:
        for i in range(3):
            store.insert_arrow("otel_traces", spans_table([llm_span(
                trace="t", ts=day(7, 10 + i), team="ops", feature="agent", model=f"m{i}",
                input_tokens=10, output_tokens=1, cost="0.1")]))
    finally:
        store.close()
    code, out, _ = run_cli(["report", "traces", "--url", f"chdb://{path}", "--period",
                            "2026-10"])
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("t "))
    assert "m0,m1,m2" in line and " 3 " in line and "0.3000" in line
    assert "7200.1s" in line  # 10:00 to 12:00 plus the last call's 100 ms
