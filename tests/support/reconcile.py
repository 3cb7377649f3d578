"""The reconciliation scenario the shipped sample exports describe, and its spans.

``collector-config/reconcile-samples/`` holds what OpenAI, Anthropic, AWS, Azure
and Google Cloud would export for 2026-11-01..03 for a small company; the
spans below are what spanledger metered of it. The differences are injected on
purpose and each has one known cause:

- OpenAI ``gpt-4o-mini`` on 2026-11-02: 60 calls (300,000 input and 60,000 output
  tokens) from a service without spanledger: on the bill, not in the spans;
- OpenAI ``acme-intent-ft-v2``: a fine-tune with no price in spanledger (spans
  ``unpriced``), billed at $0.30 / $1.20 per million tokens;
- Anthropic ``claude-sonnet-4-5``: billed 8% below list, a discount missing from
  the prices file (the spans are at list price);
- Anthropic amounts are decimal strings in cents.

Everything else (gpt-4o with its 12% discount in both the prices file and the
bill, embeddings, claude-haiku-4-5 with cache writes and reads, and the FOCUS
rows of Bedrock, Azure OpenAI and Vertex AI) ties out to the bill's rounding.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from spanledger.demo.provider_bills import Terms, Usage, write_exports
from spanledger.pricing.catalog import PriceCatalog
from spanledger.pricing.types import TokenUsage, usd
from spanledger.resources import data_dir
from support.reports import llm_span

DAYS = (dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3))
LEGACY_DAY = DAYS[1]
LEGACY = Usage(LEGACY_DAY, "openai", "gpt-4o-mini-2024-07-18", input=300_000, output=60_000,
               requests=60, project="proj_legacy_reports")
GPT4O_DISCOUNT = Decimal(12)
SONNET_DISCOUNT = Decimal(8)
FT_PRICES = {"input": Decimal("0.30"), "cache_read": Decimal("0.30"), "output": Decimal("1.20")}
TERMS = Terms(discounts={"gpt-4o-2024-08-06": GPT4O_DISCOUNT,
                         "claude-sonnet-4-5-20250929": SONNET_DISCOUNT},
              private_prices={"acme-intent-ft-v2": FT_PRICES})


def samples_dir() -> Path:
    return data_dir("collector-config") / "reconcile-samples"


@dataclass(frozen=True, slots=True)
class Call:
    """``n`` identical calls; ``input`` is uncached input (the bill's meaning)."""

    provider: str  # span provider (gen_ai.provider.name)
    model: str  # span model
    billed_as: str  # the model as the provider's bill names it
    n: int
    input: int
    output: int
    cache_read: int = 0
    cache_write: int = 0
    operation: str = "chat"
    discount: Decimal = Decimal(0)  # in the prices file: spans priced below list
    priced: bool = True
    team: str = "support"
    service: str = "support-api"


def calls_of_day() -> list[Call]:
    """What every day of the scenario metered (the same calls each day)."""
    return [
        Call("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 10, 976, 300, cache_read=1024),
        Call("openai", "gpt-4o", "gpt-4o-2024-08-06", 5, 3000, 400, discount=GPT4O_DISCOUNT),
        Call("openai", "acme-intent-ft-v2", "acme-intent-ft-v2", 20, 300, 5, priced=False,
             team="ml-platform", service="doc-pipeline"),
        Call("openai", "text-embedding-3-small", "text-embedding-3-small", 8, 50, 0,
             operation="embeddings", team="search", service="search-api"),
        Call("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", 4, 3000, 400,
             cache_read=2048, team="search", service="search-api"),
        Call("anthropic", "claude-haiku-4-5", "claude-haiku-4-5-20251001", 5, 800, 300,
             cache_read=1500, team="sales", service="sales-assist"),
        Call("anthropic", "claude-haiku-4-5", "claude-haiku-4-5-20251001", 1, 800, 300,
             cache_write=1500, team="sales", service="sales-assist"),
    ]


def cloud_calls_of_day() -> list[Call]:
    """Bedrock, Azure OpenAI and Vertex AI calls (the FOCUS samples bill exactly these)."""
    return [
        Call("aws.bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "Claude4.5Sonnet",
             3, 2000, 500, team="legal", service="contracts"),
        Call("azure.ai.openai", "gpt-4o-mini", "gpt-4o-mini-0718", 7, 1200, 200,
             team="legal", service="contracts"),
        Call("gcp.vertex_ai", "gemini-2.5-flash", "Gemini 2.5 Flash", 9, 1500, 250,
             team="legal", service="contracts"),
    ]


_CATALOG = PriceCatalog(None)


def _at(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC)


def call_cost(c: Call, day: dt.date) -> tuple[Decimal, Decimal, Decimal, Decimal] | None:
    """One call's cost parts (input, output, cache_read, cache_write) as the processor prices it."""
    if not c.priced:
        return None
    usage = TokenUsage(c.input + c.cache_read + c.cache_write, c.output, c.cache_read,
                       c.cache_write)
    cost = _CATALOG.price_tokens(c.provider, c.model, usage, _at(day))
    assert cost is not None, c.model
    factor = (100 - c.discount) / Decimal(100)
    return (usd(cost.input * factor), usd(cost.output * factor), usd(cost.cache_read * factor),
            usd(cost.cache_write * factor))


def spans(calls: list[Call] | None = None,
          days: tuple[dt.date, ...] = DAYS) -> list[dict[str, Any]]:
    """The metered calls as otel_traces rows (each call its own trace)."""
    out = []
    for day in days:
        for i, c in enumerate(calls if calls is not None else calls_of_day()):
            parts = call_cost(c, day)
            for j in range(c.n):
                ts = _at(day).replace(hour=8 + i % 10, minute=j % 60)
                row = llm_span(
                    trace=f"{day:%d}-{i}-{j}", ts=ts, team=c.team, feature="f", model=c.model,
                    provider=c.provider, input_tokens=c.input + c.cache_read + c.cache_write,
                    output_tokens=c.output, cache_read_tokens=c.cache_read,
                    cost=None if parts is None else str(sum(parts)),
                    parts=None if parts is None else tuple(str(p) for p in parts),
                    status="priced" if c.priced else "unpriced", service=c.service,
                    operation=c.operation)
                if c.cache_write:
                    row["SpanAttributes"]["gen_ai.usage.cache_creation.input_tokens"] = str(
                        c.cache_write)
                if c.priced and (c.discount or c.model.startswith("acme")):
                    row["SpanAttributes"]["spanledger.price.source"] = "override:prices.yaml"
                out.append(row)
    return out


def bill_usages() -> list[Usage]:
    """What the providers saw: the metered calls plus the service without spanledger."""
    out: list[Usage] = []
    for day in DAYS:
        seen: dict[tuple[str, str], Usage] = {}
        for c in calls_of_day():
            u = Usage(day, c.provider, c.billed_as, c.n * c.input, c.n * c.cache_read,
                      c.n * c.cache_write, c.n * c.output, c.n,
                      embeddings=c.operation == "embeddings")
            key = (c.provider, c.billed_as)
            seen[key] = seen[key] + u if key in seen else u
        out.extend(seen.values())
    out.append(LEGACY)
    return out


FOCUS_COLUMNS = ("BilledCost", "BillingAccountId", "BillingCurrency", "BillingPeriodStart",
                 "BillingPeriodEnd", "ChargeCategory", "ChargeDescription", "ChargePeriodStart",
                 "ChargePeriodEnd", "ConsumedQuantity", "ConsumedUnit", "EffectiveCost",
                 "ListCost", "ProviderName", "PublisherName", "RegionId", "ServiceCategory",
                 "ServiceName", "SkuId")
_CLOUD = {
    "aws.bedrock": ("AWS", "Amazon Bedrock", "x_UsageType", "us-east-1", "Tokens"),
    "azure.ai.openai": ("Microsoft", "Azure OpenAI", "x_SkuMeterName", "eastus", "1K Tokens"),
    "gcp.vertex_ai": ("Google Cloud", "Vertex AI", "ChargeDescription", "us-central1", "Tokens"),
}
_METER = {
    "aws.bedrock": {"input": "USE1-{m}-input-tokens", "output": "USE1-{m}-output-tokens"},
    "azure.ai.openai": {"input": "{m}-Inp-glbl", "output": "{m}-Outp-glbl"},
    "gcp.vertex_ai": {"input": "{m} Input Text Tokens", "output": "{m} Output Text Tokens"},
}


def focus_csv(provider: str) -> str:
    """A FOCUS cost and usage file of one cloud: its AI rows, and one row of another service."""
    buf = io.StringIO()
    name, service, meter_col, region, unit = _CLOUD[provider]
    columns = [*FOCUS_COLUMNS, *([meter_col] if meter_col not in FOCUS_COLUMNS else [])]
    w = csv.DictWriter(buf, columns, lineterminator="\n")
    w.writeheader()
    scale = 1000 if unit == "1K Tokens" else 1
    for day in DAYS:
        start, end = f"{day}T00:00:00Z", f"{day + dt.timedelta(days=1)}T00:00:00Z"
        base = {"BillingAccountId": "acct-0042", "BillingCurrency": "USD",
                "BillingPeriodStart": "2026-11-01T00:00:00Z",
                "BillingPeriodEnd": "2026-12-01T00:00:00Z", "ChargeCategory": "Usage",
                "ChargePeriodStart": start, "ChargePeriodEnd": end, "ProviderName": name,
                "PublisherName": name, "RegionId": region}
        for c in (x for x in cloud_calls_of_day() if x.provider == provider):
            parts = call_cost(c, day)
            assert parts is not None
            for token_type, tokens, cost in (("input", c.input, parts[0]),
                                             ("output", c.output, parts[1])):
                meter = _METER[provider][token_type].format(m=c.billed_as)
                amount = f"{(cost * c.n).quantize(Decimal('1e-10')):f}"
                quantity = f"{Decimal(tokens * c.n) / scale:f}"
                row = {**base, "BilledCost": amount, "EffectiveCost": amount, "ListCost": amount,
                       "ChargeDescription": meter, "ConsumedQuantity": quantity,
                       "ConsumedUnit": unit, "ServiceCategory": "AI and Machine Learning",
                       "ServiceName": service, "SkuId": f"sku-{token_type}", meter_col: meter}
                w.writerow(row)
        w.writerow({**base, "BilledCost": "1.25", "EffectiveCost": "1.25", "ListCost": "1.25",
                    "ChargeDescription": "Compute hours", "ConsumedQuantity": "10",
                    "ConsumedUnit": "Hours", "ServiceCategory": "Compute",
                    "ServiceName": "Virtual Machines", "SkuId": "vm", meter_col: "vm-hours"})
    return buf.getvalue()


SAMPLE_FOCUS = {"aws.bedrock": "focus-aws-bedrock.csv", "azure.ai.openai": "focus-azure-openai.csv",
                "gcp.vertex_ai": "focus-gcp-vertex.csv"}


def write_samples(folder: Path) -> list[Path]:
    """Every sample export of the scenario into ``folder``."""
    paths = write_exports(folder, bill_usages(), TERMS)
    for provider, name in SAMPLE_FOCUS.items():
        path = folder / name
        path.write_text(focus_csv(provider), encoding="utf-8")
        paths.append(path)
    return paths
