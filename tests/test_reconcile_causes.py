"""Each cause of a difference between bill and spans, alone: found, explained, and nothing else.

Every case writes its spans into a real embedded store and its bill with the same
export writer the demo uses (``spanledger.demo.provider_bills``), then reconciles.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from spanledger import semconv
from spanledger.demo.provider_bills import Terms, Usage, write_exports
from spanledger.reconcile.compare import Row
from spanledger.reconcile.report import ReconcileOptions, Result, reconcile
from support.reconcile import Call, call_cost, spans
from support.reports import llm_span, store_with

D = Decimal
DAY = dt.date(2026, 11, 2)
NO_TERMS = Terms({}, {})


def _run(tmp_path: Path, span_rows: list[dict[str, object]], usages: list[Usage],
         terms: Terms = NO_TERMS, prices: str | None = None, usage_export: bool = True) -> Result:
    files = write_exports(tmp_path / "bill", usages, terms)
    if not usage_export:
        files = [f for f in files if "usage" not in f.name]
    with store_with(tmp_path / "store", span_rows) as store:  # type: ignore[arg-type]
        return reconcile(store, ReconcileOptions(tuple(map(str, files)), prices=prices))


def _row(res: Result, token_type: str, model: str | None = None) -> Row:
    rows = [r for r in res.rows if r.token_type == token_type
            and (model is None or r.model == model)]
    assert len(rows) == 1, [(r.model, r.token_type) for r in res.rows]
    return rows[0]


def _mini(n: int = 10, **kw: int) -> Call:
    args = {"input": 976, "output": 300, "cache_read": 1024, **kw}
    return Call("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", n, **args)


def _usage(c: Call, **kw: object) -> Usage:
    fields: dict[str, object] = {"input": c.n * c.input, "cache_read": c.n * c.cache_read,
                                 "cache_write": c.n * c.cache_write, "output": c.n * c.output,
                                 "requests": c.n, **kw}
    return Usage(DAY, c.provider, c.billed_as, **fields)  # type: ignore[arg-type]


def test_everything_metered_ties_out_with_no_reason(tmp_path: Path) -> None:
    c = _mini()
    res = _run(tmp_path, spans([c], (DAY,)), [_usage(c)])
    assert [r.reason for r in res.rows] == ["", "", ""]
    assert res.billed == res.metered and res.exit_code == 0


def test_batch_tier_is_half_price(tmp_path: Path) -> None:
    c = _mini(cache_read=0)
    res = _run(tmp_path, spans([c], (DAY,)), [_usage(c, tier="batch")])
    for token_type in ("input", "output"):
        r = _row(res, token_type)
        assert r.reason == "batch tier: billed at x0.5 the standard price"
        assert r.variance == -r.metered.cost / 2 and r.unexplained == 0


def test_cache_tokens_the_spans_did_not_split_out(tmp_path: Path) -> None:
    """An instrumentation that reports no cached count: input on the spans, cache on the bill."""
    metered = _mini(input=2000, cache_read=0)
    billed = _mini()  # the same calls: 1,024 of the 2,000 input tokens were cache reads
    res = _run(tmp_path, spans([metered], (DAY,)), [_usage(billed)])
    inp, cached = _row(res, "input"), _row(res, "cache_read")
    assert inp.token_variance == -10_240 and cached.token_variance == 10_240
    assert inp.reason == ("cache tokens: the bill counts -10,240 uncached input tokens against "
                          "the spans, offset by the other input types")
    assert cached.reason.startswith("cache tokens: the bill counts +10,240 cache-read tokens")
    assert inp.unexplained == cached.unexplained == 0 and res.exit_code == 0


def test_reasoning_tokens_missing_from_the_spans_output(tmp_path: Path) -> None:
    c = _mini(cache_read=0)
    rows = spans([c], (DAY,))
    for row in rows:  # an instrumentation that reports reasoning beside, not inside, output
        row["SpanAttributes"]["gen_ai.usage.reasoning.output_tokens"] = "200"  # type: ignore[index]
    res = _run(tmp_path, rows, [_usage(c, output=c.n * (c.output + 200))])
    out = _row(res, "output")
    assert out.reason == ("reasoning tokens: 2,000 reasoning tokens the spans did not count as "
                          "output")
    assert out.variance == 2000 * D("0.6") / 1_000_000 and out.unexplained == 0


def test_price_change_in_the_prices_file_history(tmp_path: Path) -> None:
    """Spans priced by a service with a stale prices file; the bill has the new price."""
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n"
                      "  - {provider: openai, model: gpt-4o, input: 2.00, output: 8.00,"
                      " effective_from: 2026-01-01}\n"
                      "  - {provider: openai, model: gpt-4o, input: 1.80, output: 7.20,"
                      " effective_from: 2026-11-02}\n")
    c = Call("openai", "gpt-4o", "gpt-4o-2024-08-06", 5, 3000, 400)
    rows = [llm_span(trace=f"t{i}", ts=dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC),
                     model="gpt-4o", input_tokens=3000, output_tokens=400, cost="0.0092",
                     parts=("0.006", "0.0032", "0", "0")) for i in range(5)]
    terms = Terms({}, {"gpt-4o-2024-08-06": {"input": D("1.80"), "output": D("7.20")}})
    res = _run(tmp_path, rows, [_usage(c)], terms, prices=str(prices))
    inp = _row(res, "input")
    assert inp.reason == ("price change: billed at 1.8/Mtok (the prices file price from "
                          "2026-11-02), metered at 2/Mtok")
    assert inp.variance == D("-0.003") and inp.unexplained == 0
    assert _row(res, "output").reason.startswith("price change: billed at 7.2/Mtok")


def test_discount_in_the_prices_file_the_bill_does_not_give(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  - {provider: openai, model: gpt-4o, discount_percent: 12}\n")
    c = Call("openai", "gpt-4o", "gpt-4o-2024-08-06", 5, 3000, 400, discount=D(12))
    res = _run(tmp_path, spans([c], (DAY,)), [_usage(c)], prices=str(prices))
    for token_type in ("input", "output"):
        r = _row(res, token_type)
        assert r.reason == ("billed 13.6% above the metered price: the overrides' discount "
                            "(12%) is not on the bill")
        assert r.unexplained == 0


def test_self_hosted_model_is_not_on_the_provider_bill(tmp_path: Path) -> None:
    c = _mini(cache_read=0)
    llama = [llm_span(trace="l", ts=dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC),
                      model="acme-llama-3.1-70b", input_tokens=8000, output_tokens=700,
                      cost="0.00376")]
    llama[0]["SpanAttributes"]["spanledger.price.source"] = "override:demo-prices.yaml"
    res = _run(tmp_path, spans([c], (DAY,)) + llama, [_usage(c)], usage_export=False)
    r = _row(res, "input", "acme-llama-3.1-70b")
    assert r.bill.amount == 0 and r.metered.cost == D("0.00376")
    assert r.reason == ("not on the openai bill: priced from the prices file only "
                        "(self-hosted, or billed elsewhere)")
    assert r.unexplained == 0


def test_metered_tokens_the_bill_lacks_are_unexplained(tmp_path: Path) -> None:
    c = _mini(cache_read=0)
    res = _run(tmp_path, spans([c], (DAY,)), [_usage(c, output=c.n * c.output - 1000)])
    out = _row(res, "output")
    assert out.reason == "1,000 metered tokens are not on the bill; (unexplained)"
    assert out.unexplained == -1000 * D("0.6") / 1_000_000


def test_usage_only_export_compares_tokens(tmp_path: Path) -> None:
    c = _mini()
    files = write_exports(tmp_path / "bill", [_usage(c, input=c.n * c.input + 500)], NO_TERMS)
    usage = [f for f in files if "usage" in f.name]
    with store_with(tmp_path / "store", spans([c], (DAY,))) as store:  # type: ignore[arg-type]
        res = reconcile(store, ReconcileOptions(tuple(map(str, usage))))
    inp = _row(res, "input")
    assert inp.bill.amount is None and inp.variance is None
    assert inp.token_variance == 500 and inp.reason.startswith("not metered: 500 tokens")
    assert res.billed == 0 and res.exit_code == 0


def test_call_cost_matches_catalog_list_price() -> None:
    parts = call_cost(_mini(), DAY)
    assert parts is not None
    assert sum(parts, D(0)) == (976 * D("0.15") + 1024 * D("0.075") + 300 * D("0.6")) / 10**6


def test_spans_whose_input_excludes_the_cache_are_read_as_the_pricing_normalized_them(
        tmp_path: Path) -> None:
    """An instrumentation that reports input WITHOUT the cache (openlit's anthropic spans,
    bedrock converse): 800 beside 1,500 cache reads. Its convention says so, and the
    processor writes the normalized usage (input with the cache) beside it; reconcile reads
    that, so the bill's 800 uncached tokens tie out (no "cache > input" guess anywhere)."""
    c = _mini(n=1, input=800, cache_read=1500)
    parts = call_cost(c, DAY)
    assert parts is not None
    row = llm_span(trace="legacy", ts=dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC),
                   model="gpt-4o-mini", input_tokens=800, output_tokens=300,
                   cache_read_tokens=1500, cost=str(sum(parts)),
                   parts=tuple(str(p) for p in parts))
    row["SpanAttributes"].update({
        semconv.USAGE_INPUT: "2300", semconv.USAGE_OUTPUT: "300",
        semconv.USAGE_CACHE_READ: "1500", semconv.USAGE_CACHE_WRITE: "0"})
    res = _run(tmp_path, [row], [_usage(c)])
    assert {r.token_type: (r.metered.all_tokens, r.reason) for r in res.rows} == {
        "input": (800, ""), "cache_read": (1500, ""), "output": (300, "")}


def test_one_hour_cache_writes_and_per_request_tool_charges(tmp_path: Path) -> None:
    """Anthropic bills 1h cache writes at 2x input (spans carry the 5m price, 1.25x) and web
    search per request (no span prices it)."""
    c = Call("anthropic", "claude-haiku-4-5", "claude-haiku-4-5-20251001", 1, 800, 300,
             cache_write=1500)
    def result(token_type: str, cents: str, model: str | None = c.billed_as,
               cost_type: str = "tokens") -> str:
        t = "null" if token_type == "" else f'"{token_type}"'
        m = "null" if model is None else f'"{model}"'
        return (f'{{"currency": "USD", "amount": "{cents}", "cost_type": "{cost_type}", '
                f'"model": {m}, "service_tier": "standard", "token_type": {t}}}')
    bill = tmp_path / "cost.json"
    bill.write_text('{"data": [{"starting_at": "2026-11-02T00:00:00Z", "results": [\n'
                    + ",\n".join([result("uncached_input_tokens", "0.08"),
                                  result("output_tokens", "0.15"),
                                  result("cache_creation.ephemeral_1h_input_tokens", "0.3"),
                                  result("", "1.00", None, "web_search")]) + "]}]}")
    with store_with(tmp_path / "store", spans([c], (DAY,))) as store:  # type: ignore[arg-type]
        res = reconcile(store, ReconcileOptions((str(bill),)))
    write = _row(res, "cache_write")
    assert write.metered.cost == 1500 * D("1.25") / 1_000_000
    assert write.reason == ("1h cache writes: billed at x1.6 the 5-minute cache-write price the "
                            "spans were priced at")
    assert write.unexplained == 0
    tool = _row(res, "requests")
    assert tool.bill.amount == D("0.01") and tool.reason == (
        "web_search: billed per request (server-side tools); spans carry no price for them")
    assert res.exit_code == 0 and res.unexplained == 0
