"""``spanledger.configure()``: the one-line setup.

Builds ``TracerProvider -> CostSpanProcessor -> BatchSpanProcessor -> OTLP
exporter`` and makes it the global provider. Everything not passed explicitly
comes from the standard ``OTEL_*`` variables, read by the SDK and the
exporters themselves (service name and resource attributes by
``Resource.create``; endpoint, headers, timeout, compression, certificates by
the OTLP exporter), so a service configured for any OpenTelemetry backend
keeps its settings. Only the protocol choice is ours to read, because it picks
the exporter class; like the SDK's own configurator we default to gRPC.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from spanledger import semconv

from . import baggage_trust, sdk_access
from .cost_processor import CostSpanProcessor

__all__ = ["configure", "ensure_propagators", "otlp_exporter"]

logger = logging.getLogger("spanledger.processor")

_GRPC = "grpc"
_HTTP = ("http/protobuf", "http")


def otlp_exporter(*, endpoint: str | None = None, protocol: str | None = None,
                  headers: dict[str, str] | None = None) -> SpanExporter:
    """The OTLP span exporter for ``protocol``.

    The protocol is the argument, else OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL, else grpc.

    An explicit HTTP ``endpoint`` without a path gets ``/v1/traces`` appended
    (the exporter appends it only to the env variable form).
    """
    proto = (protocol or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
             or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or _GRPC).strip().lower()
    kwargs: dict[str, Any] = {}
    if headers:
        kwargs["headers"] = headers
    if proto == _GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        if endpoint:
            kwargs["endpoint"] = endpoint
            if endpoint.startswith("http://"):
                kwargs["insecure"] = True
        return GrpcExporter(**kwargs)
    if proto in _HTTP:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        if endpoint:
            base = endpoint.rstrip("/")
            path = base.split("://", 1)[-1].partition("/")[2]
            kwargs["endpoint"] = base if path else base + "/v1/traces"
        return HttpExporter(**kwargs)
    raise ValueError(f"unsupported OTLP protocol {proto!r}: use 'grpc' or 'http/protobuf'")


def ensure_propagators() -> None:
    """Keep W3C tracecontext + baggage in the global propagator.

    Attribution travels to downstream services as W3C baggage; the SDK's
    default propagators carry it, but an ``OTEL_PROPAGATORS`` without
    ``baggage`` would silently drop it. Missing ones are appended (others,
    e.g. b3, are kept); ``OTEL_PROPAGATORS=none`` is respected. Then the whole is
    wrapped in the check of inbound attribution (:mod:`.baggage_trust`), so no
    baggage extractor added here runs after it.
    """
    if os.environ.get("OTEL_PROPAGATORS", "").strip().lower() == "none":
        return
    current = propagate.get_global_textmap()
    carried = current.fields  # the headers it writes (a composite: all of its members')
    added = [p for p in (TraceContextTextMapPropagator(), W3CBaggagePropagator())
             if not p.fields <= carried]
    if added:
        members = sdk_access.propagator_members(current)  # kept flat while the SDK allows
        logger.info("spanledger: adding %s to the global propagators (attribution needs baggage)",
                    ", ".join(type(p).__name__ for p in added))
        propagate.set_global_textmap(CompositePropagator(members + added))
    baggage_trust.install(None)


def configure(
    *,
    service_name: str | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    prices: str | None = None,
    attribution_keys: Iterable[str] | None = None,
    require: Iterable[str] | None = None,
    exporter: SpanExporter | None = None,
    headers: dict[str, str] | None = None,
    resource_attributes: dict[str, Any] | None = None,
    catalog: Any = None,
    batch: bool = True,
    set_global: bool = True,
    max_traces: int = 10_000,
    max_age_s: float = 3600.0,
    semconv_cost: bool | None = None,
    trust_baggage: str | None = None,
    baggage_keys: str | Mapping[str, str] | None = None,
    teams: Iterable[str] | None = None,
) -> TracerProvider:
    """Set up tracing with cost attribution in one call; returns the TracerProvider.

    Every option is keyword-only, so options can be added or reordered without
    breaking a caller (``configure("svc")`` is a TypeError: write
    ``configure(service_name="svc")``).

    Args:
        service_name: ``service.name`` (else OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES).
        endpoint: OTLP endpoint (else OTEL_EXPORTER_OTLP[_TRACES]_ENDPOINT, else the default).
        protocol: ``grpc`` or ``http/protobuf`` (else OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL,
            else grpc).
        prices: an overrides YAML file (else SPANLEDGER_PRICES_FILE).
        attribution_keys: baggage keys copied to ``spanledger.<key>``.
        require: attribution keys every LLM call should carry (logged + counted when missing).
        exporter: use this exporter instead of OTLP (tests, console).
        headers: OTLP export headers (else OTEL_EXPORTER_OTLP[_TRACES]_HEADERS).
        resource_attributes: extra resource attributes (``service_name`` wins over a
            ``service.name`` given here).
        catalog: a ready ``PriceCatalog`` (else built from ``prices``).
        batch: False exports synchronously (SimpleSpanProcessor), for scripts and tests.
        set_global: False returns the provider without making it global.
        max_traces / max_age_s: bounds of the processor's per-trace state.
        semconv_cost: also write the cost as ``gen_ai.usage.cost.amount`` / ``.currency``
            (the names the GenAI conventions are converging on); else SPANLEDGER_SEMCONV_COST.
        trust_baggage: attribution in baggage from outside: ``signed`` (default: only with a
            valid signature), ``all`` or ``none``; else SPANLEDGER_TRUST_BAGGAGE.
        baggage_keys: ``"secret"`` or ``"id:secret,id2:secret2"``: ``attribute()`` signs with
            the first, inbound signatures verify with any; else SPANLEDGER_BAGGAGE_KEYS.
        teams: the closed list of teams a span may name; else SPANLEDGER_TEAMS.
    """
    attrs: dict[str, Any] = dict(resource_attributes or {})
    if service_name:
        attrs[semconv.SERVICE_NAME] = service_name
    resource = Resource.create(attrs)
    if exporter is None:
        exporter = otlp_exporter(endpoint=endpoint, protocol=protocol, headers=headers)
    export: SpanProcessor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    processor = CostSpanProcessor(
        export,
        catalog=catalog,
        prices=prices,
        attribution_keys=attribution_keys,
        require=require,
        max_traces=max_traces,
        max_age_s=max_age_s,
        semconv_cost=semconv_cost,
        trust_baggage=trust_baggage,
        baggage_keys=baggage_keys,
        teams=teams,
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(processor)
    ensure_propagators()
    if set_global:
        trace.set_tracer_provider(provider)
    return provider
