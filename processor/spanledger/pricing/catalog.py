"""The price catalog: genai-prices data, overridden by the overrides file.

Every call is priced at the price in force at its OWN time (genai-prices
models price changes as date-conditional prices; the overrides file has
``effective_from``), so a price cut never re-prices last month.

Speed: this runs on every GenAI span end in the service. The expensive part of
``genai_prices.calc_price`` (~120 us) is matching a model name against
thousands of patterns; here each (provider, model) pair is resolved once and
cached (unknown models too), and each genai-prices price list is compiled once
into a :class:`~spanledger.pricing.rates.RateCard`. A cached call then costs a
dict lookup, the price-period choice and a handful of Decimal operations.

Model matching is genai-prices' own, with two repairs for ids instrumentations
mangle: a ``litellm`` provider passes its ``provider/model`` ids to genai-prices'
litellm handling, and a Bedrock model id whose vendor prefix an instrumentation
stripped (OpenLLMetry: ``nova-pro-v1:0``) gets it back when exactly one of the
catalog's Bedrock vendors fits (``amazon.nova-pro-v1:0``).

Service tiers and batch: a call served at another tier (OpenAI ``flex``,
``priority``; ``batch`` processing) is priced with genai-prices' price variant for
that request context (:func:`tier_context`), the same prices ``calc_price`` uses
with ``price_context``; a model without such a variant keeps its standard price.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import (
    ConditionalPrice,
    ModelInfo,
    ModelPrice,
    Provider,
    StartDateConstraint,
    TieredPrices,
    TimeOfDateConstraint,
)
from opentelemetry import metrics

from spanledger import semconv
from spanledger.pricing.overrides import (
    CallPeriod,
    ModelPeriod,
    Overrides,
    Rule,
    load_overrides,
)
from spanledger.pricing.providers import NO_CATALOG, genai_prices_provider
from spanledger.pricing.rates import (
    RateCard,
    base_price,
    compile_model_price,
    cost_to_pico,
    token_card,
)
from spanledger.pricing.types import ZERO, Cost, TokenUsage, usd

log = logging.getLogger(__name__)

#: environment variable naming the overrides file (PriceCatalog.from_env)
PRICES_FILE_ENV = "SPANLEDGER_PRICES_FILE"
#: bound on every per-name cache: model names come from spans, i.e. from outside
MAX_CACHE = 4096
#: bound on distinct (provider, model) unpriced counters; the rest count under ("*", "*")
MAX_UNPRICED_KEYS = 1000
#: longest provider, model, tool or db system name that is looked up, cached or logged.
#: Names come from spans: a longer one (a broken or hostile sender; real names, even
#: Bedrock ARNs, are far shorter) is unknown: unpriced, never cached, and counted and
#: warned about under its first MAX_NAME_CHARS characters followed by TRUNCATED_MARK
MAX_NAME_CHARS = 256
TRUNCATED_MARK = "...[truncated]"

_meter = metrics.get_meter("spanledger.pricing")
#: OpenTelemetry counter (a no-op until the application installs a MeterProvider)
UNPRICED_COUNTER = _meter.create_counter(
    "spanledger.spans.unpriced",
    unit="{span}",
    description="GenAI spans with usage whose model has no price (catalog or overrides)",
)

#: (provider, model) pairs already warned about in this process
_WARNED_UNPRICED: set[tuple[str, str]] = set()
_WARNED_LOCK = threading.Lock()

_TOKEN_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
#: tier values that mean "the standard price" (no price variant)
_STANDARD_TIERS = frozenset({"", "auto", "default", "standard", "standard_only", "on_demand"})
#: Bedrock model ids start with a region (cross-region profiles), then the vendor
_AWS_REGION_PREFIXES = frozenset({"us", "eu", "apac", "us-gov", "global", "regional", "jp", "au",
                                  "ca"})

#: a genai-prices request context, as sorted (key, value) pairs (hashable, cacheable)
Context = tuple[tuple[str, str], ...]


def tier_context(tier: str | None) -> Context | None:
    """The genai-prices ``price_context`` of a reported tier; None = the standard price.

    ``batch`` is a processing mode in genai-prices (``{"processing": "batch"}``);
    everything else is a service tier (``{"service_tier": "flex"}``).
    """
    if not tier:
        return None
    value = tier.strip().lower()
    if value in _STANDARD_TIERS:
        return None
    if value == "batch":
        return (("processing", "batch"),)
    return (("service_tier", value),)
#: fixed_card(): the (provider, model) price depends on the call's time or on overrides
DYNAMIC: Any = object()
_MISSING: Any = object()


@dataclass(frozen=True)
class PricePeriod:
    """One price period of a model, for ``spanledger prices show`` (USD per million tokens)."""

    source: str
    kind: str  # "catalog" | "override"
    provider: str | None
    model: str
    effective_from: dt.date | None
    effective_until: dt.date | None
    input: Decimal | None
    output: Decimal | None
    cache_read: Decimal | None
    cache_write: Decimal | None
    discount_percent: Decimal | None
    in_force: bool
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: decimals as strings (exact), dates ISO."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, Decimal):
                out[key] = str(value)
            elif isinstance(value, dt.date):
                out[key] = value.isoformat()
            elif isinstance(value, tuple):
                out[key] = list(value)
        return out


@dataclass(frozen=True)
class CallPricePeriod:
    """One per-call price period of a tool or vector database (USD per call)."""

    source: str
    kind: str  # "tool" | "db_system"
    pattern: str
    effective_from: dt.date | None
    effective_until: dt.date | None
    per_call: Decimal
    in_force: bool
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return PricePeriod.to_dict(self)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class _Resolved:
    """What a (provider, model) pair resolves to; cached, including 'nothing'."""

    provider: str | None
    model: str | None
    gp_provider: Provider | None
    gp_model: ModelInfo | None
    rules: tuple[Rule, ...]


def _utc_day(at: dt.datetime) -> dt.date:
    if at.tzinfo is not None:
        at = at.astimezone(dt.UTC)
    return at.date()


def bounded_name(name: str | None) -> str | None:
    """``name`` as it may appear in caches, counters and logs (see :data:`MAX_NAME_CHARS`)."""
    if name is None or len(name) <= MAX_NAME_CHARS:
        return name
    return name[:MAX_NAME_CHARS] + TRUNCATED_MARK


def _too_long(name: str | None) -> bool:
    return name is not None and len(name) > MAX_NAME_CHARS


class PriceCatalog:
    """Prices for token usage and per-call spans. Thread-safe; share one per process."""

    def __init__(self, overrides: str | Path | None = None) -> None:
        self.overrides: Overrides | None = load_overrides(overrides) if overrides else None
        self.version = f"genai-prices@{genai_prices.__version__}"
        self.override_source = self.overrides.source if self.overrides else None
        self._snapshot = get_snapshot()
        self._resolved: dict[tuple[str | None, str | None], _Resolved] = {}
        self._cards: dict[int, tuple[ModelPrice, RateCard]] = {}
        self._override_cards: dict[
            tuple[int, int], tuple[ModelPeriod, ModelPrice | None, RateCard]
        ] = {}
        #: (model, standard price, context, active variants) -> the resolved variant price
        self._variants: dict[tuple[Any, ...], tuple[ModelInfo, ModelPrice, ModelPrice]] = {}
        self._aws_vendors: tuple[str, ...] | None = None
        self._call_rules: dict[tuple[str, str], tuple[Rule, ...]] = {}
        #: (provider, model) -> (card, source, pico fn) when one integer-pico card prices every call
        #: whatever its time, None when the model is unknown, else DYNAMIC (see fixed_card)
        self._static: dict[tuple[str | None, str], Any] = {}
        #: read-only view for the per-span path: ``fixed_cards.get((provider, model))`` is
        #: :meth:`fixed_card` without a method frame once the pair was seen (else call it)
        self.fixed_cards: dict[tuple[str | None, str], Any] = self._static
        self._lock = threading.Lock()
        self._unpriced: dict[tuple[str, str], int] = {}
        self._warned: set[tuple[Any, ...]] = set()
        kinds = self.overrides.call_kinds if self.overrides else frozenset()
        keys: list[str] = []
        if "db_system" in kinds:
            keys.extend(semconv.DB_SYSTEM)
        if "tool" in kinds:
            keys.append(semconv.TOOL_NAME)
        #: span attribute names that can make a span priceable per call (empty: none)
        self.call_keys: frozenset[str] = frozenset(keys)

    @classmethod
    def from_env(cls) -> PriceCatalog:
        """Catalog with the overrides file named by ``SPANLEDGER_PRICES_FILE`` (if set)."""
        return cls(os.environ.get(PRICES_FILE_ENV) or None)

    # -- resolution -------------------------------------------------------------
    def _resolve(self, provider: str | None, model: str | None) -> _Resolved:
        if _too_long(provider) or _too_long(model):  # unknown, and not cached
            return _Resolved(bounded_name(provider), bounded_name(model), None, None, ())
        key = (provider, model)
        found = self._resolved.get(key)
        if found is not None:
            return found
        gp_id = genai_prices_provider(provider)
        gp_provider: Provider | None = None
        gp_model: ModelInfo | None = None
        if model and gp_id != NO_CATALOG:
            found = self._find(model, gp_id)
            if found is None and gp_id == "aws" and "." not in model.split(":", 1)[0]:
                found = self._find_bedrock_vendor(model)
            if found is not None:
                gp_provider, gp_model = found
        rules: tuple[Rule, ...] = ()
        if self.overrides is not None and model:
            names = {
                n
                for n in (
                    provider.lower() if provider else None,
                    gp_id,
                    gp_provider.id if gp_provider else None,
                )
                if n and n != NO_CATALOG
            }
            rules = self.overrides.rules_for_model(tuple(sorted(names)), model)
        found = _Resolved(provider, model, gp_provider, gp_model, rules)
        if len(self._resolved) >= MAX_CACHE:
            self._resolved.clear()
        self._resolved[key] = found
        return found

    def _find(self, model: str, gp_id: str | None) -> tuple[Provider, ModelInfo] | None:
        """genai-prices' own matching (litellm ids included); None = not in the catalog."""
        try:
            return self._snapshot.find_provider_model(model, None, gp_id, None)
        except LookupError:
            return None
        except Exception:  # odd data must not break span export
            log.debug("genai-prices lookup failed for %r/%r", gp_id, model, exc_info=True)
            return None

    def _find_bedrock_vendor(self, model: str) -> tuple[Provider, ModelInfo] | None:
        """A Bedrock id without its vendor (``nova-pro-v1:0``): the one vendor it fits, if one."""
        if self._aws_vendors is None:
            vendors: set[str] = set()
            for p in self._snapshot.providers:
                if p.id != "aws":
                    continue
                for m in p.models:
                    parts = m.id.split(".")
                    while len(parts) > 2 and parts[0] in _AWS_REGION_PREFIXES:
                        parts.pop(0)
                    if len(parts) >= 2:
                        vendors.add(parts[0])
            self._aws_vendors = tuple(sorted(vendors))
        hits = {}
        for vendor in self._aws_vendors:
            found = self._find(f"{vendor}.{model}", "aws")
            if found is not None:
                hits[found[1].id] = found
        return next(iter(hits.values())) if len(hits) == 1 else None

    def _prices(self, r: _Resolved, at: dt.datetime, context: Context | None) -> ModelPrice:
        """The catalog price of ``r`` at ``at`` in request ``context`` (tier, batch).

        genai-prices resolves a variant into a fresh copy on every call; one object per
        (model, period, context, variants in force) is kept so its compiled card is reused.
        """
        gp_model = r.gp_model
        assert gp_model is not None
        standard = gp_model.get_prices(at)
        if not context or not gp_model.price_variants:
            return standard
        active = tuple(i for i, v in enumerate(gp_model.price_variants)
                       if v.constraint is None or v.constraint.active(at))
        key = (id(gp_model), id(standard), context, active)
        hit = self._variants.get(key)
        if hit is not None and hit[0] is gp_model and hit[1] is standard:
            return hit[2]
        resolved = gp_model.get_prices(at, dict(context))
        if len(self._variants) >= MAX_CACHE:
            self._variants.clear()
        self._variants[key] = (gp_model, standard, resolved)
        return resolved

    def _card(self, model_price: ModelPrice) -> RateCard:
        hit = self._cards.get(id(model_price))
        if hit is not None and hit[0] is model_price:
            return hit[1]
        card = compile_model_price(model_price)
        if len(self._cards) >= MAX_CACHE:
            self._cards.clear()
        # the tuple keeps model_price alive, so its id() cannot be reused for another object
        self._cards[id(model_price)] = (model_price, card)
        return card

    def _choose(
        self, r: _Resolved, at: dt.datetime, context: Context | None = None
    ) -> tuple[Rule | None, ModelPeriod | None, ModelPrice | None] | None:
        """The price in force at ``at``: (rule, override entry, catalog price); None = unknown.

        (None, None, mp): catalog price. (rule, entry, None): override prices.
        (rule, entry, mp): catalog price with the entry's discount.
        """
        if r.rules:
            day = _utc_day(at)
            for rule in r.rules:
                period = rule.in_force(day)
                if period is None:
                    continue
                assert isinstance(period, ModelPeriod)
                if period.has_prices:
                    return rule, period, None
                if r.gp_model is not None:
                    return rule, period, self._prices(r, at, context)
        if r.gp_model is None:
            return None
        return None, None, self._prices(r, at, context)

    # -- pricing ----------------------------------------------------------------
    def price_tokens(
        self, provider: str | None, model: str, usage: TokenUsage, at: dt.datetime,
        tier: str | None = None,
    ) -> Cost | None:
        """Cost of ``usage`` at the price in force at ``at`` (for ``tier``: a service tier
        or ``batch``, see :func:`tier_context`); None = unknown model."""
        r = self._resolved.get((provider, model)) or self._resolve(provider, model)
        choice = self._choose(r, at, tier_context(tier))
        if choice is None:
            return None
        rule, period, mp = choice
        if period is None:
            assert mp is not None
            return self._card(mp).cost(usage, self.version)
        source = self.override_source or ""
        if mp is not None:
            return self._card(mp).cost(usage, source, period.factor)
        assert rule is not None
        return self._override_card(r, rule, period, at).cost(usage, source, period.factor)

    def price_tokens_pico(
        self, provider: str | None, model: str, counts: tuple[int, int, int, int, int, int],
        at: dt.datetime, tier: str | None = None,
    ) -> tuple[list[int] | tuple[int, ...], str] | None:
        """:meth:`price_tokens` as exact integer pico-dollar parts and the price source.

        ``counts`` is :func:`~spanledger.pricing.usage.read_counts` output. The
        per-span path of the processor: most models have one price list with
        no date or override rules, so their compiled card is looked up once
        per (provider, model) (the card, not any cost) and applied in integer
        arithmetic. Everything else goes through :meth:`price_tokens`.
        """
        if tier_context(tier) is not None:
            return self.dynamic_pico(provider, model, counts, at, tier)
        entry = self.fixed_card(provider, model)
        if entry is None:
            return None
        if entry is not DYNAMIC:
            card, source, _ = entry
            return card.pico(counts), source
        return self.dynamic_pico(provider, model, counts, at)

    def fixed_card(self, provider: str | None, model: str) -> Any:
        """(card, source, card's pico function) when one integer-pico card prices every call
        of this model whatever its time (and at the standard tier); None when the model is
        unknown; else :data:`DYNAMIC`.

        Split from :meth:`price_tokens_pico` so the per-span path can skip even
        computing the call's datetime for the common, time-independent models.
        """
        entry = self._static.get((provider, model), _MISSING)
        return self._static_entry((provider, model)) if entry is _MISSING else entry

    def dynamic_pico(
        self, provider: str | None, model: str, counts: tuple[int, int, int, int, int, int],
        at: dt.datetime, tier: str | None = None,
    ) -> tuple[list[int] | tuple[int, ...], str] | None:
        """:meth:`price_tokens_pico` for a :data:`DYNAMIC` model (dated prices, overrides) or
        a call at another tier."""
        cost = self.price_tokens(provider, model, TokenUsage(*counts), at, tier)
        return None if cost is None else (cost_to_pico(cost), cost.source)

    def _static_entry(self, key: tuple[str | None, str]) -> Any:
        if _too_long(key[0]) or _too_long(key[1]):
            return None  # unknown (see MAX_NAME_CHARS), and not cached
        r = self._resolved.get(key) or self._resolve(*key)
        entry: Any = DYNAMIC
        if not r.rules:
            if r.gp_model is None:
                entry = None  # unknown with or without a date: unpriced
            elif isinstance(r.gp_model.prices, ModelPrice):  # no date-conditional prices
                card = self._card(r.gp_model.prices)
                if card.exact_pico:
                    entry = (card, self.version, card.pico_function)
        if len(self._static) >= MAX_CACHE:
            self._static.clear()  # in place: fixed_cards is the same dict
        self._static[key] = entry
        return entry

    def _override_card(
        self, r: _Resolved, rule: Rule, period: ModelPeriod, at: dt.datetime
    ) -> RateCard:
        needs_ratio = period.cache_read is None or period.cache_write is None
        mp = r.gp_model.get_prices(at) if needs_ratio and r.gp_model is not None else None
        key = (id(period), id(mp))
        hit = self._override_cards.get(key)
        if hit is not None and hit[0] is period and hit[1] is mp:
            return hit[2]
        cache_read, cache_write, notes, guessed = cache_prices(period, mp)
        warn_key = (rule.pattern, period.line, r.model)
        if guessed and warn_key not in self._warned and len(self._warned) < MAX_CACHE:
            self._warned.add(warn_key)
            log.warning(
                "%s:%d: model %r: %s",
                self.overrides.file if self.overrides else "?",
                period.line,
                r.model,
                "; ".join(notes),
            )
        assert period.input is not None and period.output is not None
        card = token_card(period.input, period.output, cache_read, cache_write)
        if len(self._override_cards) >= MAX_CACHE:
            self._override_cards.clear()
        self._override_cards[key] = (period, mp, card)
        return card

    def price_call(
        self, *, db_system: str | None = None, tool: str | None = None, at: dt.datetime
    ) -> Cost | None:
        """Per-call price of a tool or vector-database span (overrides ``calls:``); None = none."""
        if self.overrides is None or not self.overrides.call_rules:
            return None
        day: dt.date | None = None
        for kind, name in (("tool", tool), ("db_system", db_system)):
            if not name or len(name) > MAX_NAME_CHARS:
                continue
            rules = self._call_rules.get((kind, name))
            if rules is None:
                rules = self.overrides.rules_for_call(kind, name)
                if len(self._call_rules) >= MAX_CACHE:
                    self._call_rules.clear()
                self._call_rules[(kind, name)] = rules
            if not rules:
                continue
            day = day or _utc_day(at)
            for rule in rules:
                period = rule.in_force(day)
                if period is not None:
                    assert isinstance(period, CallPeriod)
                    return Cost(usd(period.per_call), ZERO, ZERO, ZERO, self.override_source or "")
        return None

    # -- unpriced bookkeeping -------------------------------------------------------
    def note_unpriced(self, provider: str | None, model: str | None) -> None:
        """Count an unpriced span; the first one per (provider, model) in this process
        (across catalogs) logs a warning. Over-long names count under their bounded form."""
        provider, model = bounded_name(provider), bounded_name(model)
        key = (provider or "", model or "")
        with self._lock:
            count = self._unpriced.get(key)
            if count is None and len(self._unpriced) >= MAX_UNPRICED_KEYS:
                key = ("*", "*")
                count = self._unpriced.get(key, 0)
            self._unpriced[key] = (count or 0) + 1
        with _WARNED_LOCK:
            first = key not in _WARNED_UNPRICED and len(_WARNED_UNPRICED) < MAX_UNPRICED_KEYS
            if first:
                _WARNED_UNPRICED.add(key)
        if first:
            log.warning(
                "no price for model %r (provider %r) in %s%s: spans are marked unpriced; "
                "add it to the prices file",
                model,
                provider,
                self.version,
                f" or {self.overrides.file}" if self.overrides else "",
            )
        UNPRICED_COUNTER.add(1, {"gen_ai.provider.name": key[0], "gen_ai.request.model": key[1]})

    def unpriced_counts(self) -> dict[tuple[str, str], int]:
        """Unpriced spans seen by this catalog per (provider, model) ("" = absent)."""
        with self._lock:
            return dict(self._unpriced)

    # -- description ------------------------------------------------------------------
    def describe(
        self, model: str, provider: str | None = None, at: dt.datetime | None = None
    ) -> list[PricePeriod]:
        """All price periods for ``model`` (catalog first, then overrides); [] = unknown.

        ``in_force`` marks what prices a call at ``at`` (default: now).
        """
        at = at or dt.datetime.now(dt.UTC)
        r = self._resolve(provider, model)
        choice = self._choose(r, at)
        chosen_period = choice[1] if choice else None
        chosen_mp = choice[2] if choice else None
        if r.gp_model is None and not any(
            isinstance(p, ModelPeriod) and p.has_prices for rule in r.rules for p in rule.periods
        ):
            return []  # discount-only rules cannot price a model the catalog does not know
        out: list[PricePeriod] = []
        if r.gp_model is not None and r.gp_provider is not None:
            out.extend(self._catalog_periods(r.gp_provider, r.gp_model, chosen_mp))
        for rule in r.rules:
            for period in rule.periods:
                assert isinstance(period, ModelPeriod)
                out.append(self._override_period(r, rule, period, chosen_period, at))
        return out

    def describe_calls(self, name: str, at: dt.datetime | None = None) -> list[CallPricePeriod]:
        """Per-call price periods of a tool or vector database named ``name``; [] = none."""
        if self.overrides is None:
            return []
        day = _utc_day(at or dt.datetime.now(dt.UTC))
        out: list[CallPricePeriod] = []
        for kind in ("tool", "db_system"):
            rules = self.overrides.rules_for_call(kind, name)
            chosen = next((p for r in rules if (p := r.in_force(day)) is not None), None)
            for rule in rules:
                for period in rule.periods:
                    assert isinstance(period, CallPeriod)
                    out.append(
                        CallPricePeriod(
                            source=self.override_source or "",
                            kind=kind,
                            pattern=rule.pattern,
                            effective_from=period.effective_from,
                            effective_until=rule.until(period),
                            per_call=period.per_call,
                            in_force=period is chosen,
                            notes=(period.note,) if period.note else (),
                        )
                    )
        return out

    def _catalog_periods(
        self, provider: Provider, model: ModelInfo, chosen: ModelPrice | None
    ) -> list[PricePeriod]:
        entries: list[tuple[ModelPrice, Any]] = (
            [(model.prices, None)]
            if isinstance(model.prices, ModelPrice)
            else [
                (cp.prices, cp.constraint)
                for cp in model.prices
                if isinstance(cp, ConditionalPrice)
            ]
        )
        out = []
        for i, (mp, constraint) in enumerate(entries):
            start = constraint.start_date if isinstance(constraint, StartDateConstraint) else None
            until = next(
                (c.start_date for _, c in entries[i + 1 :] if isinstance(c, StartDateConstraint)),
                None,
            )
            notes = []
            if isinstance(constraint, TimeOfDateConstraint):
                notes.append(
                    f"daily {constraint.start_time:%H:%M}-{constraint.end_time:%H:%M} UTC only"
                )
                until = None
            notes.extend(_price_notes(mp))
            prices = [base_price(getattr(mp, k)) for k in _TOKEN_KEYS]
            out.append(
                PricePeriod(
                    source=self.version,
                    kind="catalog",
                    provider=provider.id,
                    model=model.id,
                    effective_from=start,
                    effective_until=until,
                    input=prices[0],
                    output=prices[1],
                    cache_read=prices[2],
                    cache_write=prices[3],
                    discount_percent=None,
                    in_force=mp is chosen,
                    notes=tuple(notes),
                )
            )
        return out

    def _override_period(
        self,
        r: _Resolved,
        rule: Rule,
        period: ModelPeriod,
        chosen: ModelPeriod | None,
        at: dt.datetime,
    ) -> PricePeriod:
        notes: list[str] = []
        cache_read, cache_write = period.cache_read, period.cache_write
        if period.has_prices:
            when = (
                dt.datetime.combine(period.effective_from, dt.time(), dt.UTC)
                if period.effective_from
                else at
            )
            mp = r.gp_model.get_prices(when) if r.gp_model is not None else None
            cache_read, cache_write, derived, _ = cache_prices(period, mp)
            notes.extend(derived)
        else:
            notes.append("discount on the catalog price")
        if period.note:
            notes.append(period.note)
        label = rule.pattern if rule.provider is None else f"{rule.provider}/{rule.pattern}"
        return PricePeriod(
            source=self.override_source or "",
            kind="override",
            provider=rule.provider,
            model=label,
            effective_from=period.effective_from,
            effective_until=rule.until(period),
            input=period.input,
            output=period.output,
            cache_read=cache_read if period.has_prices else None,
            cache_write=cache_write if period.has_prices else None,
            discount_percent=period.discount_percent,
            in_force=period is chosen,
            notes=tuple(notes),
        )


def cache_prices(
    period: ModelPeriod, catalog: ModelPrice | None
) -> tuple[Decimal, Decimal, list[str], bool]:
    """Cache read/write prices of an override entry (per million tokens).

    Explicit keys win. A missing one takes the catalog's ratio to the input
    price for that model (no catalog cache price = the catalog charges those
    tokens at the input price: ratio 1). With no catalog entry at all, the
    input price is used and ``guessed`` is True (the caller warns).
    Returns (cache_read, cache_write, notes, guessed).
    """
    assert period.input is not None
    notes: list[str] = []
    guessed = False
    catalog_input = base_price(catalog.input_mtok) if catalog is not None else None
    values: list[Decimal] = []
    for name in ("cache_read", "cache_write"):
        explicit = getattr(period, name)
        if explicit is not None:
            values.append(explicit)
            continue
        if catalog is not None and catalog_input:
            catalog_price = base_price(getattr(catalog, f"{name}_mtok"))
            ratio = catalog_price / catalog_input if catalog_price is not None else Decimal(1)
            values.append(period.input * ratio)
            notes.append(f"{name} = input x {ratio.normalize()} (catalog ratio)")
        elif name == "cache_read":
            values.append(period.input)
            guessed = True
            notes.append(
                "no cache_read price and no catalog ratio: cached input charged at the "
                "input price (set cache_read to make this explicit)"
            )
        else:
            values.append(period.input)
            notes.append("cache_write = input price (no catalog ratio)")
    return values[0], values[1], notes, guessed


def _price_notes(mp: ModelPrice) -> list[str]:
    notes = []
    for key, value in mp.__dict__.items():
        if key.startswith("_") or value is None:
            continue
        if isinstance(value, TieredPrices):
            tiers = ", ".join(f"{t.price} above {t.start:,} input tokens" for t in value.tiers)
            notes.append(f"{key}: {value.base} ({tiers})")
        elif key not in _TOKEN_KEYS:
            notes.append(f"{key}: {value}")
    return notes
