"""Demo only: the provider's side of the demo, the exports OpenAI and Anthropic would send.

The demo's stub provider sends no bills, so after a run the demo writes them
itself, from what its services sent to the provider (the plan, not the spans:
the provider does not see spanledger), priced at the providers' list prices
with the provider's own terms. The differences the demo then injects on
purpose (a service without spanledger, a discount nobody put in the prices
file, a fine-tune spanledger has no price for) are what ``spanledger
reconcile`` has to find.

The files have the shapes of the providers' admin APIs: OpenAI's Costs API
(``group_by=line_item``, amounts in USD) and Usage API for completions, and
Anthropic's cost report (``group_by=description``, amounts as decimal strings
in CENTS) and usage report. The sample exports in
``collector-config/reconcile-samples/`` were written with this module.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from spanledger.demo.scenario import Chat, Embed, TracePlan
from spanledger.reconcile.report import catalog_prices

ZERO = Decimal(0)
HUNDRED = Decimal(100)
#: OpenAI reports amounts as JSON numbers; Anthropic as cents with this many decimals
OPENAI_QUANTUM = Decimal("1e-10")
ANTHROPIC_CENTS_QUANTUM = Decimal("0.01")
TIER_FACTOR = {"standard": Decimal(1), "batch": Decimal("0.5")}


@dataclass(frozen=True, slots=True)
class Usage:
    """What one provider saw of one model on one day (uncached input: no cache reads/writes)."""

    day: dt.date
    provider: str  # "openai" | "anthropic"
    #: the model as the provider's bill names it (dated snapshot)
    model: str
    input: int = 0
    cache_read: int = 0
    cache_write: int = 0
    output: int = 0
    requests: int = 0
    tier: str = "standard"
    embeddings: bool = False
    project: str = "proj_default"

    def __add__(self, other: Usage) -> Usage:
        return replace(self, input=self.input + other.input,
                       cache_read=self.cache_read + other.cache_read,
                       cache_write=self.cache_write + other.cache_write,
                       output=self.output + other.output, requests=self.requests + other.requests)

    def tokens(self, token_type: str) -> int:
        return int(getattr(self, token_type))


@dataclass(frozen=True, slots=True)
class Terms:
    """What the provider charges: list prices, its discounts, prices of private models."""

    #: billed model -> discount % the provider gives
    discounts: Mapping[str, Decimal]
    #: billed model -> USD per million tokens by token type (models no catalog knows)
    private_prices: Mapping[str, Mapping[str, Decimal]]


PriceFn = Callable[[Usage, str], Decimal]


def list_prices(terms: Terms) -> PriceFn:
    """USD per token of one type, at the catalog's list price on the usage's day."""
    catalog_unit, _ = catalog_prices(None, from_env=False)

    def unit(u: Usage, token_type: str) -> Decimal:
        private = terms.private_prices.get(u.model)
        if private is not None:
            return private.get(token_type, ZERO) / 1_000_000
        price = catalog_unit(u.provider, u.model, token_type, u.day)
        if price is None:
            raise ValueError(f"no list price for {u.provider} {u.model}")
        return price

    return unit


def _amount(u: Usage, token_type: str, unit: PriceFn, terms: Terms) -> Decimal:
    discount = terms.discounts.get(u.model, ZERO)
    return (u.tokens(token_type) * unit(u, token_type) * TIER_FACTOR[u.tier]
            * (HUNDRED - discount) / HUNDRED)


def _unix(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def _rfc3339(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def _days(usages: Iterable[Usage]) -> list[dt.date]:
    return sorted({u.day for u in usages})


def openai_costs(usages: list[Usage], unit: PriceFn, terms: Terms) -> dict[str, Any]:
    """``GET /v1/organization/costs?group_by=line_item&group_by=project_id``, one page."""
    names = {"input": "input", "cache_read": "cached input", "output": "output"}
    buckets = []
    for day in _days(usages):
        results = []
        for u in (x for x in usages if x.day == day):
            items = [(u.model, "input")] if u.embeddings else [
                (f"{u.model}, {'batch ' if u.tier == 'batch' else ''}{names[t]}", t)
                for t in ("input", "cache_read", "output") if u.tokens(t)]
            for line_item, t in items:
                value = _amount(u, t, unit, terms).quantize(OPENAI_QUANTUM)
                results.append({"object": "organization.costs.result",
                                "amount": {"value": value, "currency": "usd"},
                                "line_item": line_item, "project_id": u.project})
        buckets.append({"object": "bucket", "start_time": _unix(day),
                        "end_time": _unix(day + dt.timedelta(days=1)), "results": results})
    return {"object": "page", "data": buckets, "has_more": False, "next_page": None}


def openai_usage(usages: list[Usage]) -> dict[str, Any]:
    """``GET /v1/organization/usage/completions?group_by=model&group_by=batch``, one page."""
    buckets = []
    for day in _days(usages):
        results = [{
            "object": "organization.usage.completions.result",
            "input_tokens": u.input + u.cache_read, "output_tokens": u.output,
            "input_cached_tokens": u.cache_read, "input_audio_tokens": 0,
            "output_audio_tokens": 0, "num_model_requests": u.requests,
            "project_id": None, "user_id": None, "api_key_id": None, "model": u.model,
            "batch": u.tier == "batch"} for u in usages if u.day == day and not u.embeddings]
        buckets.append({"object": "bucket", "start_time": _unix(day),
                        "end_time": _unix(day + dt.timedelta(days=1)), "results": results})
    return {"object": "page", "data": buckets, "has_more": False, "next_page": None}


def anthropic_cost(usages: list[Usage], unit: PriceFn, terms: Terms) -> dict[str, Any]:
    """``GET /v1/organizations/cost_report?group_by[]=description``: amounts in CENTS."""
    names = {"input": "uncached_input_tokens", "cache_read": "cache_read_input_tokens",
             "cache_write": "cache_creation.ephemeral_5m_input_tokens",
             "output": "output_tokens"}
    buckets = []
    for day in _days(usages):
        results = []
        for u in (x for x in usages if x.day == day):
            for t, token_type in names.items():
                if not u.tokens(t):
                    continue
                cents = (_amount(u, t, unit, terms) * HUNDRED).quantize(ANTHROPIC_CENTS_QUANTUM)
                results.append({
                    "currency": "USD", "amount": f"{cents:f}", "workspace_id": None,
                    "description": f"{u.model} {token_type}", "cost_type": "tokens",
                    "context_window": "0-200k", "model": u.model, "service_tier": u.tier,
                    "token_type": token_type, "inference_geo": "not_available"})
        buckets.append({"starting_at": _rfc3339(day),
                        "ending_at": _rfc3339(day + dt.timedelta(days=1)), "results": results})
    return {"data": buckets, "has_more": False, "next_page": None}


def anthropic_usage(usages: list[Usage]) -> dict[str, Any]:
    """``GET /v1/organizations/usage_report/messages?group_by[]=model&bucket_width=1d``."""
    buckets = []
    for day in _days(usages):
        results = [{
            "uncached_input_tokens": u.input, "cache_read_input_tokens": u.cache_read,
            "cache_creation": {"ephemeral_5m_input_tokens": u.cache_write,
                               "ephemeral_1h_input_tokens": 0},
            "output_tokens": u.output, "server_tool_use": {"web_search_requests": 0},
            "api_key_id": None, "workspace_id": None, "model": u.model,
            "service_tier": u.tier, "context_window": "0-200k"}
            for u in usages if u.day == day]
        buckets.append({"starting_at": _rfc3339(day),
                        "ending_at": _rfc3339(day + dt.timedelta(days=1)), "results": results})
    return {"data": buckets, "has_more": False, "next_page": None}


_NUMBER = re.compile(r'"@number:(-?[0-9.]+)@"')


# -- the demo's provider side ----------------------------------------------------------

#: the demo's models as the providers' bills name them (dated snapshots)
BILLED_AS = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o": "gpt-4o-2024-08-06",
             "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
             "claude-haiku-4-5": "claude-haiku-4-5-20251001"}
#: served on the company's own GPUs: on no provider's bill
SELF_HOSTED = frozenset({"acme-llama-3.1-70b"})
#: the providers' terms: OpenAI's 12% on gpt-4o is in demo-prices.yaml too; Anthropic's 8%
#: on claude-sonnet-4-5 is not (a discount missing from the prices file); the fine-tune
#: has a price at OpenAI and none in spanledger (its spans are unpriced)
DEMO_TERMS = Terms(
    discounts={"gpt-4o-2024-08-06": Decimal(12), "claude-sonnet-4-5-20250929": Decimal(8)},
    private_prices={"acme-intent-ft-v2": {"input": Decimal("0.30"), "cache_read": Decimal("0.15"),
                                          "output": Decimal("1.20")}})
#: a reporting job nobody instrumented: gpt-4o-mini calls on the bill, in no span
LEGACY_EVERY_DAYS = 4
LEGACY = Usage(dt.date(1970, 1, 1), "openai", BILLED_AS["gpt-4o-mini"], input=400_000,
               output=40_000, requests=80, project="proj_legacy_reports")


def plan_usages(plans: Iterable[TracePlan]) -> list[Usage]:
    """What the provider saw of the demo's plan, per day x provider x model (UTC days)."""
    acc: dict[tuple[dt.date, str, str, bool], Usage] = {}

    def add(u: Usage) -> None:
        key = (u.day, u.provider, u.model, u.embeddings)
        acc[key] = acc[key] + u if key in acc else u

    for plan in plans:
        day = dt.datetime.fromtimestamp(plan.start_ns / 1e9, dt.UTC).date()
        for step in plan.steps:
            if isinstance(step, Chat) and step.model not in SELF_HOSTED:
                cached = step.cache_read_tokens + step.cache_write_tokens
                uncached = max(step.input_tokens - cached, 0)  # the prompt includes the cache
                add(Usage(day, step.provider, BILLED_AS.get(step.model, step.model), uncached,
                          step.cache_read_tokens, step.cache_write_tokens, step.output_tokens,
                          1))
            elif isinstance(step, Embed):
                add(Usage(day, "openai", step.model, step.tokens, requests=1, embeddings=True))
    return sorted(acc.values(), key=lambda u: (u.day, u.provider, u.model))


def with_legacy_service(usages: list[Usage]) -> list[Usage]:
    """The bill's extra gpt-4o-mini calls from a service without spanledger (every 4th day)."""
    days = sorted({u.day for u in usages if u.provider == "openai"})
    return [*usages, *(replace(LEGACY, day=d) for d in days[::LEGACY_EVERY_DAYS])]


def _dump(doc: dict[str, Any]) -> str:
    """JSON with Decimals written as numbers, every digit kept (json.dumps would need floats)."""
    def default(value: object) -> object:
        if isinstance(value, Decimal):
            return f"@number:{value:f}@"
        raise TypeError(type(value).__name__)
    return _NUMBER.sub(r"\1", json.dumps(doc, indent=2, default=default)) + "\n"


def write_exports(folder: Path, usages: Iterable[Usage], terms: Terms,
                  prefix: str = "") -> list[Path]:
    """The four exports (those with any usage) into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    unit = list_prices(terms)
    by_provider: dict[str, list[Usage]] = {}
    for u in usages:
        by_provider.setdefault(u.provider, []).append(u)
    docs: list[tuple[str, dict[str, Any]]] = []
    if "openai" in by_provider:
        docs += [("openai-costs.json", openai_costs(by_provider["openai"], unit, terms)),
                 ("openai-usage-completions.json", openai_usage(by_provider["openai"]))]
    if "anthropic" in by_provider:
        docs += [("anthropic-cost-report.json",
                  anthropic_cost(by_provider["anthropic"], unit, terms)),
                 ("anthropic-usage-report.json", anthropic_usage(by_provider["anthropic"]))]
    paths = []
    for name, doc in docs:
        path = folder / f"{prefix}{name}"
        path.write_text(_dump(doc), encoding="utf-8")
        paths.append(path)
    return paths
