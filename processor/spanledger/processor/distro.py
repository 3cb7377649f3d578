"""Zero-code setup: ``opentelemetry-instrument python app.py`` with spanledger installed.

``opentelemetry-instrument`` loads one ``opentelemetry_distro`` and one
``opentelemetry_configurator`` entry point (pyproject declares ours). When
other distros are installed too (e.g. opentelemetry-distro), pick ours with
``OTEL_PYTHON_DISTRO=spanledger OTEL_PYTHON_CONFIGURATOR=spanledger``.

- :class:`SpanledgerDistro` sets defaults like OpenTelemetryDistro does, but
  only for traces (metrics/logs default to ``none``: spanledger's collector
  takes traces).
- :class:`SpanledgerConfigurator` runs the SDK's standard configuration (every
  ``OTEL_*`` variable, exporters chosen by ``OTEL_TRACES_EXPORTER``) and puts a
  :class:`CostSpanProcessor` in front of each batch processor the SDK creates
  for an exporter.

spanledger's own settings come from the environment: ``SPANLEDGER_PRICES_FILE``
(overrides YAML), ``SPANLEDGER_ATTRIBUTION_KEYS`` and ``SPANLEDGER_REQUIRE``
(comma-separated baggage keys).
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.environment_variables import (
    OTEL_LOGS_EXPORTER,
    OTEL_METRICS_EXPORTER,
    OTEL_TRACES_EXPORTER,
)
from opentelemetry.instrumentation.distro import BaseDistro
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from .cost_processor import CostSpanProcessor
from .setup import ensure_propagators

__all__ = ["SpanledgerConfigurator", "SpanledgerDistro", "cost_processor_factory"]


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    return [item.strip() for item in raw.split(",") if item.strip()]


def cost_processor_factory(exporter: SpanExporter) -> SpanProcessor:
    """Called by the SDK per configured exporter: CostSpanProcessor(BatchSpanProcessor(exp))."""
    return CostSpanProcessor(
        BatchSpanProcessor(exporter),
        attribution_keys=_env_list("SPANLEDGER_ATTRIBUTION_KEYS"),
        require=_env_list("SPANLEDGER_REQUIRE"),
    )


class SpanledgerDistro(BaseDistro):
    """Defaults for ``opentelemetry-instrument``: OTLP traces, nothing else unless asked."""

    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault(OTEL_TRACES_EXPORTER, "otlp")
        os.environ.setdefault(OTEL_METRICS_EXPORTER, "none")
        os.environ.setdefault(OTEL_LOGS_EXPORTER, "none")


class SpanledgerConfigurator(_OTelSDKConfigurator):
    """The SDK's configurator, the cost processor in front of each exporter's batch processor."""

    def _configure(self, **kwargs: Any) -> None:
        kwargs.setdefault("export_span_processor", cost_processor_factory)
        super()._configure(**kwargs)
        ensure_propagators()
