"""FinOps FOCUS export: the daily rollup as FOCUS 1.x cost and usage rows (CSV).

Finance tools that already ingest cloud bills in the FinOps Foundation's FOCUS
format (https://focus.finops.org) can take LLM spend the same way. One row per
day x team x feature x customer x cost centre x environment x service x
provider x model x status (``llm_cost_daily`` as it is; ``--by`` and the
chargeback models do not apply: this is what was consumed and what it cost).

- BilledCost = EffectiveCost = ListCost = ContractedCost = the actual priced cost
  (prices at call time, negotiated overrides included; no amortisation).
- ServiceCategory "AI and Machine Learning"; ConsumedUnit / PricingUnit
  "1000 Tokens", ConsumedQuantity = (input + output tokens) / 1000.
- ChargePeriodStart/End: the UTC day [start, end); BillingPeriod: the report period.
- Tags: JSON object of the attribution (team, feature, customer, cost_center,
  environment, service), empty values left out (untagged spend has no tag).
- Unpriced rows (model without a price) are kept, with the cost columns EMPTY and
  ``x_CostStatus`` = ``unpriced``: a blank is not a $0 and a loader that needs a
  number has to decide, instead of the export silently saying "free".
- x_Calls, x_InputTokens, x_OutputTokens, x_CacheReadTokens, x_CacheWriteTokens:
  spanledger extensions (FOCUS allows ``x_`` columns).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from spanledger.reports.period import Period
from spanledger.reports.queries import NO_TABLES, DetailRow, fetch_detail, missing_rollups
from spanledger.reports.tabular import Column, Report
from spanledger.store.base import Store

THOUSAND = Decimal(1000)
SERVICE_CATEGORY = "AI and Machine Learning"
UNIT = "1000 Tokens"

_MONEY = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
_TEXT = ("BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart",
         "ChargePeriodEnd", "ChargeCategory", "ChargeDescription", "ServiceCategory",
         "ServiceName", "ProviderName", "PublisherName", "InvoiceIssuerName", "ResourceId",
         "ResourceName", "SkuId", "ConsumedUnit", "PricingUnit", "Tags", "x_CostStatus")
_QTY = ("ConsumedQuantity", "PricingQuantity")
_INTS = ("x_Calls", "x_InputTokens", "x_OutputTokens", "x_CacheReadTokens", "x_CacheWriteTokens")


def _iso(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def focus_row(r: DetailRow, period: Period) -> dict[str, Any]:
    priced = r.status == "priced"
    tokens = Decimal(r.input_tokens + r.output_tokens)
    provider = r.provider or "unknown"
    tags = {k: v for k, v in r.attribution.items() if v}
    row: dict[str, Any] = {
        "BillingCurrency": "USD",
        "BillingPeriodStart": _iso(period.start), "BillingPeriodEnd": _iso(period.end_exclusive),
        "ChargePeriodStart": _iso(r.day), "ChargePeriodEnd": _iso(r.day + dt.timedelta(days=1)),
        "ChargeCategory": "Usage",
        "ChargeDescription": (f"{r.calls} {provider} {r.model} calls"
                              + ("" if priced else " (UNPRICED: no price for this model)")),
        "ServiceCategory": SERVICE_CATEGORY,
        "ServiceName": r.attribution.get("service") or provider,
        "ProviderName": provider, "PublisherName": provider, "InvoiceIssuerName": provider,
        "ResourceId": f"{provider}/{r.model}", "ResourceName": r.model,
        "SkuId": f"{provider}/{r.model}",
        "ConsumedUnit": UNIT, "PricingUnit": UNIT,
        "ConsumedQuantity": tokens / THOUSAND, "PricingQuantity": tokens / THOUSAND,
        "Tags": json.dumps(tags, sort_keys=True),
        "x_CostStatus": r.status,
        "x_Calls": r.calls, "x_InputTokens": r.input_tokens, "x_OutputTokens": r.output_tokens,
        "x_CacheReadTokens": r.cache_read_tokens, "x_CacheWriteTokens": r.cache_write_tokens,
    }
    for key in _MONEY:
        row[key] = r.cost if priced else None
    return row


def focus_report(rows: list[DetailRow], period: Period) -> Report:
    columns = ([Column(k, k, "money", total=True) for k in _MONEY]
               + [Column(k, k, "text") for k in _TEXT]
               + [Column(k, k, "ratio") for k in _QTY]
               + [Column(k, k, "int", total=True) for k in _INTS])
    meta = {"period": period.to_dict(), "format": "FOCUS 1.x"}
    return Report("focus", f"FOCUS export {period.label}", columns,
                  [focus_row(r, period) for r in rows], None, [], meta)


def build_focus_report(store: Store, period: Period, env: str | None = None) -> Report:
    if missing_rollups(store):
        report = focus_report([], period)
        report.notes.append(NO_TABLES)
        return report
    return focus_report(fetch_detail(store, period, env), period)
