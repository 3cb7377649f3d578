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
  for an exporter. That configuration is the SDK's private
  ``_OTelSDKConfigurator`` (what every distro builds on), reached through
  :func:`spanledger.processor.sdk_access.sdk_configurator`: should a release
  drop it or its ``export_span_processor`` option, tracing is set up by
  :func:`spanledger.configure` instead (OTLP traces; logged, counted).

spanledger's own settings come from the environment: ``SPANLEDGER_PRICES_FILE``
(overrides YAML), ``SPANLEDGER_ATTRIBUTION_KEYS`` and ``SPANLEDGER_REQUIRE``
(comma-separated baggage keys), and which attribution from outside is trusted
(:mod:`.baggage_trust`): ``SPANLEDGER_TRUST_BAGGAGE`` (``signed``, the default,
``all`` or ``none``), ``SPANLEDGER_BAGGAGE_KEYS`` (``secret`` or
``id:secret,id2:secret2``; the first signs) and ``SPANLEDGER_TEAMS`` (a closed,
comma-separated list of teams).
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
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from . import sdk_access
from .cost_processor import CostSpanProcessor
from .setup import configure, ensure_propagators

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


class SpanledgerConfigurator:
    """What ``opentelemetry-instrument`` calls: the SDK's configurator with the cost processor
    in front of each exporter's batch processor (or ``configure()`` when the SDK's is gone)."""

    def configure(self, **kwargs: Any) -> None:
        sdk_configurator = sdk_access.sdk_configurator()
        if sdk_configurator is not None:
            kwargs.setdefault("export_span_processor", cost_processor_factory)
            sdk_configurator().configure(**kwargs)
        elif os.environ.get(OTEL_TRACES_EXPORTER, "otlp").strip().lower() != "none":
            configure(attribution_keys=_env_list("SPANLEDGER_ATTRIBUTION_KEYS"),
                      require=_env_list("SPANLEDGER_REQUIRE"))
        ensure_propagators()
