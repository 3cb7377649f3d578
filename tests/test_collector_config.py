"""The collector config file: documented defaults, values as written, errors at file:line: key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from spanledger.collector.config import CollectorConfig, load_config
from spanledger.resources import data_dir
from spanledger.yamlconf import ConfigError

SHIPPED = data_dir("collector-config") / "spanledger.yaml"


def test_documented_config_loads_and_typos_name_file_line_key(tmp_path: Path) -> None:
    shipped = data_dir("collector-config") / "spanledger.yaml"
    cfg = load_config(shipped)
    assert (cfg.grpc.port, cfg.http.port, cfg.sql_http.port) == (4317, 4318, 8123)
    bad = tmp_path / "c.yaml"
    bad.write_text("receivers:\n  otlp:\n    grpc:\n      prot: 4317\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:4: receivers\.otlp\.grpc\.prot: unknown key"):
        load_config(bad)
    bad.write_text("spool:\n  max_mb: lots\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:2: spool\.max_mb: expected a whole number"):
        load_config(bad)


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            out += _keys(kind, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def test_the_shipped_file_documents_every_key_with_its_default() -> None:
    text = SHIPPED.read_text()
    keys = _keys(CollectorConfig)
    assert "receivers.otlp.grpc.max_message_mb" in keys and "auth.bearer_token_env" in keys
    for key in keys:
        leaf = key.rsplit(".", 1)[-1]  # commented-out keys count: they are documented
        assert re.search(rf"^\s*#?\s*{leaf}:", text, re.M), f"{key} is not in {SHIPPED.name}"
    assert load_config(SHIPPED) == CollectorConfig()  # "the values below are the defaults"


def test_values_are_kept_as_written(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "c.yaml").write_text(
        "auth:\n  bearer_token: 0123\n"  # text, not the YAML 1.1 octal 83
        "processors:\n  pricing:\n    prices: overrides/prices.yaml\n"
        "spool:\n  dir: ../spool\n"
        "sql_http:\n  enabled:\n"  # empty: auto (on for chdb)
        "telemetry:\n  port: 0\n"
        "receivers:\n  otlp:\n    grpc:\n    http:\n      enabled: no\n"
    )
    cfg = load_config(conf / "c.yaml")
    assert cfg.bearer_token == cfg.token == "0123"
    assert cfg.pricing.prices == str(conf / "overrides" / "prices.yaml")  # beside the file
    assert cfg.spool.dir == str(conf / ".." / "spool")
    assert cfg.sql_http.enabled is None
    assert cfg.telemetry.port == 0
    assert (cfg.grpc.enabled, cfg.grpc.port, cfg.http.enabled) == (True, 4317, False)


def test_token_from_the_named_variable_or_the_collector_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("auth:\n  bearer_token_env: MY_TOKEN\n")
    monkeypatch.setenv("MY_TOKEN", "from-my-variable")
    assert load_config(config).token == "from-my-variable"
    monkeypatch.delenv("MY_TOKEN")
    assert load_config(config).token is None
    monkeypatch.setenv("SPANLEDGER_COLLECTOR_TOKEN", "collector-wide")
    assert load_config(config).token == "collector-wide"
    assert load_config(None).token == "collector-wide"


@pytest.mark.parametrize(("text", "message"), [
    ("receivers:\n  otlp:\n    grpc:\n      port: 70000\n",
     "c.yaml:4: receivers.otlp.grpc.port: must be a TCP port (0-65535), got 70000"),
    ("processors:\n  batch:\n    workers: -1\n",
     "c.yaml:3: processors.batch.workers: must be >= 0, got -1"),
    ("sql_http:\n  enabled: maybe\n",
     "c.yaml:2: sql_http.enabled: expected true or false, got 'maybe'"),
    ("telemetry:\n  port: '9000'\n",
     "c.yaml:2: telemetry.port: expected a whole number, got '9000'"),
    ("spool: 5\n", "c.yaml:1: spool: expected a mapping (key: value)"),
    ("receivers:\n  otlp:\n    jaeger: {}\n",
     "c.yaml:3: receivers.otlp.jaeger: unknown key (expected one of: grpc, http)"),
    ("auth:\n  bearer_token: [a, b]\n", "c.yaml:2: auth.bearer_token: expected a single value"),
    ("exporters:\n  clickhouse:\n    url: ''\n",
     "c.yaml:3: exporters.clickhouse.url: expected a text value"),
    ("spool:\n  max_mb: 1\nspool:\n  max_mb: 2\n", "c.yaml:3: spool: duplicate key"),
    ("- receivers\n", "c.yaml:1: expected a mapping of sections"),
])
def test_mistakes_name_file_line_key(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(config)
    assert str(err.value) == f"{tmp_path}/{message}"
