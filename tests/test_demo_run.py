"""`spanledger demo` end to end, in a reduced size, checked by reading the store it wrote.

One demo run (module fixture, ~20 s) in an empty folder; every test reads
its output or its store. Expected costs are computed independently: from the
numbers in collector-config/demo-prices.yaml and from genai_prices directly.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from genai_prices import Usage, calc_price

from spanledger.demo.scenario import RUNAWAY_ROUNDS
from spanledger.resources import data_dir
from support.demo import SMALL_CALLS, SMALL_DAYS, CliRun, query_store, spanledger

TOLERANCE = Decimal("1e-9")
MILLION = Decimal(1_000_000)

QUERIES = {
    "teams": "SELECT DISTINCT Team FROM llm_cost_daily WHERE Team != ''",
    "features": "SELECT DISTINCT Feature FROM llm_cost_daily WHERE Feature != ''",
    "providers": "SELECT DISTINCT Provider FROM llm_cost_daily WHERE Provider != ''",
    "customers": "SELECT DISTINCT Customer FROM llm_cost_daily WHERE Customer != ''",
    "days": "SELECT count(DISTINCT Day), min(Day), max(Day) FROM llm_cost_daily",
    "cached": "SELECT sum(CacheReadTokens), sum(CacheWriteTokens) FROM llm_cost_daily",
    "embeddings": "SELECT count(), countIf(Status = 'priced') FROM llm_calls "
                  "WHERE Operation = 'embeddings'",
    "vector": """
        SELECT c.Status, toString(c.Cost), c.Team, c.Feature
        FROM llm_calls AS c
        INNER JOIN (SELECT SpanId FROM otel_traces
                    WHERE SpanAttributes['db.system.name'] = 'qdrant') AS t USING SpanId""",
    "unpriced": """
        SELECT c.Status, toString(c.Cost), t.has_cost, c.InputTokens
        FROM llm_calls AS c
        INNER JOIN (SELECT SpanId, mapContains(SpanAttributes, 'gen_ai.usage.cost') AS has_cost
                    FROM otel_traces) AS t USING SpanId
        WHERE c.Model = 'acme-intent-ft-v2'""",
    "daily_unpriced": "SELECT sum(Calls), toString(sum(Cost)) FROM llm_cost_daily "
                      "WHERE Model = 'acme-intent-ft-v2' AND Status = 'unpriced'",
    "daily_total": "SELECT toString(sum(Cost)) FROM llm_cost_daily",
    "calls_total": "SELECT toString(sum(Cost)) FROM llm_calls WHERE Status = 'priced'",
    "traces": """
        SELECT TraceId, any(Feature), any(AgentName), sum(Calls), toString(sum(Cost))
        FROM (SELECT TraceId, max(Feature) AS Feature, max(AgentName) AS AgentName,
                     sum(Calls) AS Calls, sum(Cost) AS Cost
              FROM llm_cost_by_trace GROUP BY TraceId)
        GROUP BY TraceId""",
    "llama": "SELECT InputTokens, OutputTokens, toString(Cost), PriceSource FROM llm_calls "
             "WHERE Model = 'acme-llama-3.1-70b' AND Status = 'priced' LIMIT 5",
    "gpt4o": "SELECT InputTokens, OutputTokens, CacheReadTokens, toString(Cost), Timestamp "
             "FROM llm_calls WHERE Model = 'gpt-4o' AND Status = 'priced' LIMIT 5",
    "services": "SELECT DISTINCT ServiceName FROM llm_calls",
    # outcomes per run, with the run's own feature (from its LLM calls) beside them
    "outcomes": """
        SELECT o.RunTraceId, o.Name, o.Outcomes, r.Feature, r.Calls, w.OwnTrace
        FROM (SELECT RunTraceId, Name, sum(Outcomes) AS Outcomes FROM outcomes_by_trace
              GROUP BY RunTraceId, Name) AS o
        LEFT JOIN (SELECT TraceId, max(Feature) AS Feature, sum(Calls) AS Calls
                   FROM llm_cost_by_trace GROUP BY TraceId) AS r ON o.RunTraceId = r.TraceId
        LEFT JOIN (SELECT SpanAttributes['spanledger.outcome.trace_id'] AS Named,
                          any(TraceId) AS OwnTrace, any(ServiceName) AS Service
                   FROM otel_traces WHERE Named != '' GROUP BY Named) AS w
          ON o.RunTraceId = w.Named""",
    "outcome_spans": "SELECT count(), countIf(SpanAttributes['spanledger.team'] != '') "
                     "FROM otel_traces WHERE SpanAttributes['spanledger.outcome.name'] != ''",
}


@dataclass(frozen=True)
class DemoRun:
    folder: Path
    run: CliRun
    rows: dict[str, list[tuple[Any, ...]]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    folder = tmp_path_factory.mktemp("demo")
    run = spanledger(folder, "demo", "--calls", str(SMALL_CALLS), "--days", str(SMALL_DAYS))
    assert run.code == 0, run.stderr[-3000:]
    rows = query_store(folder / "spanledger-data", QUERIES)
    return DemoRun(folder, run, rows)


def _demo_prices() -> dict[str, Any]:
    return yaml.safe_load((data_dir("collector-config") / "demo-prices.yaml").read_text())


def test_sample_company_has_teams_features_providers_customers(demo: DemoRun) -> None:
    teams = {r[0] for r in demo.rows["teams"]}
    assert teams >= {"support", "search", "sales", "ml-platform"}
    assert len({r[0] for r in demo.rows["features"]}) >= 5
    assert {r[0] for r in demo.rows["providers"]} >= {"openai", "anthropic"}
    assert len(demo.rows["customers"]) >= 3
    # one process plays several services (a resource per trace)
    assert {r[0] for r in demo.rows["services"]} >= {"support-api", "search-api",
                                                     "sales-assist", "doc-pipeline"}


def test_backdated_over_the_whole_window(demo: DemoRun) -> None:
    days, first, last = demo.rows["days"][0]
    assert days >= 30
    assert (last - first).days + 1 >= 30
    assert last <= dt.datetime.now(dt.UTC).date()


def test_cached_tokens_embeddings_and_vector_search(demo: DemoRun) -> None:
    cache_read, cache_write = demo.rows["cached"][0]
    assert cache_read > 0 and cache_write > 0
    embeddings, priced = demo.rows["embeddings"][0]
    assert embeddings > 0 and priced == embeddings
    vector = demo.rows["vector"]
    assert vector, "no vector-search rows"
    per_call = Decimal(str(next(c["per_call"] for c in _demo_prices()["calls"]
                                if c.get("db_system") == "qdrant")))
    for status, cost, team, feature in vector:
        assert status == "priced"
        assert Decimal(cost) == per_call
        assert team == "search" and feature in {"docs-qa", "semantic-search"}


def test_unpriced_model_is_visible_and_costs_nothing(demo: DemoRun) -> None:
    rows = demo.rows["unpriced"]
    assert rows
    for status, cost, has_cost, tokens in rows:
        assert status == "unpriced"
        assert Decimal(cost) == 0
        assert has_cost == 0  # no gen_ai.usage.cost attribute at all: not a silent $0
        assert tokens > 0
    calls, cost = demo.rows["daily_unpriced"][0]
    assert calls == len(rows) and Decimal(cost) == 0


def test_daily_rollup_equals_priced_calls_exactly(demo: DemoRun) -> None:
    daily = Decimal(demo.rows["daily_total"][0][0])
    calls = Decimal(demo.rows["calls_total"][0][0])
    assert daily == calls
    assert daily > 0


def test_runaway_agent_is_the_top_trace(demo: DemoRun) -> None:
    traces = [(tid, feature, agent, calls, Decimal(cost))
              for tid, feature, agent, calls, cost in demo.rows["traces"]]
    top = max(traces, key=lambda t: t[4])
    _, feature, agent, calls, cost = top
    assert feature == "ticket-triage" and agent == "triage-agent"
    assert calls >= 2 * RUNAWAY_ROUNDS + 1  # chat + execute_tool per round, then the answer
    peers = sorted(t[4] for t in traces if t[1] == feature)
    median = peers[len(peers) // 2] if len(peers) % 2 else (
        (peers[len(peers) // 2 - 1] + peers[len(peers) // 2]) / 2)
    assert cost > 3 * median


def test_self_hosted_and_discounted_prices_match_an_independent_calculation(
        demo: DemoRun) -> None:
    prices = _demo_prices()["models"]
    llama = next(m for m in prices if m["model"] == "acme-llama-3.1-70b")
    assert demo.rows["llama"]
    for inp, out, cost, source in demo.rows["llama"]:
        expected = (inp * Decimal(str(llama["input"]))
                    + out * Decimal(str(llama["output"]))) / MILLION
        assert abs(Decimal(cost) - expected) <= TOLERANCE
        assert "demo-prices.yaml" in source
    discount = Decimal(str(next(m for m in prices if m["model"] == "gpt-4o")["discount_percent"]))
    assert demo.rows["gpt4o"]
    for inp, out, cached, cost, ts in demo.rows["gpt4o"]:
        listed = calc_price(Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cached),
                            model_ref="gpt-4o", provider_id="openai",
                            genai_request_timestamp=ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC),
                            ).total_price
        expected = Decimal(listed) * (100 - discount) / 100
        assert abs(Decimal(cost) - expected) <= TOLERANCE


def test_prints_reports_and_an_html_report_that_exists(demo: DemoRun) -> None:
    out = demo.run.stdout
    for title in ("Spend by team", "Spend by feature", "Most expensive traces"):
        assert title in out
    for team in ("support", "search", "sales", "ml-platform"):
        assert team in out
    match = re.search(r"^HTML report: (.+)$", out, re.MULTILINE)
    assert match, out[-2000:]
    html = Path(match.group(1).strip())
    assert html.is_file() and html.parent == demo.folder
    assert "<html" in html.read_text(encoding="utf-8").lower()
    # live counts went to stderr
    assert f"calls {SMALL_CALLS:,}/{SMALL_CALLS:,}" in demo.run.stderr
    assert "rows written" in demo.run.stderr


def test_prints_a_budgets_summary_and_the_html_has_budgets_and_anomalies(
        demo: DemoRun) -> None:
    out = demo.run.stdout
    assert "== Budgets (budgets.example.yaml) ==" in out
    assert re.search(r"\d+ of \d+ budget scopes reached a threshold", out), out[-3000:]
    assert re.search(r"^anomalies in \S+: \d+ spike\(s\), \d+ runaway agent run\(s\), \d+ creep",
                     out, re.MULTILINE)
    assert "spanledger report budgets --budgets" in out
    html = next(demo.folder.glob("*.html")).read_text(encoding="utf-8")
    assert "<h2>Budgets</h2>" in html and "<h2>Anomalies</h2>" in html
    assert "support/ticket-triage" in html  # every example budget is listed


def test_report_afterwards_in_the_same_folder_reads_the_demo(demo: DemoRun) -> None:
    today = dt.datetime.now(dt.UTC).date()
    start = today - dt.timedelta(days=SMALL_DAYS - 1)
    run = spanledger(demo.folder, "report", "spend", "--from", start.isoformat(),
                     "--to", today.isoformat())
    assert run.code == 0, run.stderr
    for team in ("support", "search", "sales", "ml-platform"):
        assert team in run.stdout


def test_month_end_close_finds_exactly_the_injected_differences(demo: DemoRun) -> None:
    out = demo.run.stdout
    assert "== Month-end close" in out, out[-2000:]
    section = out[out.index("== Month-end close"):out.index("Demo data:")]
    causes = {m.group(1) for m in re.finditer(
        r"^(?:openai|anthropic)\s+(.+?)\s{2,}-?[\d,.]+\s+-?[\d.]+%$", section, re.MULTILINE)}
    assert causes == {"calls not metered (services without spanledger)", "unpriced model",
                      "self-hosted (not on this bill)", "discount missing from the overrides",
                      "(unexplained)", "rounding (within the bill's precision)"}
    assert "the bill ties out" in section
    bills = sorted((demo.folder / "spanledger-demo-bills").glob("*.json"))
    assert [b.name for b in bills] == ["anthropic-cost-report.json",
                                       "anthropic-usage-report.json", "openai-costs.json",
                                       "openai-usage-completions.json"]
    prices = str(data_dir("collector-config") / "demo-prices.yaml")
    run = spanledger(demo.folder, "reconcile", *map(str, bills), "--prices", prices,
                     "--format", "json")
    assert run.code == 0, run.stderr
    rows = json.loads(run.stdout)["rows"]
    assert all(Decimal(r["unexplained"]) == 0 for r in rows if r["unexplained"] is not None)
    legacy = [r for r in rows if r["reason"].startswith("not metered")]
    assert legacy and {r["model"] for r in legacy} == {"gpt-4o-mini-2024-07-18"}


def test_outcomes_land_on_their_runs_and_the_runaway_produced_none(demo: DemoRun) -> None:
    rows = demo.rows["outcomes"]
    names = {name: feature for _, name, _, feature, _, _ in rows if feature}
    assert {"ticket_resolved": "ticket-triage", "conversation_resolved": "support-chat",
            "conversion": "email-drafts"}.items() <= names.items()
    # every outcome names a run that made LLM calls: the views joined them by trace id
    assert all(calls for *_, calls, _ in rows)
    # conversions come from a CRM webhook in a trace of its own, naming the sales run
    conversions = [r for r in rows if r[1] == "conversion"]
    for run, _, _, feature, _, own in conversions:
        assert feature == "email-drafts" and own and own != run
    runaway = max(demo.rows["traces"], key=lambda t: Decimal(t[4]))[0]
    assert runaway not in {r[0] for r in rows}  # the agent loop resolved nothing: waste
    spans, attributed = demo.rows["outcome_spans"][0]
    assert spans == sum(r[2] for r in rows)
    assert attributed == spans - len(conversions)  # the webhook knows only the customer


def test_prints_cost_per_outcome_and_customer_margins(demo: DemoRun) -> None:
    out = demo.run.stdout
    assert "== Cost per outcome" in out and "== Unit economics per customer" in out
    section = out[out.index("== Cost per outcome"):out.index("== Unit economics")]
    assert re.search(r"^support\s+ticket-triage\s+ticket_resolved\s", section, re.MULTILINE)
    assert "(none recorded)" in section  # features that record no outcome
    customers = out[out.index("== Unit economics"):out.index("== Month-end close")]
    # the shipped revenue file: margins per customer, the free pilot flagged at any size
    assert re.search(r"^soylent\s.*AI cost, no revenue$", customers, re.MULTILINE)
    assert "margin after AI" in customers and "demo-revenue.yaml" in customers
    html = Path(re.search(r"^HTML report: (.+)$", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    text = html.read_text(encoding="utf-8")
    for section_id in ("cost-per-outcome", "customers", "drill-down", "forecast", "call-kinds"):
        assert f'<section id="{section_id}">' in text
    assert "AI cost, no revenue" in text


def test_second_run_refuses_without_reset(demo: DemoRun) -> None:
    run = spanledger(demo.folder, "demo", "--calls", str(SMALL_CALLS))
    assert run.code == 2
    assert "already holds" in run.stderr and "--reset" in run.stderr
    assert run.stderr.count("\n") == 1  # one line, no traceback
