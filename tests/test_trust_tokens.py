"""Who may say which team, in pieces: the tokens file, the stamp on each resource, the check.

The end-to-end attack (a real collector, gRPC and HTTP) is in test_trust_collector.py;
here each part is pinned on its own: every mistake in the tokens file is reported at
``file:line: key``, the stamp spliced into the bytes decodes exactly like a stamp set on
the decoded request (and a forged one is gone), and the conversion stores what a token
may not claim as ``(unverified)`` with the claim beside it.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from spanledger import semconv as sc
from spanledger.collector import otlp
from spanledger.collector.access import Access
from spanledger.collector.attribution_policy import AttributionPolicy, unverified_rows
from spanledger.collector.convert import Columns
from spanledger.collector.metrics import Metrics
from spanledger.collector.receivers.intake import Intake, Refusal
from spanledger.collector.receivers.token_stamp import splice, stamp
from spanledger.collector.tokens import load_tokens
from spanledger.yamlconf import ConfigError

SUPPORT_SECRET = "support-secret"
GOOD = f"""\
tokens:
  support-bot:
    role: write
    sha256: {hashlib.sha256(SUPPORT_SECRET.encode()).hexdigest()}
    services: [support-bot, "support-*"]
    teams: [support]
    cost_centers: [cc-1001]
  gateway:
    role: write
    secret_env: TEST_GATEWAY_TOKEN
    services: [gateway]
    teams: ["*"]
    cost_centers: ["*"]
  finops:
    role: read
    secret: finops-secret
"""


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


_ids = itertools.count(1)


def request_of(service: str, spans: list[dict[str, str]],
               resource: dict[str, str] | None = None) -> ExportTraceServiceRequest:
    """One resource of ``service`` with a span per attribute dict (ids unique per test run)."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([_kv(sc.SERVICE_NAME, service),
                                   *(_kv(k, v) for k, v in (resource or {}).items())])
    ss = rs.scope_spans.add()
    ss.scope.name = "test"
    for attrs in spans:
        i = next(_ids)
        sp = ss.spans.add()
        sp.trace_id = i.to_bytes(16, "big")
        sp.span_id = i.to_bytes(8, "big")
        sp.name = f"span {i}"
        sp.start_time_unix_nano = 1_790_000_000_000_000_000 + i
        sp.end_time_unix_nano = sp.start_time_unix_nano + 1000
        sp.attributes.extend(_kv(k, v) for k, v in attrs.items())
    return req


@pytest.fixture
def tokens_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TEST_GATEWAY_TOKEN", "gateway-secret")
    path = tmp_path / "tokens.yaml"
    path.write_text(GOOD)
    return path


def test_tokens_file_finds_tokens_by_secret_and_warns_about_clear_ones(
        tokens_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        book = load_tokens(tokens_file)
    assert [r.getMessage() for r in caplog.records if "in clear" in r.getMessage()] == [
        f"{tokens_file}: token(s) finops hold their secret in clear; put its sha256 (or "
        "secret_env: VARIABLE) there instead"]
    support = book.find(SUPPORT_SECRET)
    gateway = book.find("gateway-secret")
    finops = book.find("finops-secret")
    assert support is not None and gateway is not None and finops is not None
    assert (support.name, gateway.name, finops.name) == ("support-bot", "gateway", "finops")
    assert book.find("nope") is None and book.find("") is None
    assert support.grant is not None and finops.grant is None
    assert support.grant.services.allows("support-worker")  # prefix pattern
    assert not support.grant.services.allows("billing-api")
    assert support.grant.teams.allows("") and not support.grant.teams.allows("billing")


@pytest.mark.parametrize(("text", "where", "problem"), [
    ("tokens:\n  a:\n    role: write\n    services: [x]\n", "3: tokens.a",
     "needs exactly one of sha256, secret_env, secret (got none)"),
    ("tokens:\n  a:\n    role: read\n    secret: s\n    sha256: " + "ab" * 32 + "\n", "3: tokens.a",
     "needs exactly one of sha256, secret_env, secret (got sha256, secret)"),
    ("tokens:\n  a:\n    role: read\n    sha256: abc\n", "4: tokens.a.sha256",
     "expected 64 hex digits"),
    ("tokens:\n  a:\n    role: write\n    secret: s\n", "3: tokens.a",
     "a write token needs services:"),
    ("tokens:\n  a:\n    role: read\n    secret: s\n    teams: [x]\n", "3: tokens.a",
     "services, teams and cost_centers are for write tokens only"),
    ("tokens:\n  a:\n    role: admin\n    secret: s\n", "3: tokens.a.role", ""),
    ("tokens:\n  a:\n    role: read\n    secret_env: TEST_UNSET_VARIABLE\n",
     "4: tokens.a.secret_env", "the variable TEST_UNSET_VARIABLE is not set"),
    ("tokens:\n  a:\n    role: read\n    secret: s\n  b:\n    role: read\n    secret: s\n",
     None, "tokens.b: the same secret as token 'a'"),
    ("tokens:\n  has space:\n    role: read\n    secret: s\n", "3: tokens.has space",
     "a token name is 1-64 letters"),
    ("tokens:\n  shared:\n    role: read\n    secret: s\n", "3: tokens.shared",
     "the name of the shared auth.bearer_token"),
    ("tokens:\n  a:\n    role: read\n    secret: s\n    colour: red\n", "5: tokens.a.colour",
     "unknown key"),
])
def test_tokens_file_mistakes_name_file_line_and_key(tmp_path: Path, text: str,
                                                     where: str | None, problem: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_tokens(path)
    message = str(err.value)
    if where is not None:
        assert message.startswith(f"{path}:{where}:"), message
    assert problem in message


def test_the_shipped_example_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    from spanledger.resources import data_dir

    for var in ("SPANLEDGER_TOKEN_SEARCH", "SPANLEDGER_TOKEN_GATEWAY", "SPANLEDGER_TOKEN_FINOPS"):
        monkeypatch.setenv(var, var.lower())
    book = load_tokens(data_dir("collector-config") / "tokens.example.yaml")
    assert {t.name for t in book.tokens} == {"support-bot", "search", "gateway", "finops"}
    finops = book.find("spanledger_token_finops")
    assert finops is not None and finops.roles == {"read"}


def test_stamp_spliced_into_the_bytes_decodes_like_a_stamp_on_the_message() -> None:
    req = request_of("support-bot", [{"a": "1"}, {"b": "2"}])
    second = req.resource_spans.add()
    second.CopyFrom(req.resource_spans[0])
    second.schema_url = "https://opentelemetry.io/schemas/1.30.0"
    body = req.SerializeToString() + b"\x98\x06\x2a"  # an unknown varint field (99) is kept
    accepted = otlp.parse_protobuf(body)
    out, forged = stamp(accepted.payload, accepted.request, "support-bot")
    assert forged == 0
    expected = ExportTraceServiceRequest.FromString(body)
    for rs in expected.resource_spans:
        rs.resource.attributes.append(_kv(sc.AUTH_TOKEN, "support-bot"))
    assert ExportTraceServiceRequest.FromString(out) == expected
    assert out.endswith(b"\x98\x06\x2a")
    with pytest.raises(ValueError, match="truncated"):
        splice(body[:-40], b"\x0a\x00")


def test_a_stamp_sent_by_the_client_is_removed_before_ours() -> None:
    req = request_of("support-bot", [{"a": "1"}], {sc.AUTH_TOKEN: "gateway"})
    accepted = otlp.parse_protobuf(req.SerializeToString())
    out, forged = stamp(accepted.payload, accepted.request, "support-bot")
    assert forged == 1
    attrs = ExportTraceServiceRequest.FromString(out).resource_spans[0].resource.attributes
    assert [(kv.key, kv.value.string_value) for kv in attrs if kv.key == sc.AUTH_TOKEN] == [
        (sc.AUTH_TOKEN, "support-bot")]


class _Spool:
    def __init__(self) -> None:
        self.records: list[bytes] = []

    def append(self, payload: bytes, spans: int) -> None:
        self.records.append(payload)


def test_intake_stamps_with_a_tokens_file_and_refuses_read_tokens(tokens_file: Path) -> None:
    spool, metrics = _Spool(), Metrics()
    intake = Intake(spool, metrics, None, Access.load(None, tokens_file))  # type: ignore[arg-type]
    body = request_of("support-bot", [{"a": "1"}], {sc.AUTH_TOKEN: "gateway"}).SerializeToString()
    refused = intake.handle(body, json_body=False, auth_header="Bearer finops-secret")
    assert refused.refusal is Refusal.UNAUTHENTICATED
    assert refused.message == "token 'finops' is a read token: it may not send spans"
    assert intake.handle(body, json_body=False, auth_header=None).refusal is \
        Refusal.UNAUTHENTICATED
    ok = intake.handle(body, json_body=False, auth_header=f"bearer {SUPPORT_SECRET}")
    assert ok.refusal is None
    stored = ExportTraceServiceRequest.FromString(spool.records[0])
    assert [kv.value.string_value for kv in stored.resource_spans[0].resource.attributes
            if kv.key == sc.AUTH_TOKEN] == ["support-bot"]
    assert metrics.get("auth_stamps_stripped_total") == 1
    assert metrics.get("requests_unauthenticated_total") == 2
    # a shared bearer token alone: nothing is stamped, as before tokens files existed
    shared = Intake(spool, Metrics(), "s3cret")  # type: ignore[arg-type]
    plain = request_of("x", [{"a": "1"}]).SerializeToString()
    assert shared.handle(plain, json_body=False, auth_header="Bearer s3cret").refusal is None
    assert spool.records[-1] == plain


def test_access_roles_and_the_shared_token(tokens_file: Path) -> None:
    access = Access.load("shared-secret", tokens_file)
    assert access.can_read(["finops-secret"]) and access.can_read(["x", "shared-secret"])
    assert not access.can_read([SUPPORT_SECRET]) and not access.can_read([])
    assert access.read_header("Bearer finops-secret")
    assert not access.read_header(f"Bearer {SUPPORT_SECRET}") and not access.read_header(None)
    shared = access.writer("Bearer shared-secret")
    assert shared is not None and shared.name == "shared"
    assert shared.grant is not None and shared.grant.unrestricted
    assert Access().can_read([]) and Access().read_header(None)  # no auth at all: open
    single = Access("only")
    assert single.read_header("Bearer only") and not single.read_header("Bearer other")
    assert not single.stamps and single.policy() is None


def _converted(policy: AttributionPolicy, *requests: ExportTraceServiceRequest
               ) -> list[tuple[dict[str, str], dict[str, str], str]]:
    cols = Columns(policy)
    for req in requests:
        cols.add(req)
    table = cols.table()
    return [(dict(r), dict(a), s) for r, a, s in zip(
        table["ResourceAttributes"].to_pylist(), table["SpanAttributes"].to_pylist(),
        table["ServiceName"].to_pylist(), strict=True)]


def test_conversion_stores_what_a_token_may_not_claim_as_unverified(tokens_file: Path) -> None:
    policy = Access.load(None, tokens_file).policy()
    assert policy is not None
    team, cc = sc.attribution_attr("team"), sc.attribution_attr("cost_center")
    own = request_of("support-bot", [
        {team: "support", cc: "cc-1001"},
        {team: "billing", cc: "cc-1001"},
        {team: "support", cc: "cc-billing", sc.ATTRIBUTION_VERIFIED: "true"},
        {},
    ], {sc.AUTH_TOKEN: "support-bot"})
    as_victim = request_of("billing-api", [{team: "support"}], {sc.AUTH_TOKEN: "support-bot"})
    gateway = request_of("gateway", [{team: "billing", cc: "cc-billing"}],
                         {sc.AUTH_TOKEN: "gateway"})
    unstamped = request_of("old-service", [{team: "support"}])
    rows = _converted(policy, own, as_victim, gateway, unstamped)
    spans = [a for _, a, _ in rows]
    assert spans[0] == {team: "support", cc: "cc-1001"}
    assert spans[1] == {team: sc.UNVERIFIED, cc: "cc-1001", sc.TEAM_CLAIMED: "billing",
                        sc.ATTRIBUTION_VERIFIED: "false"}
    assert spans[2] == {team: "support", cc: sc.UNVERIFIED, sc.COST_CENTER_CLAIMED: "cc-billing",
                        sc.ATTRIBUTION_VERIFIED: "false"}  # a client's own "true" is not ours
    assert spans[3] == {}
    resource, attrs, service = rows[4]
    assert service == sc.UNVERIFIED and resource[sc.SERVICE_CLAIMED] == "billing-api"
    assert attrs == {team: "support", sc.ATTRIBUTION_VERIFIED: "false"}
    assert rows[5][1] == {team: "billing", cc: "cc-billing"}  # the gateway may claim anyone
    assert rows[6][2] == sc.UNVERIFIED and rows[6][1][sc.ATTRIBUTION_VERIFIED] == "false"
    cols = Columns(policy)
    for req in (own, as_victim, gateway, unstamped):
        cols.add(req)
    assert unverified_rows(cols.table()) == 4
