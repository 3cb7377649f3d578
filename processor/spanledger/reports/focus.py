"""FinOps FOCUS 1.3 export: the priced calls as FOCUS cost and usage rows (CSV).

Finance tools that already ingest cloud bills in the FinOps Foundation's FOCUS
format (https://focus.finops.org) take LLM spend the same way. One row per UTC
day x attribution x calling service x provider x model x token type: the token
types are billed at different prices, so each is its own charge with one unit
price, the way the providers' own FOCUS exports list input and output tokens.
``--by`` and the chargeback models do not apply: this is what was consumed and
what it cost.

Columns, FOCUS 1.3 (every Mandatory column, and the Conditional and Recommended
ones that apply to token usage):

- Costs: BilledCost = EffectiveCost = ContractedCost = the calls' actual cost (prices
  at call time, negotiated overrides included; nothing amortised). ListCost is
  the same calls re-priced, one call at a time, at the catalog's public price
  before any discount; a model only the prices file knows (self-hosted, a
  fine-tune) has no public price, so its ListCost is its cost.
- Usage: ConsumedQuantity = tokens, ConsumedUnit ``Tokens``; PricingQuantity =
  tokens / 1000, PricingUnit ``1000 Tokens``. Calls priced per request (vector
  database, tools) count ``Requests``.
- Who: ServiceProviderName / HostProviderName / InvoiceIssuerName / PublisherName
  (and the deprecated ProviderName) name the provider; ServiceName its AI service
  (``OpenAI API``, ``Amazon Bedrock``, ...); ServiceCategory ``AI and Machine
  Learning``, ServiceSubcategory ``Generative AI``.
- InvoiceId (Recommended): the period's chargeback statement, a provisional invoice
  (``spanledger-20261101-20261201``): the provider's invoice is not known when spans are
  metered (``spanledger reconcile`` compares the two).
- Attribution: Tags, a JSON object (team, feature, customer, cost_center,
  environment, service); empty values are left out, no attribution is null.
- Unpriced calls are left out (FOCUS has no null BilledCost, and $0 would say
  "free"): their count and tokens are in the report's note, which the command
  line prints on stderr.
- x_Calls, x_TokenType: spanledger extensions (FOCUS allows ``x_`` columns).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from spanledger.pricing.types import Cost, TokenUsage
from spanledger.reports.model_keys import provider_key
from spanledger.reports.period import Period
from spanledger.reports.queries import (
    NO_TABLES,
    FocusUsageRow,
    fetch_focus_usage,
    fetch_unpriced,
    missing_rollups,
)
from spanledger.reports.tabular import Column, Report
from spanledger.store.base import Store

FOCUS_VERSION = "1.3"
THOUSAND = Decimal(1000)
ZERO = Decimal(0)
SERVICE_CATEGORY = "AI and Machine Learning"
CONSUMED_UNIT = "Tokens"
PRICING_UNIT = "1000 Tokens"
REQUESTS = "Requests"

#: provider (genai-prices id, see model_keys.provider_key) -> (service provider, its AI
#: service, host provider); any other provider names itself
PROVIDERS: dict[str, tuple[str, str, str]] = {
    "openai": ("OpenAI", "OpenAI API", "OpenAI"),
    "anthropic": ("Anthropic", "Claude API", "Anthropic"),
    "aws": ("AWS", "Amazon Bedrock", "AWS"),
    "azure": ("Microsoft", "Azure OpenAI", "Microsoft"),
    "google": ("Google Cloud", "Vertex AI", "Google Cloud"),
    "mistral": ("Mistral AI", "Mistral AI API", "Mistral AI"),
    "cohere": ("Cohere", "Cohere API", "Cohere"),
    "groq": ("Groq", "GroqCloud", "Groq"),
    "deepseek": ("DeepSeek", "DeepSeek API", "DeepSeek"),
    "x-ai": ("xAI", "xAI API", "xAI"),
}

#: token type -> SkuMeter, in row order
METERS = {"input": "Input Tokens", "cache_read": "Cached Input Tokens",
          "cache_write": "Cache Write Tokens", "output": "Output Tokens",
          "requests": "Requests"}

_MONEY = ("BilledCost", "ContractedCost", "EffectiveCost", "ListCost")
_TEXT = ("BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
         "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription",
         "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart", "ConsumedUnit",
         "HostProviderName", "InvoiceId", "InvoiceIssuerName", "PricingCategory", "PricingUnit",
         "ProviderName", "PublisherName", "ResourceId", "ResourceName", "ResourceType",
         "ServiceCategory", "ServiceName", "ServiceProviderName", "ServiceSubcategory", "SkuId",
         "SkuMeter", "Tags")
_QUANTITY = ("ConsumedQuantity", "PricingQuantity")
_EXTENSIONS = ("x_Calls", "x_TokenType")

#: (provider, model, one call's usage, day) -> the call's cost at the public list price
ListPriceFn = Callable[[str, str, TokenUsage, dt.date], Cost | None]


def columns() -> list[Column]:
    """FOCUS columns in alphabetical order, then the ``x_`` extensions (as FOCUS asks)."""
    kinds: dict[str, Column] = {}
    for k in _MONEY:
        kinds[k] = Column(k, k, "money", total=True)
    for k in _TEXT:
        kinds[k] = Column(k, k, "text")
    kinds["ConsumedQuantity"] = Column("ConsumedQuantity", "ConsumedQuantity", "int", total=True)
    kinds["PricingQuantity"] = Column("PricingQuantity", "PricingQuantity", "ratio")
    ordered = [kinds[k] for k in sorted(kinds)]
    return [*ordered, Column("x_Calls", "x_Calls", "int", total=True),
            Column("x_TokenType", "x_TokenType", "text")]


def _iso(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


@dataclass(slots=True)
class _Charge:
    """One FOCUS row while calls are summed into it."""

    tokens: int = 0
    calls: int = 0
    cost: Decimal = ZERO
    list_cost: Decimal = ZERO


@dataclass(slots=True)
class FocusRows:
    charges: dict[tuple[Any, ...], _Charge] = field(default_factory=dict)

    def add(self, key: tuple[Any, ...], tokens: int, calls: int, cost: Decimal,
            list_cost: Decimal) -> None:
        c = self.charges.setdefault(key, _Charge())
        c.tokens += tokens
        c.calls += calls
        c.cost += cost
        c.list_cost += list_cost


def _parts(r: FocusUsageRow) -> dict[str, tuple[int, Decimal]]:
    """Tokens and cost per token type of one call of ``r`` (uncached input: no cache).

    Cache counts above the input mean the input was reported without them (the
    legacy convention the pricing repairs the same way): all of it is uncached.
    """
    cached = r.cache_read_tokens + r.cache_write_tokens
    uncached = r.input_tokens if cached > r.input_tokens else r.input_tokens - cached
    return {"input": (uncached, r.cost_input), "cache_read": (r.cache_read_tokens,
                                                              r.cost_cache_read),
            "cache_write": (r.cache_write_tokens, r.cost_cache_write),
            "output": (r.output_tokens, r.cost_output)}


def collect(rows: Sequence[FocusUsageRow], list_price: ListPriceFn) -> FocusRows:
    """Usage groups -> one charge per day x attribution x provider x model x token type."""
    out = FocusRows()
    for r in rows:
        base = (r.day, tuple(sorted(r.attribution.items())), r.provider, r.model)
        parts = _parts(r)
        if not any(tokens for tokens, _ in parts.values()):  # priced per request
            cost = r.cost_input + r.cost_output + r.cost_cache_read + r.cost_cache_write
            out.add((*base, "requests"), r.calls, r.calls, cost, cost)
            continue
        usage = TokenUsage(r.input_tokens, r.output_tokens, r.cache_read_tokens,
                           r.cache_write_tokens)
        public = list_price(r.provider, r.model, usage, r.day)
        listed = {"input": public.input, "cache_read": public.cache_read,
                  "cache_write": public.cache_write, "output": public.output} if public else {}
        for token_type, (tokens, cost) in parts.items():
            if not tokens and not cost:
                continue
            list_cost = listed[token_type] * r.calls if public else cost
            out.add((*base, token_type), tokens * r.calls, r.calls, cost, list_cost)
    return out


def focus_row(key: tuple[Any, ...], c: _Charge, period: Period) -> dict[str, Any]:
    day, attribution, provider, model, token_type = key
    tags = {k: v for k, v in attribution if v}
    who = PROVIDERS.get(provider_key(provider)) if provider else None
    if who is None:
        name = provider or model or "unknown"
        who = (name, name, name)
    service_provider, service, host = who
    requests = token_type == "requests"
    unit = REQUESTS if requests else CONSUMED_UNIT
    return {
        "BilledCost": c.cost, "ContractedCost": c.cost, "EffectiveCost": c.cost,
        "ListCost": c.list_cost,
        "BillingAccountId": provider or model, "BillingAccountName": service_provider,
        "BillingCurrency": "USD",
        "BillingPeriodStart": _iso(period.start), "BillingPeriodEnd": _iso(period.end_exclusive),
        "ChargePeriodStart": _iso(day), "ChargePeriodEnd": _iso(day + dt.timedelta(days=1)),
        "ChargeCategory": "Usage", "ChargeClass": None, "ChargeFrequency": "Usage-Based",
        "ChargeDescription": f"{c.tokens:,} {METERS[token_type].lower()} of {model} "
                             f"({c.calls:,} calls)" if not requests
                             else f"{c.calls:,} {model} requests",
        "ConsumedQuantity": c.tokens, "ConsumedUnit": unit,
        "PricingQuantity": Decimal(c.tokens) if requests else Decimal(c.tokens) / THOUSAND,
        "PricingUnit": REQUESTS if requests else PRICING_UNIT, "PricingCategory": "Standard",
        "ServiceProviderName": service_provider, "HostProviderName": host,
        "InvoiceId": f"spanledger-{period.start:%Y%m%d}-{period.end_exclusive:%Y%m%d}",
        "InvoiceIssuerName": service_provider, "ProviderName": service_provider,
        "PublisherName": service_provider, "ServiceName": service,
        "ServiceCategory": SERVICE_CATEGORY,
        "ServiceSubcategory": "Other (AI and Machine Learning)" if requests else "Generative AI",
        "ResourceId": f"{provider}/{model}" if provider else model, "ResourceName": model,
        "ResourceType": "Model" if not requests else "Tool or database",
        "SkuId": f"{provider}/{model}" if provider else model, "SkuMeter": METERS[token_type],
        "Tags": json.dumps(tags, sort_keys=True) if tags else None,
        "x_Calls": c.calls, "x_TokenType": token_type,
    }


def focus_report(rows: Sequence[FocusUsageRow], period: Period, list_price: ListPriceFn,
                 unpriced: tuple[int, int] = (0, 0)) -> Report:
    charges = collect(rows, list_price)
    order = {t: i for i, t in enumerate(METERS)}
    keys = sorted(charges.charges, key=lambda k: (*k[:4], order[k[4]]))
    notes = []
    calls, tokens = unpriced
    if calls:
        notes.append(f"{calls:,} unpriced calls ({tokens:,} tokens) are not in the export: FOCUS "
                     "needs a BilledCost and they have no price (never $0); price them in the "
                     "prices file (`spanledger prices unpriced`)")
    meta = {"period": period.to_dict(), "format": f"FOCUS {FOCUS_VERSION}",
            "unpriced_calls_left_out": calls}
    return Report("focus", f"FOCUS {FOCUS_VERSION} export {period.label}", columns(),
                  [focus_row(k, charges.charges[k], period) for k in keys], None, notes, meta)


def catalog_list_price() -> ListPriceFn:
    """The catalog's public price (no prices file: list prices are before any discount)."""
    from spanledger.pricing.catalog import PriceCatalog

    catalog = PriceCatalog(None)

    def price(provider: str, model: str, usage: TokenUsage, day: dt.date) -> Cost | None:
        at = dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC)
        return catalog.price_tokens(provider or None, model, usage, at)

    return price


def build_focus_report(store: Store, period: Period, env: str | None = None) -> Report:
    if missing_rollups(store):
        report = focus_report([], period, catalog_list_price())
        report.notes.append(NO_TABLES)
        return report
    return focus_report(fetch_focus_usage(store, period, env), period, catalog_list_price(),
                        fetch_unpriced(store, period, env))
