"""The bill and the metered calls side by side, one row per day x provider x model x token type.

Rows are keyed the same way on both sides: the provider's genai-prices id, the
model's genai-prices id (so ``gpt-4o-2024-08-06`` on the bill meets ``gpt-4o`` on
the spans), the UTC day and the token type. A model whose bill lines have no
token type is compared on all its tokens at once. Only what the bill covers is
compared: the providers and days in the exports, and embeddings only when an
export of that provider reports them (a completions usage report does not).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from spanledger.reconcile.formats import ALL, REQUESTS, TOKEN_TYPES
from spanledger.reconcile.metered import MeteredRow
from spanledger.reconcile.readers import BillLine, Export
from spanledger.reports.model_keys import model_key, provider_key

ZERO = Decimal(0)
Key = tuple[dt.date, str, str, str]


@dataclass(slots=True)
class BillSide:
    """What the provider's exports say about one key (None: no export of that kind covers it)."""

    amount: Decimal | None = None
    tokens: int | None = None
    requests: int = 0
    #: billed amount and tokens per service tier (standard, batch, priority, flex)
    tier_amounts: dict[str, Decimal] = field(default_factory=dict)
    tier_tokens: dict[str, int] = field(default_factory=dict)
    #: billed amount and tokens of priced variants of the type ("1h" cache writes)
    variant_amounts: dict[str, Decimal] = field(default_factory=dict)
    variant_tokens: dict[str, int] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)

    def add(self, line: BillLine) -> None:
        self.sources.append(line.source)
        if line.model:
            self.names.add(line.model)
        if line.amount is not None:
            self.amount = (self.amount or ZERO) + line.amount
            self.tier_amounts[line.tier] = self.tier_amounts.get(line.tier, ZERO) + line.amount
            if line.variant:
                self.variant_amounts[line.variant] = self.variant_amounts.get(
                    line.variant, ZERO) + line.amount
        if line.tokens is not None:
            self.tokens = (self.tokens or 0) + line.tokens
            self.tier_tokens[line.tier] = self.tier_tokens.get(line.tier, 0) + line.tokens
            if line.variant:
                self.variant_tokens[line.variant] = self.variant_tokens.get(
                    line.variant, 0) + line.tokens
        if line.requests is not None:
            self.requests += line.requests


@dataclass(slots=True)
class MeteredSide:
    """What spanledger metered for one key."""

    cost: Decimal = ZERO
    tokens: int = 0
    unpriced_tokens: int = 0
    unpriced_calls: int = 0
    priced_calls: int = 0
    override_calls: int = 0
    reasoning: int = 0
    names: set[str] = field(default_factory=set)

    @property
    def all_tokens(self) -> int:
        return self.tokens + self.unpriced_tokens

    def add(self, r: MeteredRow, types: Sequence[str]) -> None:
        self.names.add(r.model)
        tokens = sum(r.tokens(t) for t in types)
        if "output" in types:
            self.reasoning += r.reasoning
        if r.status == "priced":
            self.cost += sum((r.cost(t) for t in types), ZERO)
            self.tokens += tokens
            self.priced_calls += r.calls
            self.override_calls += r.override_calls
        else:
            self.unpriced_tokens += tokens
            self.unpriced_calls += r.calls


@dataclass(frozen=True, slots=True)
class Explanation:
    """One cause of a row's difference and how much of it it accounts for."""

    kind: str
    text: str
    #: money this cause accounts for (billed minus metered direction); None on usage-only rows
    amount: Decimal | None = None
    tokens: int | None = None
    #: False: a finding that is not an explanation (metered tokens the bill does not have)
    explains: bool = True


@dataclass(slots=True)
class Row:
    day: dt.date
    provider: str
    model: str
    token_type: str
    bill: BillSide
    metered: MeteredSide
    #: USD per token of this type, from the metered calls or else the catalog (None: unknown)
    unit: Decimal | None = None
    #: what the bill should say given the explanations so far (None: no money on the bill)
    expected: Decimal | None = None
    explanations: list[Explanation] = field(default_factory=list)
    unexplained: Decimal | None = None
    unexplained_tokens: int | None = None

    @property
    def key(self) -> Key:
        return (self.day, self.provider, self.model, self.token_type)

    @property
    def display_model(self) -> str:
        names = sorted(self.bill.names) or sorted(self.metered.names)
        return names[0] if names else self.model

    @property
    def variance(self) -> Decimal | None:
        return None if self.bill.amount is None else self.bill.amount - self.metered.cost

    @property
    def token_variance(self) -> int | None:
        return None if self.bill.tokens is None else self.bill.tokens - self.metered.all_tokens

    @property
    def reason(self) -> str:
        parts = [e.text for e in self.explanations]
        if self.unexplained or self.unexplained_tokens:
            parts.append("(unexplained)")
        return "; ".join(parts)

    @property
    def empty(self) -> bool:
        """Nothing on either side (a usage line of zero tokens)."""
        return not (self.bill.amount or self.bill.tokens or self.bill.requests
                    or self.metered.cost or self.metered.all_tokens)


@dataclass(frozen=True, slots=True)
class Coverage:
    """Which providers and days each kind of export covers."""

    cost: frozenset[tuple[str, dt.date]]
    usage: frozenset[tuple[str, dt.date]]
    embeddings: frozenset[tuple[str, dt.date]]
    #: (provider, day) whose token counts include embeddings
    usage_embeddings: frozenset[tuple[str, dt.date]]

    @classmethod
    def of(cls, exports: Iterable[Export]) -> Coverage:
        cost: set[tuple[str, dt.date]] = set()
        usage: set[tuple[str, dt.date]] = set()
        embed: set[tuple[str, dt.date]] = set()
        usage_embed: set[tuple[str, dt.date]] = set()
        for e in exports:
            for line in e.lines:
                key = (line.provider, line.day)
                (cost if e.kind == "cost" else usage).add(key)
                if e.covers_embeddings:
                    embed.add(key)
                    if e.kind == "usage" or line.tokens is not None:
                        usage_embed.add(key)
        return cls(frozenset(cost), frozenset(usage), frozenset(embed), frozenset(usage_embed))

    def covers(self, provider: str, day: dt.date, embeddings: bool) -> bool:
        key = (provider, day)
        if key not in self.cost and key not in self.usage:
            return False
        return not embeddings or key in self.embeddings

    def counts_tokens(self, provider: str, day: dt.date, embeddings: bool) -> bool:
        """Whether an export counts this key's tokens (a missing key then means zero)."""
        key = (provider, day)
        return key in self.usage and (not embeddings or key in self.usage_embeddings)


def build_rows(exports: Sequence[Export], metered: Iterable[MeteredRow],
               days: tuple[dt.date, dt.date] | None = None) -> list[Row]:
    """Bill lines and metered calls joined per key, limited to what the exports cover.

    ``days`` (first, last) narrows both sides to a report period.
    """
    coverage = Coverage.of(exports)
    lines = [ln for e in exports for ln in e.lines
             if days is None or days[0] <= ln.day <= days[1]]
    # a model whose bill lines have no token type is compared on all its tokens
    untyped = {(ln.day, ln.provider, model_key(ln.provider, ln.model)) for ln in lines
               if ln.token_type == ALL}
    rows: dict[Key, Row] = {}
    embedding_keys: set[Key] = set()

    def row(day: dt.date, provider: str, model: str, token_type: str) -> Row:
        key = (day, provider, model, token_type)
        r = rows.get(key)
        if r is None:
            bill = BillSide(amount=ZERO if (provider, day) in coverage.cost else None)
            r = rows[key] = Row(day, provider, model, token_type, bill, MeteredSide())
        return r

    for ln in lines:
        mkey = model_key(ln.provider, ln.model) if ln.model else ln.model
        token_type = ln.token_type
        if token_type in TOKEN_TYPES and (ln.day, ln.provider, mkey) in untyped:
            token_type = ALL
        row(ln.day, ln.provider, mkey, token_type).bill.add(ln)
    for m in metered:
        provider = provider_key(m.provider)
        if days is not None and not days[0] <= m.day <= days[1]:
            continue
        if not coverage.covers(provider, m.day, m.embeddings):
            continue
        mkey = model_key(provider, m.model)
        types = [ALL] if (m.day, provider, mkey) in untyped else [
            t for t in TOKEN_TYPES if m.tokens(t) or m.cost(t)]
        for t in types:
            r = row(m.day, provider, mkey, t)
            r.metered.add(m, TOKEN_TYPES if t == ALL else (t,))
            if m.embeddings:
                embedding_keys.add(r.key)
    for r in rows.values():
        if r.bill.tokens is None and r.token_type != REQUESTS and coverage.counts_tokens(
                r.provider, r.day, r.key in embedding_keys):
            r.bill.tokens = 0
    return sorted((r for r in rows.values() if not r.empty), key=lambda r: (
        r.day, r.provider, r.model, _TYPE_ORDER.get(r.token_type, 9)))


_TYPE_ORDER = {t: i for i, t in enumerate((*TOKEN_TYPES, ALL, REQUESTS))}
