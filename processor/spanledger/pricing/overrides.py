"""The price overrides file: negotiated prices, discounts, self-hosted models, per-call prices.

Prices are data, not code: a FinOps lead edits this YAML, so every mistake
(unknown key, bad number, bad date, negative price, missing model...) fails at
start-up as a :class:`~spanledger.yamlconf.ConfigError` naming file, line and
key, instead of mispricing quietly. The format is documented with examples in
``collector-config/prices.example.yaml``; in short::

    models:                      # token prices, USD per million tokens
      - provider: openai         # optional; OTel name (azure.ai.openai) or genai-prices id (azure)
        model: "ft:gpt-4o-mini*" # required; glob, case-insensitive
        effective_from: 2025-06-01   # optional (UTC day); omitted = always
        input: 0.30
        output: 1.20
        cache_read: 0.15         # optional, see "cache prices" below
        cache_write: 0.375       # optional
        discount_percent: 10     # optional, applied to this entry's prices
      - provider: openai         # discount-only entry: applied to the catalog price
        model: "*"
        discount_percent: 15
    calls:                       # per-call prices for spans without tokens
      - db_system: qdrant        # matches db.system.name (or legacy db.system); glob
        per_call: 0.00002
      - tool: web_search         # matches gen_ai.tool.name; glob
        per_call: 0.01

Which entry applies: entries with the same provider and model form one rule
with a price history; the entry in force at the call's time (latest
effective_from <= call day) is used. When several rules match a call, the more
specific wins: an exact model name beats a glob, a rule naming a provider
beats one without; then the rule written first. A rule with nothing in force
at the call's time (all its dates are later) lets the next rule, then the
catalog, price the call. A discount-only entry for a model the catalog does not
know prices nothing (the next rule is tried; else the call is unpriced).

Cache prices: an entry that gives ``input`` but omits ``cache_read`` (or
``cache_write``) takes the catalog's ratio for that model at the call's time
(e.g. OpenAI cached input at 50% of input: override input 2.00 -> cache_read
1.00; Anthropic writes at 125%). When the catalog does not know the model
there is no ratio: cached reads are charged at the input price and a warning
is logged once per rule and model (write the key to make it explicit); cache
writes default to the input price (no write surcharge) without a warning.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from bisect import bisect_right
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from spanledger import yamlconf
from spanledger.yamlconf import ConfigError, Node

_GLOB_CHARS = frozenset("*?[")
HUNDRED = Decimal(100)

_TOP_KEYS = frozenset({"models", "calls"})
_MODEL_KEYS = frozenset(
    {
        "provider",
        "model",
        "effective_from",
        "input",
        "output",
        "cache_read",
        "cache_write",
        "discount_percent",
        "note",
    }
)
_CALL_KEYS = frozenset({"db_system", "tool", "per_call", "effective_from", "note"})


def is_glob(pattern: str) -> bool:
    return any(c in _GLOB_CHARS for c in pattern)


def glob_match(pattern: str, name: str) -> bool:
    """Case-insensitive glob match (patterns are stored lower case)."""
    name = name.lower()
    return fnmatch.fnmatchcase(name, pattern) if is_glob(pattern) else name == pattern


@dataclass(frozen=True)
class ModelPeriod:
    """One entry of ``models:``: prices per million tokens from ``effective_from`` on."""

    effective_from: dt.date | None
    input: Decimal | None
    output: Decimal | None
    cache_read: Decimal | None
    cache_write: Decimal | None
    discount_percent: Decimal | None
    line: int
    note: str | None = None

    @property
    def has_prices(self) -> bool:
        return self.input is not None

    @property
    def factor(self) -> Decimal | None:
        """Multiplier for a discount (None when there is none)."""
        if not self.discount_percent:
            return None
        return (HUNDRED - self.discount_percent) / HUNDRED


@dataclass(frozen=True)
class CallPeriod:
    """One entry of ``calls:``: USD per call from ``effective_from`` on."""

    effective_from: dt.date | None
    per_call: Decimal
    line: int
    note: str | None = None


@dataclass
class Rule:
    """All entries for one (provider, pattern): a price history, oldest first."""

    kind: str  # "model" | "db_system" | "tool"
    provider: str | None  # lower case, may be a glob
    pattern: str  # lower case, may be a glob
    order: int
    periods: list[ModelPeriod | CallPeriod] = field(default_factory=list)
    _starts: list[dt.date] = field(default_factory=list)

    @property
    def specificity(self) -> tuple[int, int, int, int]:
        """Sort key: exact names first, then longer globs (more literal characters),
        then rules naming a provider, then file order."""
        glob = is_glob(self.pattern)
        literal = sum(1 for c in self.pattern if c not in _GLOB_CHARS) if glob else 0
        return (1 if glob else 0, -literal, 1 if self.provider is None else 0, self.order)

    def add(self, period: ModelPeriod | CallPeriod, node: Node) -> None:
        for other in self.periods:
            if other.effective_from == period.effective_from:
                when = period.effective_from or "the start (no effective_from)"
                at = node.child("effective_from") if node.has("effective_from") else node
                raise at.error(
                    f"a second entry for {self.pattern!r} in force from {when} "
                    f"(first one at line {other.line})"
                )
        self.periods.append(period)
        self.periods.sort(key=lambda p: p.effective_from or dt.date.min)
        self._starts = [p.effective_from or dt.date.min for p in self.periods]

    def in_force(self, day: dt.date) -> ModelPeriod | CallPeriod | None:
        """The entry in force on ``day`` (UTC), or None when all start later."""
        i = bisect_right(self._starts, day)
        return self.periods[i - 1] if i else None

    def until(self, period: ModelPeriod | CallPeriod) -> dt.date | None:
        i = self.periods.index(period)
        return self.periods[i + 1].effective_from if i + 1 < len(self.periods) else None

    def matches_provider(self, names: tuple[str, ...]) -> bool:
        if self.provider is None:
            return True
        return any(glob_match(self.provider, n) for n in names if n)


@dataclass
class Overrides:
    """A parsed overrides file."""

    file: str
    model_rules: list[Rule]
    call_rules: list[Rule]

    @property
    def source(self) -> str:
        """Price source string written on spans priced from this file."""
        return f"override:{Path(self.file).name}"

    def rules_for_model(self, provider_names: tuple[str, ...], model: str) -> tuple[Rule, ...]:
        """Matching model rules, most specific first (see the module docstring)."""
        return tuple(
            r
            for r in self.model_rules
            if glob_match(r.pattern, model) and r.matches_provider(provider_names)
        )

    def rules_for_call(self, kind: str, name: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.call_rules if r.kind == kind and glob_match(r.pattern, name))

    @property
    def call_kinds(self) -> frozenset[str]:
        return frozenset(r.kind for r in self.call_rules)


def _model_period(item: Node) -> tuple[str | None, str, ModelPeriod]:
    item.check_keys(_MODEL_KEYS)
    model = item.get_str("model", required=True)
    if not model or not model.strip():
        raise item.child("model").error("must not be empty")
    provider = item.get_str("provider")
    prices = {k: item.get_decimal(k) for k in ("input", "output", "cache_read", "cache_write")}
    discount = item.get_decimal("discount_percent", maximum=HUNDRED)
    if any(v is not None for v in prices.values()):
        for key in ("input", "output"):
            if prices[key] is None:
                raise item.error(
                    "required key is missing (an entry with token prices needs "
                    "input and output, USD per million tokens)",
                    key=key,
                )
    elif discount is None:
        raise item.error(
            f"entry for {model!r} has no prices: give input and output (USD per "
            "million tokens) or discount_percent"
        )
    period = ModelPeriod(
        effective_from=item.get_date("effective_from"),
        input=prices["input"],
        output=prices["output"],
        cache_read=prices["cache_read"],
        cache_write=prices["cache_write"],
        discount_percent=discount,
        line=item.line,
        note=item.get_str("note"),
    )
    return (provider.strip().lower() if provider else None), model.strip().lower(), period


def _call_period(item: Node) -> tuple[str, str, CallPeriod]:
    item.check_keys(_CALL_KEYS)
    db_system, tool = item.get_str("db_system"), item.get_str("tool")
    if (db_system is None) == (tool is None):
        raise item.error(
            "give exactly one of db_system (vector database, matches "
            "db.system.name) or tool (matches gen_ai.tool.name)"
        )
    kind, name = ("db_system", db_system) if db_system is not None else ("tool", tool)
    assert name is not None
    if not name.strip():
        raise item.child(kind).error("must not be empty")
    per_call = item.get_decimal("per_call", required=True)
    assert per_call is not None
    period = CallPeriod(item.get_date("effective_from"), per_call, item.line, item.get_str("note"))
    return kind, name.strip().lower(), period


def parse(root: Node) -> Overrides:
    """Validate a loaded overrides document (see the module docstring for the format)."""
    if not root.is_mapping():
        raise root.error("expected a mapping with 'models' and/or 'calls'")
    root.check_keys(_TOP_KEYS)
    rules: dict[tuple[str, str | None, str], Rule] = {}
    for item in root.list("models"):
        provider, pattern, period = _model_period(item)
        key = ("model", provider, pattern)
        rule = rules.setdefault(key, Rule("model", provider, pattern, len(rules)))
        rule.add(period, item)
    for item in root.list("calls"):
        kind, pattern, call = _call_period(item)
        key = (kind, None, pattern)
        rule = rules.setdefault(key, Rule(kind, None, pattern, len(rules)))
        rule.add(call, item)
    ordered = sorted(rules.values(), key=lambda r: r.specificity)
    return Overrides(
        file=root.file,
        model_rules=[r for r in ordered if r.kind == "model"],
        call_rules=[r for r in ordered if r.kind != "model"],
    )


def load_overrides(path: str | Path) -> Overrides:
    """Load and validate ``path``; raises :class:`ConfigError` (file:line: key: problem)."""
    return parse(yamlconf.load(path))


__all__ = [
    "CallPeriod",
    "ConfigError",
    "ModelPeriod",
    "Overrides",
    "Rule",
    "load_overrides",
    "parse",
]
