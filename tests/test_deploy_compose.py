"""deploy/compose: the single-machine stack, checked without a Docker engine.

Docker is not available here, so the compose file is checked for what breaks
a first `docker compose up`: an unpinned image, a start order that lets the
collector write before the schema exists, a mount of a file that is not there,
a secret written into a file, a variable the contrib config reads but compose
never passes. The example service and the mock provider are Python, so they
run for real: the service's spans (cost and owner on each) are received over
OTLP/HTTP by this test.
"""

from __future__ import annotations

import copy
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.deploy import (
    COMPOSE,
    CONTRIB_CONFIG,
    DEPLOY,
    PROVISIONING,
    REPO,
    load_yaml_documents,
    secret_literals,
)

COMPOSE_FILE = COMPOSE / "compose.yaml"
ENV_EXAMPLE = COMPOSE / ".env.example"
PINNED = re.compile(r"^[\w.\-/]+:(?!latest$)[\w.\-]*\d[\w.\-]*$")
ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    (doc,) = load_yaml_documents(COMPOSE_FILE)
    return doc


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_services_and_pinned_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {
        "clickhouse",
        "migrate",
        "otelcol",
        "grafana",
        "mock-llm",
        "example-service",
    }
    images = {name: svc["image"] for name, svc in services.items()}
    assert images["clickhouse"].startswith("clickhouse/clickhouse-server:")
    assert images["otelcol"].startswith("otel/opentelemetry-collector-contrib:")
    assert images["grafana"].startswith("grafana/grafana:")
    for name, image in images.items():
        assert PINNED.match(image), f"{name}: image {image!r} is not pinned to a version"
    # our own image is built from the repo, never pulled, tagged with the package version
    import spanledger

    for name in ("migrate", "mock-llm", "example-service"):
        assert images[name] == f"spanledger:{spanledger.__version__}"
        build = services[name]["build"]
        assert (COMPOSE / build["context"]).resolve() == REPO
        assert (REPO / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    plugin = _env(services["grafana"])["GF_PLUGINS_PREINSTALL_SYNC"]
    assert re.fullmatch(r"grafana-clickhouse-datasource@\d+\.\d+\.\d+", plugin)


def test_start_order_puts_the_schema_before_the_collector(compose: dict[str, Any]) -> None:
    s = compose["services"]

    def cond(svc: str, dep: str) -> str:
        return s[svc]["depends_on"][dep]["condition"]

    assert "healthcheck" in s["clickhouse"] and "healthcheck" in s["mock-llm"]
    assert cond("migrate", "clickhouse") == "service_healthy"
    assert cond("otelcol", "migrate") == "service_completed_successfully"
    assert cond("grafana", "migrate") == "service_completed_successfully"
    assert cond("example-service", "otelcol") == "service_started"
    assert cond("example-service", "mock-llm") == "service_healthy"
    assert s["migrate"]["command"] == ["db", "migrate"]
    assert s["migrate"]["restart"] == "no"
    assert _env(s["migrate"])["SPANLEDGER_CLICKHOUSE_URL"].startswith("http://")


def test_mounts_point_at_the_repo_files(compose: dict[str, Any]) -> None:
    s = compose["services"]
    mounts: dict[str, dict[str, Path]] = {}
    for name, svc in s.items():
        for volume in svc.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                mounts.setdefault(name, {})[target] = (COMPOSE / source).resolve()
    # the collector runs the repo's contrib config, not a copy
    assert mounts["otelcol"]["/etc/otelcol-contrib/config.yaml"] == CONTRIB_CONFIG
    assert s["otelcol"]["command"] == ["--config=/etc/otelcol-contrib/config.yaml"]
    assert mounts["grafana"] == {
        "/etc/grafana/provisioning/datasources": PROVISIONING / "datasources",
        "/etc/grafana/provisioning/dashboards": PROVISIONING / "dashboards",
        "/var/lib/grafana/dashboards/spanledger": DEPLOY / "grafana" / "dashboards",
    }
    for name, targets in mounts.items():
        for target, source in targets.items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) is missing"


def test_contrib_config_variables_are_passed(compose: dict[str, Any]) -> None:
    wanted = set(ENV_REF.findall(CONTRIB_CONFIG.read_text(encoding="utf-8")))
    assert wanted, "the contrib config reads its ClickHouse settings from the environment"
    assert wanted <= set(_env(compose["services"]["otelcol"])), wanted


def test_no_secret_is_written_into_the_files(compose: dict[str, Any]) -> None:
    assert secret_literals(compose) == []
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE_FILE.read_text(encoding="utf-8")))
    assert {
        "CLICKHOUSE_PASSWORD",
        "GRAFANA_CLICKHOUSE_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
    } <= required
    # every required variable is documented, with an empty value in the example
    example = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^#?\s*([A-Z_]+)=(.*)$", ENV_EXAMPLE.read_text(), re.MULTILINE)
    }
    for var in required:
        assert var in example, f"{var} is not documented in .env.example"
        if "PASSWORD" in var:
            assert example[var] == "", f"{var} has a value in .env.example"
    assert (COMPOSE / ".gitignore").read_text().split() == [".env"]
    # the ClickHouse users file takes the password from the environment
    users = (COMPOSE / "clickhouse" / "users.d" / "grafana-readonly.xml").read_text()
    assert '<password from_env="GRAFANA_CLICKHOUSE_PASSWORD"/>' in users
    assert "<readonly>2</readonly>" in users and "GRANT SELECT ON spanledger.*" in users


def test_no_password_literal_anywhere_under_deploy() -> None:
    """A scan of every deploy file for password-looking assignments."""
    suspicious = re.compile(
        r"(?i)(password|passwd|secret|token|api_key)\s*[:=]\s*[\"']?(?!\$|REPLACE-ME|$)"
        r"([A-Za-z0-9+/_\-!@#%^&*]{6,})"
    )
    # names of variables and Secret keys, and the mock provider's dummy key (not a secret)
    allowed = {
        "GRAFANA_CLICKHOUSE_PASSWORD",
        "CLICKHOUSE_PASSWORD",
        "spanledger-clickhouse",
        "-offline-mock",
        "password",
        "GRAFANA_ADMIN_PASSWORD",
    }
    found = []
    for path in DEPLOY.rglob("*"):
        if not path.is_file() or path.suffix not in {
            ".yaml",
            ".yml",
            ".json",
            ".xml",
            ".example",
            ".env",
            ".md",
            "",
        }:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in suspicious.finditer(line):
                if m.group(2) not in allowed and not m.group(2).startswith("secretKeyRef"):
                    found.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert found == []


def test_dockerfile_builds_the_package_and_ships_the_example() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert bases and all(PINNED.match(b) for b in bases), bases
    assert 'ENTRYPOINT ["spanledger"]' in text and "USER 10001" in text
    copied = re.findall(r"^COPY\s+(?!--from)(\S+)", text, re.MULTILINE)
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for source in copied:
        assert (REPO / source).exists(), source
        assert f"!{source}" in ignore, f"{source} is excluded from the build context"


# ---------------------------------------------------------------- the example service runs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _OtlpSink(ThreadingHTTPServer):
    """Receives OTLP/HTTP protobuf trace exports, as the collector would."""

    daemon_threads = True

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        super().__init__(("127.0.0.1", 0), _OtlpHandler)


class _OtlpHandler(BaseHTTPRequestHandler):
    server: _OtlpSink

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/v1/traces":
            self.server.requests.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def mock_llm() -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "MOCK_LLM_HOST": "127.0.0.1", "MOCK_LLM_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "spanledger.demo.stub_provider"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the socket listens
        assert f"127.0.0.1:{port}/v1" in line, line
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _attrs(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = (
            getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None
        )
    return out


def test_example_service_exports_costed_attributed_spans(mock_llm: str) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    sink = _OtlpSink()
    thread = threading.Thread(
        target=sink.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_"))},
            "OTEL_SERVICE_NAME": "example-chat",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.server_address[1]}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OPENAI_BASE_URL": mock_llm,
            "OPENAI_API_KEY": "offline-mock",
            "EXAMPLE_MAX_REQUESTS": "2",
            "EXAMPLE_INTERVAL_SECONDS": "0",
        }
        done = subprocess.run(
            [sys.executable, str(DEPLOY / "example-service" / "app.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    finally:
        sink.shutdown()
        sink.server_close()

    chats = []
    for body in sink.requests:
        req = ExportTraceServiceRequest.FromString(body)
        for rs in req.resource_spans:
            service = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
            assert service["service.name"] == "example-chat"
            for ss in rs.scope_spans:
                chats += [_attrs(s) for s in ss.spans if "gen_ai.usage.input_tokens" in _attrs(s)]
    assert [(c["spanledger.team"], c["spanledger.feature"]) for c in chats] == [
        ("support", "ticket-summary"),
        ("search", "rag-answer"),
    ]
    for chat in chats:
        assert chat["spanledger.cost.status"] == "priced"
        assert chat["gen_ai.usage.input_tokens"] == 100 and chat["gen_ai.usage.output_tokens"] == 20
        # gpt-4o-mini: $0.15 per 1M input tokens, $0.60 per 1M output tokens
        expected = Decimal(100) * Decimal("0.15") / 10**6 + Decimal(20) * Decimal("0.60") / 10**6
        assert abs(Decimal(repr(chat["gen_ai.usage.cost"])) - expected) <= Decimal("1e-9")


def test_env_example_parses_as_dotenv() -> None:
    for n, line in enumerate(ENV_EXAMPLE.read_text().splitlines(), 1):
        stripped = line.strip()
        assert (
            not stripped
            or stripped.startswith("#")
            or re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", stripped)
        ), f".env.example:{n}: {line!r}"
    assert yaml.safe_load(COMPOSE_FILE.read_text())["name"] == "spanledger"


def test_readme_names_the_images_compose_runs(compose: dict[str, Any]) -> None:
    """deploy/README.md's service table must not drift from compose.yaml."""
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for name, svc in compose["services"].items():
        assert f"`{svc['image']}`" in readme, f"README does not name {name}'s image"
    plugin = _env(compose["services"]["grafana"])["GF_PLUGINS_PREINSTALL_SYNC"]
    assert f"`{plugin}`" in readme


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    """Validated against the Compose Specification's JSON schema as the check-jsonschema
    package ships it (its vendored ``compose-spec.json``), so the check runs offline."""
    import json
    from importlib.resources import files

    import jsonschema

    schema = json.loads(
        files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    )
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []
    # and the schema does catch a wrong depends_on condition
    broken = copy.deepcopy(compose)
    broken["services"]["otelcol"]["depends_on"]["migrate"]["condition"] = "service_done"
    assert list(validator.iter_errors(broken))
