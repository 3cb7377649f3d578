"""Issue 14, "who may say which team", against a real collector over gRPC and HTTP.

A hostile service holds its own write token (support-bot: services support-bot, team
support, cost centre cc-support) and tries to bill the victim (team billing, cost
centre cc-billing, service billing-api) every way a client can: by naming the victim's
team or cost centre on its spans, by sending as the victim's service, by forging the
collector's own token stamp, with a cost of its own. After all of it the victim's
totals are exactly its own call; every attempt is stored as ``(unverified)`` with the
claim and the sending token beside it, counted on /metrics and shown by
``spanledger report spend``. Read tokens open the SQL front and /budgets/state, write
tokens do not (the live /report page included), and read tokens cannot send spans.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal
from typing import Any

import clickhouse_connect
import grpc
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from spanledger import semconv as sc
from support.collector import RunningCollector, start_collector, wait_for
from support.demo import clean_env

pytestmark = pytest.mark.e2e

SUPPORT, BILLING, FINOPS, SHARED = "support-secret", "billing-secret", "finops-secret", "shared"
TEAM, CC = sc.attribution_attr("team"), sc.attribution_attr("cost_center")
_ids = iter(range(1, 1 << 30))


def _kv(key: str, value: str | int | float) -> KeyValue:
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def llm_call(service: str, resource: dict[str, str] | None = None,
             **attribution: str | float) -> ExportTraceServiceRequest:
    """One gpt-4o-mini call (1000 input, 200 output tokens) the collector prices itself."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([_kv(sc.SERVICE_NAME, service),
                                   *(_kv(k, v) for k, v in (resource or {}).items())])
    ss = rs.scope_spans.add()
    ss.scope.name = "opentelemetry.instrumentation.openai.v1"
    sp = ss.spans.add()
    n = next(_ids)
    sp.trace_id, sp.span_id = n.to_bytes(16, "big"), n.to_bytes(8, "big")
    sp.name = "chat gpt-4o-mini"
    sp.kind = 3
    sp.start_time_unix_nano = time.time_ns() - 60_000_000_000
    sp.end_time_unix_nano = sp.start_time_unix_nano + 800_000_000
    sp.attributes.extend([
        _kv("gen_ai.operation.name", "chat"), _kv("gen_ai.provider.name", "openai"),
        _kv("gen_ai.request.model", "gpt-4o-mini"), _kv("gen_ai.response.model", "gpt-4o-mini"),
        _kv("gen_ai.usage.input_tokens", 1000), _kv("gen_ai.usage.output_tokens", 200),
        *(_kv(sc.attribution_attr(k) if "." not in k else k, v)
          for k, v in attribution.items()),
    ])
    return req


def _json_body(req: ExportTraceServiceRequest) -> bytes:
    doc = json_format.MessageToDict(req)
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId"):
                    span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(doc).encode()


def post(collector: RunningCollector, req: ExportTraceServiceRequest, token: str,
         as_json: bool = False) -> int:
    body = _json_body(req) if as_json else req.SerializeToString()
    request = urllib.request.Request(collector.http_url, data=body, method="POST", headers={
        "Content-Type": "application/json" if as_json else "application/x-protobuf",
        "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def export(collector: RunningCollector, req: ExportTraceServiceRequest, token: str) -> None:
    collector.stub().Export(req, metadata=[("authorization", f"Bearer {token}")], timeout=30)


def get(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code




def _sha(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = tmp_path_factory.mktemp("trust")
    (base / "tokens.yaml").write_text(f"""
tokens:
  support-bot:
    role: write
    secret_env: TEST_SUPPORT_TOKEN
    services: [support-bot]
    teams: [support]
    cost_centers: [cc-support]
  billing:
    role: write
    sha256: {_sha(BILLING)}
    services: [billing-api]
    teams: [billing]
    cost_centers: [cc-billing]
  finops:
    role: read
    sha256: {_sha(FINOPS)}
""")
    (base / "budgets.yaml").write_text(
        "budgets:\n  - name: billing\n    team: billing\n    amount: 100\n    period: month\n")
    config = base / "collector.yaml"
    config.write_text("auth:\n  tokens_file: tokens.yaml\n  bearer_token: shared\n"
                      "budgets:\n  file: budgets.yaml\n  every_s: 1\n")
    running = start_collector(base / "store", config=config,
                              env={"TEST_SUPPORT_TOKEN": SUPPORT})
    try:
        yield running
    finally:
        assert running.stop() == 0


def test_no_token_can_move_another_teams_numbers(collector: RunningCollector) -> None:
    # the victim's own call, and the hostile service's own (both verified)
    export(collector, llm_call("billing-api", team="billing", cost_center="cc-billing"), BILLING)
    export(collector, llm_call("support-bot", team="support", cost_center="cc-support"), SUPPORT)
    # the attacks, over gRPC ...
    export(collector, llm_call("support-bot", team="billing", cost_center="cc-billing"), SUPPORT)
    export(collector, llm_call("billing-api", team="support"), SUPPORT)
    export(collector, llm_call("support-bot", {sc.AUTH_TOKEN: "billing"}, team="billing"),
           SUPPORT)
    export(collector, llm_call("support-bot", team="billing", **{
        sc.COST_STATUS: "priced", sc.COST: 1000.0}), SUPPORT)
    # ... and over OTLP/HTTP, protobuf and JSON
    assert post(collector, llm_call("support-bot", team="billing"), SUPPORT) == 200
    assert post(collector, llm_call("support-bot", cost_center="cc-billing"), SUPPORT,
                as_json=True) == 200
    # the shared bearer token may claim anyone (documented: one token for small setups)
    export(collector, llm_call("growth-svc", team="growth"), SHARED)
    assert collector.wait_metric("spans_written_total", 9) == 9

    client = clickhouse_connect.get_client(
        host="127.0.0.1", port=int(collector.endpoints["sql_http"].rsplit(":", 1)[1]),
        password=FINOPS)
    try:
        def total(where: str) -> tuple[int, Decimal]:
            rows = client.query(f"SELECT sum(Calls), sum(Cost) FROM llm_cost_daily "
                                f"WHERE {where}").result_rows
            return int(rows[0][0]), Decimal(rows[0][1])

        one_call = total("Team = 'growth'")  # the shared token may claim anyone: verified
        assert one_call[0] == 1 and one_call[1] > 0
        assert total("Team = 'billing'") == one_call  # the victim: its own call, nothing more
        assert total("CostCenter = 'cc-billing'") == one_call
        assert total("ServiceName = 'billing-api'") == one_call
        # its own call, and the one sent as billing-api (the service is unverified, the team
        # is its own)
        assert total("Team = 'support'") == (2, 2 * one_call[1])
        assert total("Team = '(unverified)'")[0] == 4
        assert total("CostCenter = '(unverified)'")[0] == 2
        assert total("ServiceName = '(unverified)'") == one_call
        attempts = client.query(
            "SELECT ResourceAttributes['spanledger.auth.token'] AS token, "
            "SpanAttributes['spanledger.team.claimed'] AS team, "
            "SpanAttributes['spanledger.cost_center.claimed'] AS cc, "
            "ResourceAttributes['spanledger.service.claimed'] AS service "
            "FROM otel_traces WHERE SpanAttributes['spanledger.attribution.verified'] = 'false' "
            "ORDER BY team, cc, service").result_rows
        assert attempts == [
            ("support-bot", "", "", "billing-api"),
            ("support-bot", "", "cc-billing", ""),
            ("support-bot", "billing", "", ""),
            ("support-bot", "billing", "", ""),
            ("support-bot", "billing", "", ""),  # the forged stamp said billing: gone
            ("support-bot", "billing", "cc-billing", ""),
        ]
        stamps = client.query("SELECT DISTINCT ResourceAttributes['spanledger.auth.token'] "
                              "FROM otel_traces ORDER BY 1").result_rows
        assert stamps == [("billing",), ("shared",), ("support-bot",)]
    finally:
        client.close()
    assert collector.metric("spans_unverified_total") == 6
    assert collector.metric("auth_stamps_stripped_total") == 1

    report = subprocess.run(
        [sys.executable, "-m", "spanledger", "report", "spend", "--by", "team", "--format",
         "json", "--url", f"chdb://{collector.store_dir}"],
        env={**clean_env(), "SPANLEDGER_COLLECTOR_TOKEN": FINOPS}, capture_output=True,
        text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    doc = json.loads(report.stdout)
    teams = {row["team"]: row for row in doc["rows"]}
    assert teams["(unverified)"]["calls"] == 4
    assert Decimal(str(teams["billing"]["cost"])) == one_call[1]
    (note,) = [n for n in doc["notes"] if "unverified" in n]
    # 6 calls: 4 with a team, 2 with a cost centre, 1 as a service it may not claim (one
    # call claimed both a team and a cost centre); the cost of its own is counted as sent
    assert "USD (6 calls) is unverified" in note and "charged to no one" in note


def test_read_and_write_tokens_open_different_doors(collector: RunningCollector) -> None:
    port = int(collector.endpoints["sql_http"].rsplit(":", 1)[1])
    for secret, allowed in ((FINOPS, True), (SHARED, True), (SUPPORT, False), ("", False)):
        client = None
        try:
            client = clickhouse_connect.get_client(host="127.0.0.1", port=port, password=secret)
            assert client.query("SELECT 40 + 2").result_rows == [(42,)]
            assert allowed, f"the SQL front answered {secret!r}"
        except clickhouse_connect.driver.exceptions.DatabaseError as exc:
            assert not allowed, exc
            assert "AUTHENTICATION_FAILED" in str(exc) or "516" in str(exc)
        finally:
            if client is not None:
                client.close()
    report = collector.endpoints["report"]  # the live report page, on the SQL front
    assert get(f"{report}?token={FINOPS}") == 200 and get(report, FINOPS) == 200
    assert get(f"{report}?token={SUPPORT}") == 401 and get(report) == 401
    state = collector.endpoints["budgets_state"]
    assert wait_for(lambda: get(state, FINOPS) == 200)
    assert get(state, SHARED) == 200
    assert get(state, SUPPORT) == 401 and get(state) == 401
    # a read token cannot send spans, over either protocol; neither can a stranger
    with pytest.raises(grpc.RpcError) as refused:
        export(collector, llm_call("support-bot", team="support"), FINOPS)
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "read token" in (refused.value.details() or "")
    assert post(collector, llm_call("support-bot", team="support"), FINOPS) == 401
    assert post(collector, llm_call("support-bot", team="support"), "stranger") == 401
