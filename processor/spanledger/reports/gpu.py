"""``report gpu``: each GPU pool's cost and who used it, one row per pool x group.

The same allocation ``report spend --gpu-costs`` adds to the charge, shown by
itself: a pool's rows add up to its cost over the period, an idle pool is one
``(idle GPU)`` row, and the TOTAL is the GPU bill of the period.
"""

from __future__ import annotations

from typing import Any

from spanledger.reports.chargeback import label
from spanledger.reports.gpu_costs import GpuCosts, allocate_gpu
from spanledger.reports.period import Period
from spanledger.reports.queries import NO_TABLES, fetch_model_usage, missing_rollups
from spanledger.reports.tabular import Column, Report
from spanledger.store.base import Store


def build_gpu_report(store: Store, costs: GpuCosts, period: Period, dims: tuple[str, ...],
                     env: str | None = None) -> Report:
    missing = bool(missing_rollups(store))
    usage = [] if missing else fetch_model_usage(store, period, dims, env)
    shares = allocate_gpu(costs, usage, period, len(dims))
    columns = [Column("pool", "pool"), Column("gpu", "gpu"),
               *(Column(d, d) for d in dims),
               Column("calls", "calls", "int", total=True),
               Column("tokens", "tokens", "int", total=True),
               Column("span_seconds", "span seconds", "seconds", total=True),
               Column("share", "share of pool", "percent"),
               Column("gpu_cost", "gpu cost", "money", total=True)]
    rows: list[dict[str, Any]] = []
    for s in shares:
        rows.append({"pool": s.pool.name, "gpu": f"{s.pool.gpus} x {s.pool.gpu}",
                     **{d: label(v) for d, v in zip(dims, s.group, strict=True)},
                     "calls": s.calls, "tokens": s.tokens, "span_seconds": s.seconds,
                     "share": s.share, "gpu_cost": s.cost})
    total: dict[str, Any] = {"pool": "TOTAL"}
    for col in columns:
        if col.total:
            total[col.key] = sum(r[col.key] for r in rows)
    notes = [f"{p.name}: {p.cost(period):.2f} USD over the period, shared by "
             f"{p.allocate_by.replace('_', '-')} of {', '.join(p.models)}" for p in costs.pools]
    if missing:
        notes.insert(0, NO_TABLES)
    meta = {"period": period.to_dict(), "by": list(dims), "gpu_costs_file": costs.file}
    return Report("gpu", f"GPU pools {period.label} by {','.join(dims)}", columns, rows, total,
                  notes, meta)
