"""spanledger: cost and ownership for every LLM call, on OpenTelemetry + ClickHouse.

Public API:

- :func:`configure` sets up a TracerProvider with the cost processor and an OTLP exporter.
- :func:`attribute` (context manager / decorator) puts team, feature, customer,
  user and cost_center into W3C baggage so every span below is attributed.
- :class:`CostSpanProcessor` for users who build their own provider.
- :func:`outcome` records a business outcome (a resolved ticket, a conversion) on the
  current run, or on the run whose trace id it is given, for cost per outcome.
- :func:`guard` (context manager / decorator) limits what one agent run may
  spend: :class:`BudgetExceeded` is raised before the call that would pass it.
- :func:`watch_budgets` applies the budgets file's run limits and hard stops,
  polled from the collector's ``/budgets/state``.

The names are loaded lazily so ``spanledger`` commands that never trace
(reports, db) do not pay for importing the SDK and the price catalog.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["BudgetExceeded", "CostSpanProcessor", "attribute", "configure", "guard", "outcome",
           "watch_budgets"]

if TYPE_CHECKING:
    from spanledger.processor.attribution import attribute
    from spanledger.processor.cost_processor import CostSpanProcessor
    from spanledger.processor.guard import BudgetExceeded, guard, watch_budgets
    from spanledger.processor.outcome import outcome
    from spanledger.processor.setup import configure

_LAZY = {
    "attribute": "spanledger.processor.attribution",
    "CostSpanProcessor": "spanledger.processor.cost_processor",
    "configure": "spanledger.processor.setup",
    "outcome": "spanledger.processor.outcome",
    "guard": "spanledger.processor.guard",
    "BudgetExceeded": "spanledger.processor.guard",
    "watch_budgets": "spanledger.processor.guard",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spanledger' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
