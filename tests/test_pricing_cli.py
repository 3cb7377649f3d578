"""``spanledger prices show|unpriced``: output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from spanledger.cli.main import main
from support.pricing import write

PRICES = """
calls:
  - db_system: qdrant
    per_call: 0.00002
  - db_system: qdrant
    per_call: 0.00003
    effective_from: 2026-01-01
models:
  - provider: openai
    model: gpt-4o
    input: 2.00
    output: 8.00
    effective_from: 2025-06-01
  - model: my-llama
    input: 0.40
    output: 0.40
    cache_read: 0.40
"""


def test_show_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices", "show", "o3", "--provider", "openai", "--at", "2025-01-01"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "o3: USD per million tokens; '*' = in force on 2025-01-01"
    assert out[1].split()[:4] == ["SOURCE", "PROVIDER", "MODEL", "FROM"]
    assert out[2].split()[:9] == [
        "*",
        "genai-prices@0.2.3",
        "openai",
        "o3",
        "-",
        "2025-06-10",
        "10",
        "40",
        "0.5",
    ]
    assert out[3].split()[:8] == [
        "genai-prices@0.2.3",
        "openai",
        "o3",
        "2025-06-10",
        "-",
        "2",
        "8",
        "0.5",
    ]


def test_show_json_with_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prices = write(tmp_path, PRICES)
    assert (
        main(
            [
                "prices",
                "show",
                "gpt-4o",
                "--provider",
                "openai",
                "--prices",
                str(prices),
                "--at",
                "2026-01-01",
                "--format",
                "json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["unit"] == "USD per million tokens"
    periods = doc["periods"]
    assert [(p["source"], p["in_force"]) for p in periods] == [
        ("genai-prices@0.2.3", False),
        ("override:prices.yaml", True),
    ]
    assert periods[1]["input"] == "2.00" and periods[1]["cache_read"] == "1.000"
    assert periods[1]["effective_from"] == "2025-06-01"


def test_show_per_call_prices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prices = write(tmp_path, PRICES)
    assert main(["prices", "show", "qdrant", "--prices", str(prices), "--at", "2025-05-05"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "qdrant: USD per call; '*' = in force on 2025-05-05"
    assert out[2].split() == [
        "*",
        "override:prices.yaml",
        "db_system",
        "qdrant",
        "-",
        "2026-01-01",
        "0.00002",
    ]
    assert out[3].split() == [
        "override:prices.yaml",
        "db_system",
        "qdrant",
        "2026-01-01",
        "-",
        "0.00003",
    ]


def test_show_self_hosted_from_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SPANLEDGER_PRICES_FILE", str(write(tmp_path, PRICES)))
    assert main(["prices", "show", "my-llama"]) == 0
    assert "override:prices.yaml" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["prices", "show", "no-such-model-x"],
            "spanledger prices: error: unknown model 'no-such-model-x': not in genai-prices@0.2.3",
        ),
        (
            ["prices", "show", "gpt-4o", "--at", "2025-02-30"],
            "spanledger prices: error: --at: expected a date YYYY-MM-DD, got '2025-02-30'",
        ),
    ],
)
def test_show_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [message]


def test_show_bad_prices_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path, "models:\n  - model: x\n    input: -1\n    output: 1\n")
    assert main(["prices", "show", "gpt-4o", "--prices", str(bad)]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"spanledger prices: error: {bad}:3: models[0].input: must be >= 0, got -1"
    )


def test_show_subprocess_exit_code() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "spanledger", "prices", "show", "nope-model"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert run.stderr.strip().endswith("unknown model 'nope-model': not in genai-prices@0.2.3")


SETUP = """
import sys
from spanledger.store import open_store
store = open_store(sys.argv[1], migrate=True)
rows = [
    ("2026-11-01 10:00:00", "a1", "openai", "acme-secret", 100, 10),
    ("2026-11-02 11:00:00", "a2", "openai", "acme-secret", 200, 20),
    ("2026-11-03 12:00:00", "a3", "", "llama-local", 7, 3),
]
COLS = "Timestamp, TraceId, SpanId, SpanName, ServiceName, SpanAttributes"
for ts, span_id, provider, model, inp, out in rows:
    attrs = (f"'gen_ai.provider.name', '{provider}', 'gen_ai.request.model', '{model}', "
             f"'gen_ai.usage.input_tokens', '{inp}', 'gen_ai.usage.output_tokens', '{out}', "
             "'spanledger.cost.status', 'unpriced'")
    store.command(f"INSERT INTO otel_traces ({COLS}) "
                  f"VALUES ('{ts}', 't1', '{span_id}', 'chat', 'svc', map({attrs}))")
priced = ("'gen_ai.request.model', 'gpt-4o', 'gen_ai.usage.input_tokens', '5', "
          "'spanledger.cost.status', 'priced', 'gen_ai.usage.cost', '0.1'")
store.command(f"INSERT INTO otel_traces ({COLS}) "
              f"VALUES ('2026-11-01 10:00:00', 't2', 'b1', 'chat', 'svc', map({priced}))")
store.close()
"""


def test_unpriced_lists_calls_from_the_store(tmp_path: Path) -> None:
    pytest.importorskip("spanledger.store.migrate")
    url = f"chdb://{tmp_path / 'store'}"
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SETUP), url],
        check=True,
        timeout=300,
        capture_output=True,
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "spanledger",
            "prices",
            "unpriced",
            "--url",
            url,
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)
    assert rows == [
        {
            "provider": "openai",
            "model": "acme-secret",
            "calls": 2,
            "first_seen": "2026-11-01T10:00:00+00:00",
            "last_seen": "2026-11-02T11:00:00+00:00",
            "input_tokens": 300,
            "output_tokens": 30,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
        },
        {
            "provider": "",
            "model": "llama-local",
            "calls": 1,
            "first_seen": "2026-11-03T12:00:00+00:00",
            "last_seen": "2026-11-03T12:00:00+00:00",
            "input_tokens": 7,
            "output_tokens": 3,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
        },
    ]
    table = subprocess.run(
        [sys.executable, "-m", "spanledger", "prices", "unpriced", "--url", url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "PROVIDER",
        "MODEL",
        "CALLS",
        "FIRST_SEEN",
        "LAST_SEEN",
        "INPUT_TOKENS",
        "OUTPUT_TOKENS",
        "CACHE_READ_TOKENS",
        "CACHE_WRITE_TOKENS",
    ]
    assert lines[1].split()[:3] == ["openai", "acme-secret", "2"]
    assert lines[2].split()[:3] == ["-", "llama-local", "1"]


def test_unpriced_on_a_store_without_schema_exits_1(tmp_path: Path) -> None:
    # a directory that exists but was never migrated (one that does not exist is refused
    # before anything opens it: tests/test_reports_errors.py)
    (tmp_path / "empty").mkdir()
    url = f"chdb://{tmp_path / 'empty'}"
    run = subprocess.run(
        [sys.executable, "-m", "spanledger", "prices", "unpriced", "--url", url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "spanledger prices: error: the store has no spanledger schema: "
        "run `spanledger db migrate` first"
    )


def test_unpriced_bad_url_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices", "unpriced", "--url", "ftp://x"]) == 2
    assert capsys.readouterr().err.startswith("spanledger prices: error: storage URL 'ftp://x'")
