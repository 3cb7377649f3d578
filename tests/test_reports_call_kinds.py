"""LLM calls, tool calls and vector-database calls counted apart in every report, and a
group none of whose calls has a price reading "unpriced", never $0.00.

Rows go in at otel_traces and reach the reports through the real views: a team with
priced LLM calls, a priced vector search and a duplicate span; a team whose only calls are
a model nobody has a price for and a tool without a per-call price.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest

from spanledger import semconv as sc
from spanledger.reports.html import fetch_html_data, render_html
from spanledger.reports.period import parse_month
from spanledger.store import open_store
from support.reports import llm_span, load_store, run_cli

T = dt.datetime(2026, 10, 5, 12, tzinfo=dt.UTC)


def _spans() -> list[dict[str, Any]]:
    chat = llm_span(trace="a" * 32, ts=T, team="search", input_tokens=1000, output_tokens=100,
                    cost="0.002")
    dup = llm_span(trace="a" * 32, ts=T, team="search", input_tokens=1000, output_tokens=100,
                   status="duplicate")
    dup["SpanAttributes"][sc.DUPLICATE_OF] = chat["SpanId"]
    vector = llm_span(trace="a" * 32, ts=T, team="search", cost="0.00002", model="",
                      operation="retrieval")
    vector["SpanAttributes"].update({"db.system.name": "qdrant", "gen_ai.request.model": "",
                                     "gen_ai.response.model": ""})
    unknown = llm_span(trace="b" * 32, ts=T, team="labs", model="acme-7b", input_tokens=500,
                       output_tokens=50, status="unpriced")
    tool = llm_span(trace="b" * 32, ts=T, team="labs", model="", operation="execute_tool",
                    status="no_usage")
    tool["SpanAttributes"].update({"gen_ai.tool.name": "lookup", "gen_ai.request.model": "",
                                   "gen_ai.response.model": ""})
    for s in (vector, tool):
        for k in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"):
            s["SpanAttributes"].pop(k)
    return [chat, dup, vector, unknown, tool]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return load_store(tmp_path_factory.mktemp("kinds") / "store", _spans())


def report(url: str, *args: str) -> str:
    code, out, err = run_cli(["report", *args, "--url", url, "--period", "2026-10"])
    assert code == 0, err
    return out


def test_spend_counts_kinds_apart_and_never_shows_zero_for_unpriced(url: str) -> None:
    doc = json.loads(report(url, "spend", "--format", "json"))
    rows = {r["team"]: r for r in doc["rows"]}
    assert (rows["search"]["calls"], rows["search"]["tool_calls"],
            rows["search"]["vector_calls"]) == (1, 0, 1)  # the duplicate is no call
    assert rows["search"]["cost"] == "0.002020000000"
    assert (rows["labs"]["calls"], rows["labs"]["tool_calls"],
            rows["labs"]["unpriced_calls"]) == (1, 1, 1)
    assert rows["labs"]["cost"] is None and rows["labs"]["charge"] is None  # unknown, not 0
    assert doc["total"]["cost"] == "0.002020000000"
    assert any("1 duplicate spans" in n for n in doc["notes"])
    table = report(url, "spend")
    labs = next(line for line in table.splitlines() if line.startswith("labs"))
    assert "unpriced" in labs and "0.00" not in labs
    assert next(line for line in table.splitlines() if line.startswith("TOTAL")).split()[1:4] \
        == ["2", "1", "1"]  # LLM, tool, vector-DB calls
    lines = list(csv.DictReader(io.StringIO(report(url, "spend", "--format", "csv"))))
    assert {r["team"]: r["cost"] for r in lines} == {"search": "0.002020000000", "labs": ""}


def test_traces_count_kinds_apart(url: str) -> None:
    doc = json.loads(report(url, "traces", "--format", "json"))
    runs = {r["trace_id"]: r for r in doc["rows"]}
    assert (runs["a" * 32]["calls"], runs["a" * 32]["vector_calls"]) == (1, 1)
    assert (runs["b" * 32]["calls"], runs["b" * 32]["tool_calls"]) == (1, 1)
    assert runs["b" * 32]["cost"] is None  # nothing priced in that run
    assert any("duplicate" in n for n in doc["notes"])


def test_html_cards_count_kinds_apart(url: str, tmp_path: Path) -> None:
    store = open_store(url)
    try:
        data = fetch_html_data(store, parse_month("2026-10", "period"),
                               today=dt.date(2026, 10, 31))
    finally:
        store.close()
    html = render_html(data)
    for label, value in (("LLM calls", "2"), ("tool calls", "1"), ("vector-DB calls", "1"),
                         ("duplicate spans (counted once)", "1")):
        assert f'">{value}</div><div class="k">{label}</div>' in html, label
    assert "unpriced</td>" in html  # the labs row of the showback table


def test_a_wholly_unpriced_feature_bar_reads_unpriced() -> None:
    from decimal import Decimal

    from spanledger.reports.html_charts import feature_chart
    from spanledger.reports.queries import SpendRow

    def row(feature: str, status: str, cost: str) -> SpendRow:
        return SpendRow(("t", feature), "openai", "m", status, 3, 0, 100, 10, 0, 0, 0,
                        Decimal(cost))

    svg = feature_chart([row("paid", "priced", "1.50"), row("odd", "unpriced", "0")])
    assert ">$1.50<" in svg and svg.count(">unpriced<") == 1  # (the axis still starts at $0)
