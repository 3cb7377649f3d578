"""``--gpu-costs FILE``: what self-hosted models cost, from the GPU bill, shared out by use.

A self-hosted Llama has no per-token price list; its cost is GPUs by the hour
(reserved or on demand) or a monthly bill. This file says, per pool, what the
GPUs cost and which models they serve; each team then pays the pool's cost in
proportion to its share of the pool's tokens (input + output) or of the time
its calls kept the pool busy (span seconds), as ``allocate_by`` says. Shares are
exact at 1e-12 USD and sum to the pool's cost; a pool nobody used in the period
is its own ``(idle GPU)`` row, so nothing of the GPU bill disappears.

Loaded through :mod:`spanledger.yamlconf` (``file:line: key: problem``, exit 2).
Example with every key: ``collector-config/gpu-costs.example.yaml``.
"""

from __future__ import annotations

import calendar
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal

from spanledger import yamlconf
from spanledger.pricing.types import USD_QUANTUM
from spanledger.reports.chargeback import IDLE_GPU, allocate
from spanledger.reports.period import Period
from spanledger.reports.queries import ModelUsageRow

AllocateBy = Literal["tokens", "span_seconds"]
ALLOCATE_BY: tuple[AllocateBy, ...] = ("tokens", "span_seconds")


@dataclass(frozen=True, slots=True)
class Pool:
    name: str
    gpu: str
    gpus: int
    #: USD per GPU-hour (with ``hours``, or every hour of the month when reserved)
    hourly: Decimal | None
    #: GPU-hours per month at ``hourly`` (None: gpus x 24 x days, i.e. reserved)
    hours: Decimal | None
    #: USD per month for the whole pool (instead of hourly)
    monthly: Decimal | None
    #: model name globs the pool serves (case-insensitive)
    models: tuple[str, ...]
    allocate_by: AllocateBy

    def month_cost(self, year: int, month: int) -> Decimal:
        if self.monthly is not None:
            return self.monthly
        assert self.hourly is not None
        hours = self.hours
        if hours is None:
            hours = Decimal(self.gpus * 24 * calendar.monthrange(year, month)[1])
        return hours * self.hourly

    def cost(self, period: Period) -> Decimal:
        """The pool's cost over ``period`` (each month prorated by the days covered)."""
        return period.prorate_monthly({(y, m): self.month_cost(y, m)
                                       for y, m, _ in period.months()})

    def serves(self, model: str) -> bool:
        name = model.lower()
        return any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in self.models)


@dataclass(frozen=True, slots=True)
class GpuCosts:
    file: str
    pools: tuple[Pool, ...]

    def pool_of(self, model: str) -> Pool | None:
        """The first pool (in file order) that serves ``model``."""
        return next((p for p in self.pools if p.serves(model)), None)

    def serves(self, model: str) -> bool:
        return self.pool_of(model) is not None


@dataclass(frozen=True, slots=True)
class GpuShare:
    """One group's part of one pool (``group`` is all IDLE_GPU for an unused pool)."""

    pool: Pool
    group: tuple[str, ...]
    calls: int
    tokens: int
    seconds: Decimal
    share: Decimal | None
    cost: Decimal


def allocate_gpu(costs: GpuCosts, usage: Iterable[ModelUsageRow], period: Period,
                 width: int) -> list[GpuShare]:
    """Every pool's cost over ``period`` split among the groups that used its models.

    ``width`` is the number of group dimensions (for the idle row's key).
    """
    rows = list(usage)
    out: list[GpuShare] = []
    for pool in costs.pools:
        total = pool.cost(period)
        by_group: dict[tuple[str, ...], list[int]] = {}
        for r in rows:
            if costs.pool_of(r.model) is not pool:
                continue
            acc = by_group.setdefault(r.group, [0, 0, 0])
            acc[0] += r.calls
            acc[1] += r.tokens
            acc[2] += r.duration_ns
        groups = sorted(by_group)
        index = 1 if pool.allocate_by == "tokens" else 2
        weights = [by_group[g][index] for g in groups]
        parts = allocate(total, weights, USD_QUANTUM) if groups else None
        if parts is None:
            out.append(GpuShare(pool, (IDLE_GPU,) * width, 0, 0, Decimal(0), None, total))
            continue
        weight_sum = sum(weights)
        for g, part, w in zip(groups, parts, weights, strict=True):
            calls, tokens, ns = by_group[g]
            out.append(GpuShare(pool, g, calls, tokens, Decimal(ns) / 1_000_000_000,
                                Decimal(w) * 100 / weight_sum, part))
    return out


def _pool(node: yamlconf.Node, default_by: AllocateBy) -> Pool:
    if not node.is_mapping():
        raise node.error("expected a mapping with pool, gpu, models and hourly or monthly")
    node.check_keys({"pool", "gpu", "gpus", "hourly", "hours", "monthly", "models",
                     "allocate_by"})
    name = node.get_str("pool", required=True)
    gpu = node.get_str("gpu", required=True)
    gpus = node.get_int("gpus", 1, minimum=1)
    hourly = node.get_decimal("hourly")
    hours = node.get_decimal("hours")
    monthly = node.get_decimal("monthly")
    if (hourly is None) == (monthly is None):
        raise node.error("give exactly one of hourly (USD per GPU-hour) or monthly (USD per "
                         "month for the pool)")
    if hours is not None and hourly is None:
        raise node.error("hours applies with hourly only", key="hours")
    models = tuple(node.get_str_list("models"))
    if not models:
        raise node.error("name the models the pool serves (globs allowed)", key="models")
    by = node.get_str("allocate_by", default_by)
    if by not in ALLOCATE_BY:
        raise node.error(f"expected one of: {', '.join(ALLOCATE_BY)}, got {by!r}",
                         key="allocate_by")
    assert name is not None and gpu is not None and gpus is not None
    return Pool(name, gpu, gpus, hourly, hours, monthly, models,
                "tokens" if by == "tokens" else "span_seconds")


def load_gpu_costs(path: str | Path) -> GpuCosts:
    root = yamlconf.load(path)
    if not root.is_mapping():
        raise root.error("expected a mapping with 'pools'")
    root.check_keys({"pools", "allocate_by", "currency"})
    if root.get_str("currency", "USD") != "USD":
        raise root.error("only USD is supported", key="currency")
    default_by = root.get_str("allocate_by", "tokens")
    if default_by not in ALLOCATE_BY:
        raise root.error(f"expected one of: {', '.join(ALLOCATE_BY)}, got {default_by!r}",
                         key="allocate_by")
    pools: list[Pool] = []
    for item in root.list("pools", required=True):
        pool = _pool(item, "tokens" if default_by == "tokens" else "span_seconds")
        if any(p.name == pool.name for p in pools):
            raise item.error(f"duplicate pool {pool.name!r}", key="pool")
        pools.append(pool)
    if not pools:
        raise root.error("name at least one pool", key="pools")
    return GpuCosts(str(path), tuple(pools))


def pool_models(costs: GpuCosts, models: Sequence[str]) -> list[str]:
    """The models (of ``models``) some pool serves."""
    return sorted({m for m in models if costs.serves(m)})
