"""Helpers for the deploy tests: Grafana macro expansion, a migrated chdb store
filled with demo-like spans, and loaders for the files under ``deploy/``.

Why this exists: nothing in ``deploy/`` can run here (no Docker, Kubernetes or
Grafana), so the tests check the files statically and run every dashboard
query on the embedded ClickHouse engine. The macro expander below mirrors the
grafana-clickhouse-datasource backend (pkg/macros/macros.go) for exactly the
macros our dashboards use, and refuses anything else, so a dashboard cannot
quietly depend on a macro the tests never expanded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from spanledger.store import Store

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
PROVISIONING = DEPLOY / "grafana" / "provisioning"
COMPOSE = DEPLOY / "compose"
KUBERNETES = DEPLOY / "kubernetes"
CONTRIB_CONFIG = REPO / "collector-config" / "otelcol-contrib.yaml"

#: the datasource uid every dashboard panel must point at (see provisioning)
DATASOURCE_UID = "spanledger-clickhouse"
DATASOURCE_TYPE = "grafana-clickhouse-datasource"


# --------------------------------------------------------------------------
# Grafana macro and variable expansion
# --------------------------------------------------------------------------


class UnknownMacro(ValueError):
    """A dashboard uses a ``$__macro`` (or variable) this expander does not know."""


@dataclass(frozen=True)
class GrafanaContext:
    """What Grafana would hand the datasource for one panel refresh."""

    time_from: datetime
    time_to: datetime
    interval_s: int = 3600
    variables: Mapping[str, str] = field(default_factory=dict)
    #: variables whose selection is "All", mapped to the variable's custom allValue.
    #: Grafana substitutes a custom all value as written, without applying the
    #: ``:format`` (so our dashboards give it as a quoted SQL literal).
    all_selected: Mapping[str, str] = field(default_factory=dict)


def _to_datetime(t: datetime) -> str:
    return f"toDateTime({int(t.timestamp())})"


def _to_date(t: datetime) -> str:
    return f"toDate('{t.astimezone(UTC).strftime('%Y-%m-%d')}')"


def _sqlstring(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


#: name -> (number of arguments, expansion); exactly the macros our dashboards use
def _macros(ctx: GrafanaContext) -> dict[str, tuple[int, Any]]:
    return {
        "timeFilter": (
            1,
            lambda c: (
                f"{c} >= {_to_datetime(ctx.time_from)} AND {c} <= {_to_datetime(ctx.time_to)}"
            ),
        ),
        "dateFilter": (
            1,
            lambda c: f"{c} >= {_to_date(ctx.time_from)} AND {c} <= {_to_date(ctx.time_to)}",
        ),
        "timeInterval": (
            1,
            lambda c: (
                f"toStartOfInterval(toDateTime({c}), INTERVAL {max(ctx.interval_s, 1)} second)"
            ),
        ),
        "fromTime": (0, lambda: _to_datetime(ctx.time_from)),
        "toTime": (0, lambda: _to_datetime(ctx.time_to)),
    }


_MACRO = re.compile(r"\$__(\w+)(\(([^()]*)\))?")
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")


def expand_grafana(sql: str, ctx: GrafanaContext) -> str:
    """``sql`` as the datasource would send it to ClickHouse.

    Raises UnknownMacro for a macro or variable not covered here, for a
    variable format other than ``raw``/``sqlstring``, and for a wrong number
    of macro arguments (the plugin rejects those too).
    """
    macros = _macros(ctx)

    def macro(m: re.Match[str]) -> str:
        name, has_args, raw_args = m.group(1), m.group(2), m.group(3)
        if name not in macros:
            raise UnknownMacro(f"unknown Grafana macro $__{name}")
        arity, fn = macros[name]
        args = [a.strip() for a in raw_args.split(",")] if raw_args and raw_args.strip() else []
        if arity == 0:
            if args:
                raise UnknownMacro(f"$__{name} takes no arguments")
            # `$__fromTime()` and `$__fromTime` both expand; keep the brackets out.
            return str(fn())
        if not has_args or len(args) != arity:
            raise UnknownMacro(f"$__{name} expects {arity} argument(s), got {len(args)}")
        return str(fn(*args))

    sql = _MACRO.sub(macro, sql)

    def variable(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        fmt = m.group(2) or "raw"
        if name.startswith("__"):
            raise UnknownMacro(f"unknown Grafana macro ${name}")
        if name in ctx.all_selected:
            return ctx.all_selected[name]
        if name not in ctx.variables:
            raise UnknownMacro(f"unknown dashboard variable ${name}")
        value = ctx.variables[name]
        if fmt == "raw":
            return value
        if fmt == "sqlstring":
            return _sqlstring(value)
        raise UnknownMacro(f"variable format {fmt!r} of ${name} is not expanded by the tests")

    return _VARIABLE.sub(variable, sql)


# --------------------------------------------------------------------------
# Dashboards
# --------------------------------------------------------------------------


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def iter_query_variables(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            yield var


def variable_sql(var: Mapping[str, Any]) -> str:
    query = var.get("query")
    return query["rawSql"] if isinstance(query, dict) else str(query)


def all_values(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """Custom "All" values of the dashboard's variables that offer All."""
    return {
        var["name"]: var["allValue"]
        for var in dashboard.get("templating", {}).get("list", [])
        if var.get("includeAll") and var.get("allValue") is not None
    }


# --------------------------------------------------------------------------
# Demo-like spans
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """One otel_traces row; only the columns the rollups read."""

    ts: datetime
    trace_id: str
    span_id: str
    parent: str
    name: str
    service: str
    attrs: Mapping[str, str]
    duration_ns: int = 800_000_000
    status_code: str = "Ok"
    environment: str = "production"


def _llm_attrs(
    *,
    team: str,
    feature: str,
    model: str | None,
    tokens: tuple[int, int],
    cost: str | None,
    status: str | None,
    step: int | None = None,
    customer: str = "",
    operation: str = "chat",
) -> dict[str, str]:
    attrs = {
        "gen_ai.provider.name": "openai",
        "gen_ai.operation.name": operation,
        "gen_ai.usage.input_tokens": str(tokens[0]),
        "gen_ai.usage.output_tokens": str(tokens[1]),
    }
    if model:
        attrs["gen_ai.request.model"] = model
        attrs["gen_ai.response.model"] = model
    if team:
        attrs["spanledger.team"] = team
    if feature:
        attrs["spanledger.feature"] = feature
    if customer:
        attrs["spanledger.customer"] = customer
    if status:
        attrs["spanledger.cost.status"] = status
    if cost is not None:
        attrs["gen_ai.usage.cost"] = cost
        attrs["spanledger.cost.input"] = cost
        attrs["spanledger.cost.output"] = "0"
        attrs["spanledger.price.source"] = "genai-prices@0.2.3"
    if step is not None:
        attrs["spanledger.step"] = str(step)
    return attrs


def anchor_time(today: date | None = None) -> datetime:
    """12:00 UTC on the 10th of the current month: recent enough for any TTL,
    and the demo days (anchor minus 0..3 days) never straddle a month, so the
    month-to-date budget panels see them whatever day the tests run."""
    today = today or datetime.now(UTC).date()
    return datetime(today.year, today.month, 10, 12, tzinfo=UTC)


def demo_spans(now: datetime, days: int = 4) -> list[Span]:
    """A small demo-like data set: per day a RAG request (embeddings, a vector search
    priced per call, chat), a looping support agent (aggregate parent + priced steps,
    one error; on day 3 also a tool call without a price and a duplicate span of its
    first step), a call from a service priced by nobody (contrib collector path: no
    status => unpriced), an explicitly unpriced fine-tune, and a plain HTTP span that
    is no LLM call."""
    spans: list[Span] = []
    for day in range(days):
        t0 = now - timedelta(days=day, hours=2)
        d = f"{day:02d}"
        # RAG: embeddings then chat, two steps.
        rag = f"{d}aa" + "0" * 28
        spans.append(
            Span(
                t0,
                rag,
                f"{d}a1" + "0" * 12,
                "",
                "POST /answer",
                "search-api",
                {"http.request.method": "POST", "spanledger.team": "search"},
            )
        )
        spans.append(
            Span(
                t0 + timedelta(milliseconds=10),
                rag,
                f"{d}a2" + "0" * 12,
                f"{d}a1" + "0" * 12,
                "embeddings text-embedding-3-small",
                "search-api",
                _llm_attrs(
                    team="search",
                    feature="rag-answer",
                    model="text-embedding-3-small",
                    tokens=(1200, 0),
                    cost="0.000024000000",
                    status="priced",
                    step=1,
                    operation="embeddings",
                ),
            )
        )
        spans.append(
            Span(
                t0 + timedelta(seconds=1),
                rag,
                f"{d}a3" + "0" * 12,
                f"{d}a1" + "0" * 12,
                "chat gpt-4o-mini",
                "search-api",
                _llm_attrs(
                    team="search",
                    feature="rag-answer",
                    model="gpt-4o-mini",
                    tokens=(3000, 400),
                    cost="0.000690000000",
                    status="priced",
                    step=2,
                    customer="acme",
                ),
            )
        )
        # The RAG request's vector search, priced per call (a vector-database call).
        spans.append(
            Span(
                t0 + timedelta(milliseconds=500),
                rag,
                f"{d}a4" + "0" * 12,
                f"{d}a1" + "0" * 12,
                "search qdrant",
                "search-api",
                {
                    "db.system.name": "qdrant",
                    "db.operation.name": "search",
                    "spanledger.team": "search",
                    "spanledger.feature": "rag-answer",
                    "spanledger.cost.status": "priced",
                    "gen_ai.usage.cost": "0.000020000000",
                    "spanledger.cost.input": "0.000020000000",
                    "spanledger.price.source": "override:prices.yaml",
                },
            )
        )
        # Support agent: one invoke_agent aggregate span and 5 + day priced steps.
        agent = f"{d}bb" + "0" * 28
        root = f"{d}b0" + "0" * 12
        steps = 5 + day
        spans.append(
            Span(
                t0,
                agent,
                root,
                "",
                "invoke_agent triage",
                "agent-worker",
                {
                    **_llm_attrs(
                        team="support",
                        feature="ticket-agent",
                        model="gpt-4o",
                        tokens=(2000 * steps, 300 * steps),
                        cost=None,
                        status="aggregate",
                        operation="invoke_agent",
                    ),
                    "gen_ai.agent.name": "triage",
                    "spanledger.cost.rollup": f"{0.008 * steps:.12f}",
                },
                duration_ns=steps * 2_000_000_000,
            )
        )
        for step in range(1, steps + 1):
            spans.append(
                Span(
                    t0 + timedelta(seconds=2 * step),
                    agent,
                    f"{d}b{step:02d}" + "0" * 11,
                    root,
                    "chat gpt-4o",
                    "agent-worker",
                    {
                        **_llm_attrs(
                            team="support",
                            feature="ticket-agent",
                            model="gpt-4o",
                            tokens=(2000, 300),
                            cost="0.008000000000",
                            status="priced",
                            step=step,
                            customer="globex",
                        ),
                        "gen_ai.agent.name": "triage",
                    },
                    status_code="Error" if step == 3 else "Ok",
                )
            )
        if day == 3:
            # The longest run also called a tool (no per-call price: a tool call whose cost
            # is unknown) and had its first step traced twice (the client SDK's own span:
            # a duplicate, counted once).
            spans.append(
                Span(
                    t0 + timedelta(seconds=3),
                    agent,
                    f"{d}bt1" + "0" * 10,
                    root,
                    "execute_tool lookup",
                    "agent-worker",
                    {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup",
                     "spanledger.team": "support", "spanledger.feature": "ticket-agent",
                     "spanledger.cost.status": "no_usage"},
                )
            )
            first = next(sp for sp in spans if sp.span_id == f"{d}b01" + "0" * 11)
            dup = {k: v for k, v in first.attrs.items()
                   if not k.startswith(("gen_ai.usage.cost", "spanledger.cost.",
                                        "spanledger.price.", "spanledger.step"))}
            dup.update({"spanledger.cost.status": "duplicate",
                        "spanledger.duplicate_of": first.span_id})
            spans.append(Span(first.ts, agent, f"{d}bd1" + "0" * 10, root,
                              "anthropic.messages.create", "agent-worker", dup))
        # A Go service exporting through the contrib collector only: no status.
        spans.append(
            Span(
                t0 + timedelta(minutes=5),
                f"{d}cc" + "0" * 28,
                f"{d}c1" + "0" * 12,
                "",
                "chat acme-llm-7b",
                "legacy-batch",
                _llm_attrs(
                    team="",
                    feature="",
                    model="acme-llm-7b",
                    tokens=(900, 100),
                    cost=None,
                    status=None,
                ),
            )
        )
        # Explicitly unpriced: a fine-tune nobody has a price for yet.
        spans.append(
            Span(
                t0 + timedelta(minutes=7),
                f"{d}dd" + "0" * 28,
                f"{d}d1" + "0" * 12,
                "",
                "chat ft:gpt-4o-mini:growth",
                "growth-mailer",
                _llm_attrs(
                    team="growth",
                    feature="email-drafts",
                    model="ft:gpt-4o-mini:growth",
                    tokens=(500, 250),
                    cost=None,
                    status="unpriced",
                    step=1,
                ),
            )
        )
    return spans


def _map_literal(values: Mapping[str, str]) -> str:
    if not values:
        return "map()"
    return "map(" + ", ".join(f"{_sqlstring(k)}, {_sqlstring(v)}" for k, v in values.items()) + ")"


def insert_spans(store: Store, spans: Iterable[Span]) -> None:
    """Insert into otel_traces (so the materialized views fill the rollups)."""
    rows = []
    for s in spans:
        ts = s.ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        resource = {"service.name": s.service, "deployment.environment.name": s.environment}
        rows.append(
            f"(toDateTime64('{ts}', 9, 'UTC'), {_sqlstring(s.trace_id)}, {_sqlstring(s.span_id)}, "
            f"{_sqlstring(s.parent)}, {_sqlstring(s.name)}, 'Client', {_sqlstring(s.service)}, "
            f"{_map_literal(resource)}, 'opentelemetry.instrumentation.openai', '0.62', "
            f"{_map_literal(s.attrs)}, {s.duration_ns}, {_sqlstring(s.status_code)})"
        )
    store.command(
        "INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind, "
        "ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, "
        "StatusCode) VALUES " + ", ".join(rows)
    )


def day_of(t: datetime) -> date:
    return t.astimezone(UTC).date()


# --------------------------------------------------------------------------
# YAML files
# --------------------------------------------------------------------------


def load_yaml_documents(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


#: keys whose literal value would be a secret; values must be ${VAR} references
_SECRET_KEY = re.compile(r"(password|passwd|secret|token|api[_-]?key)", re.IGNORECASE)
_ENV_REFERENCE = re.compile(r"^\$\{?[A-Za-z_][A-Za-z0-9_]*(:?[?\-][^}]*)?\}?$")


def secret_literals(node: Any, where: str = "") -> list[str]:
    """Places in a parsed YAML/JSON tree where a secret-looking key holds a
    literal value instead of an environment reference (``${VAR}``)."""
    found: list[str] = []
    if isinstance(node, Mapping):
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            if (
                isinstance(value, str | int)
                and not isinstance(value, bool)
                and _SECRET_KEY.search(str(key))
                and str(value).strip()
                and not _ENV_REFERENCE.match(str(value).strip())
            ):
                found.append(f"{here}={value!r}")
            found += secret_literals(value, here)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            if isinstance(item, str) and "=" in item:
                key, _, value = item.partition("=")
                if _SECRET_KEY.search(key) and value and not _ENV_REFERENCE.match(value):
                    found.append(f"{where}[{i}]={item!r}")
            found += secret_literals(item, f"{where}[{i}]")
    return found
