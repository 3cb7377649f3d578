"""``report spend --format focus``: a FOCUS 1.3 file that passes the spec's column rules, with
tokens in ConsumedQuantity, attribution in Tags, ListCost before discounts and no empty BilledCost.

The rules are checked by ``support/focus_spec.py`` (its docstring says why the
``focus-validator`` package cannot run here); the checker's own tests below show
it catches what it must.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from support.focus_spec import check
from support.reconcile import DAYS, call_cost, calls_of_day, cloud_calls_of_day, spans
from support.reports import llm_span, load_store, october_spans, run_cli

D = Decimal


def focus(url: str, period: str) -> tuple[list[dict[str, str]], str, str]:
    code, out, err = run_cli(["report", "spend", "--url", url, "--period", period,
                              "--format", "focus"])
    assert code == 0, err
    return list(csv.DictReader(io.StringIO(out))), out, err


@pytest.fixture(scope="module")
def november(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, str]], str, str]:
    qdrant = llm_span(trace="q", ts=dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC), team="search",
                      model="qdrant", provider="", operation="", cost="0.00004")
    url = load_store(tmp_path_factory.mktemp("focus") / "store",
                     spans() + spans(cloud_calls_of_day()) + [qdrant])
    return focus(url, "2026-11")


def test_export_passes_the_focus_1_3_column_rules(november: tuple[list[dict[str, str]], str,
                                                                  str]) -> None:
    rows, text, _ = november
    assert check(text) == []
    assert len(rows) > 50
    assert text.splitlines()[0].endswith(",x_Calls,x_TokenType")


def test_tokens_are_the_consumed_quantity(november: tuple[list[dict[str, str]], str,
                                                          str]) -> None:
    rows, _, _ = november
    mini = [r for r in rows if r["ChargePeriodStart"] == "2026-11-01T00:00:00Z"
            and r["ResourceName"] == "gpt-4o-mini"]
    got = {r["x_TokenType"]: (r["ConsumedQuantity"], r["ConsumedUnit"], D(r["PricingQuantity"]),
                              r["PricingUnit"], r["SkuMeter"]) for r in mini}
    assert got == {
        "input": ("9760", "Tokens", D("9.76"), "1000 Tokens", "Input Tokens"),
        "cache_read": ("10240", "Tokens", D("10.24"), "1000 Tokens", "Cached Input Tokens"),
        "output": ("3000", "Tokens", D(3), "1000 Tokens", "Output Tokens")}
    qdrant = next(r for r in rows if r["ResourceName"] == "qdrant")
    assert (qdrant["ConsumedQuantity"], qdrant["ConsumedUnit"]) == ("1", "Requests")


def test_attribution_is_in_tags(november: tuple[list[dict[str, str]], str, str]) -> None:
    rows, _, _ = november
    sonnet = next(r for r in rows if r["ResourceId"] == "anthropic/claude-sonnet-4-5")
    assert json.loads(sonnet["Tags"]) == {"team": "search", "feature": "f",
                                          "service": "search-api", "environment": "prod"}
    assert (sonnet["ServiceProviderName"], sonnet["ServiceName"], sonnet["HostProviderName"]) == (
        "Anthropic", "Claude API", "Anthropic")
    bedrock = next(r for r in rows if r["ServiceName"] == "Amazon Bedrock")
    assert (bedrock["ServiceProviderName"], bedrock["InvoiceIssuerName"]) == ("AWS", "AWS")


def test_list_cost_is_before_the_negotiated_discount(november: tuple[list[dict[str, str]], str,
                                                                     str]) -> None:
    rows, _, _ = november
    gpt4o = [r for r in rows if r["ResourceName"] == "gpt-4o"]
    assert {r["x_TokenType"] for r in gpt4o} == {"input", "output"}
    for r in gpt4o:  # the prices file gives 12% off: billed = list x 0.88, exactly
        assert D(r["BilledCost"]) == D(r["ListCost"]) * D("0.88")
        assert r["BilledCost"] == r["EffectiveCost"] == r["ContractedCost"]
    mini = [r for r in rows if r["ResourceName"] == "gpt-4o-mini"]
    assert all(r["ListCost"] == r["BilledCost"] for r in mini)  # list price, no discount


def test_no_empty_billed_cost_and_unpriced_calls_counted(november: tuple[list[dict[str, str]],
                                                                         str, str]) -> None:
    rows, _, err = november
    assert all(r["BilledCost"] != "" for r in rows)
    assert not any(r["ResourceName"] == "acme-intent-ft-v2" for r in rows)
    # 3 days x 20 calls x (300 + 5) tokens of the fine-tune nobody priced
    assert "note: 60 unpriced calls (18,300 tokens) are not in the export" in err
    expected = D("0.00004")
    for day in DAYS:
        for c in [*calls_of_day(), *cloud_calls_of_day()]:
            parts = call_cost(c, day)
            expected += sum(parts, D(0)) * c.n if parts else 0
    assert sum(D(r["BilledCost"]) for r in rows) == expected  # every priced call, once


def test_october_export(tmp_path: Path) -> None:
    rows, text, err = focus(load_store(tmp_path / "store", october_spans()), "2026-10")
    assert check(text) == []
    assert {r["ServiceCategory"] for r in rows} == {"AI and Machine Learning"}
    assert sum(D(r["BilledCost"]) for r in rows) == D("16.00")
    c2 = [r for r in rows if r["ChargePeriodStart"] == "2026-10-03T00:00:00Z"]
    assert {r["ChargePeriodEnd"] for r in c2} == {"2026-10-04T00:00:00Z"}
    assert json.loads(c2[0]["Tags"]) == {"team": "support", "feature": "chat",
                                         "environment": "prod", "service": "svc"}
    assert sum(int(r["ConsumedQuantity"]) for r in c2) == 12_500
    assert {r["x_Calls"] for r in c2} == {"5"}
    assert c2[0]["BillingPeriodStart"] == "2026-10-01T00:00:00Z"
    assert c2[0]["BillingPeriodEnd"] == "2026-11-01T00:00:00Z"
    assert "1 unpriced calls (770 tokens) are not in the export" in err
    code, _, err = run_cli(["report", "spend", "--url", "chdb://x", "--format", "focus",
                            "--model", "cost-plus"])
    assert code == 2 and "--model do not apply" in err


GOOD = (
    "BilledCost,BillingAccountId,BillingAccountName,BillingCurrency,BillingPeriodEnd,"
    "BillingPeriodStart,ChargeCategory,ChargeClass,ChargeDescription,ChargePeriodEnd,"
    "ChargePeriodStart,ContractedCost,EffectiveCost,HostProviderName,InvoiceIssuerName,ListCost,"
    "PricingQuantity,PricingUnit,ProviderName,PublisherName,ServiceCategory,ServiceName,"
    "ServiceProviderName,Tags,x_Calls\n"
    "1.5,a,A,USD,2026-12-01T00:00:00Z,2026-11-01T00:00:00Z,Usage,,d,2026-11-02T00:00:00Z,"
    "2026-11-01T00:00:00Z,1.5,1.5,P,P,2,1.5,1000 Tokens,P,P,AI and Machine Learning,S,P,"
    "\"{\"\"team\"\": \"\"a\"\"}\",3\n")


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda t: t.replace("\n1.5,a", "\n,a"), "line 2: BilledCost: must not be null"),
    (lambda t: t.replace(",Usage,", ",usage,"), "line 2: ChargeCategory: 'usage' is not an"),
    (lambda t: t.replace("2026-11-02T00:00:00Z", "2026-11-02 00:00"),
     "line 2: ChargePeriodEnd: '2026-11-02 00:00' is not a DateTimeFormat UTC time"),
    (lambda t: t.replace(",x_Calls\n", ",Team\n"), "line 1: Team: not a FOCUS column"),
    (lambda t: t.replace(",USD,", ",usd,"), "BillingCurrency: 'usd' is not an ISO 4217"),
    (lambda t: t.replace(",1.5,1000 Tokens", ",1.5e+2,1000 Tokens"),
     "PricingQuantity: '1.5e+2' is not a NumericFormat decimal"),
    (lambda t: t.replace('"{""team"": ""a""}"', '"[1, 2]"'),
     "line 2: Tags: not a KeyValueFormat JSON object"),
    (lambda t: t.replace(",1.5,1000 Tokens", ",,1000 Tokens"),
     "PricingQuantity: must not be null for Usage / Purchase charges"),
    (lambda t: t.replace("HostProviderName,", "").replace(",P,P,2,", ",P,2,"),
     "line 1: HostProviderName: a Mandatory column is missing"),
])
def test_the_checker_catches_violations(edit: object, problem: str) -> None:
    assert check(GOOD) == []
    problems = check(edit(GOOD))  # type: ignore[operator]
    assert any(p.startswith(problem) or problem in p for p in problems), problems
