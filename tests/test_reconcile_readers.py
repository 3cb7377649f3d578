"""Reading provider exports: formats recognised by content, money exact, models matched by
genai-prices, and every unreadable file answered with ``file:line: field: problem`` (exit 2)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from spanledger.reconcile.formats import AWS_BEDROCK
from spanledger.reconcile.jsonlines import ExportError
from spanledger.reconcile.readers import read_export, read_exports, rewrite_model
from spanledger.reports.model_keys import model_key, provider_key, strip_decorations
from support.reconcile import samples_dir
from support.reports import run_cli

D = Decimal


@pytest.mark.parametrize(("provider", "name", "key"), [
    ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("openai", "openai/gpt-4o", "gpt-4o"),
    ("openai", "gpt-4.1", "gpt-4.1"),
    ("aws.bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
    ("aws", "claude-sonnet-4-5", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5-20251001", "claude-haiku-4-5"),
    ("azure.ai.openai", "gpt-4o-mini-0718", "gpt-4o-mini"),
    ("gcp.vertex_ai", "gemini-2.5-flash-001", "gemini-2.5-flash"),
    ("openai", "acme-intent-ft-v2", "acme-intent-ft-v2"),  # unknown: kept, undecorated
])
def test_model_names_meet_through_the_catalog(provider: str, name: str, key: str) -> None:
    assert model_key(provider, name) == key


def test_provider_names_are_catalog_ids() -> None:
    assert [provider_key(p) for p in ("aws.bedrock", "azure.ai.openai", "gcp.vertex_ai",
                                      "openai", "vllm")] == [
        "aws", "azure", "google", "openai", "vllm"]
    assert strip_decorations("publishers/google/models/gemini-2.5-pro@20250601") == (
        "gemini-2.5-pro")


def test_bedrock_camel_case_model_is_rewritten_to_a_catalog_name() -> None:
    assert rewrite_model("Claude4.5Sonnet", "aws", AWS_BEDROCK.rewrites) == "claude-sonnet-4-5"
    assert rewrite_model("NoSuchModel9", "aws", AWS_BEDROCK.rewrites) == "NoSuchModel9"


def test_formats_are_recognised_by_content() -> None:
    got = {Path(e.file).name: (e.format, e.kind) for e in read_exports(
        sorted(samples_dir().iterdir()))}
    assert got == {
        "openai-costs.json": ("openai-costs", "cost"),
        "openai-usage-completions.json": ("openai-usage", "usage"),
        "anthropic-cost-report.json": ("anthropic-cost", "cost"),
        "anthropic-usage-report.json": ("anthropic-usage", "usage"),
        "focus-aws-bedrock.csv": ("focus", "cost"),
        "focus-azure-openai.csv": ("focus", "cost"),
        "focus-gcp-vertex.csv": ("focus", "cost"),
    }


def test_openai_line_items_and_usage_split_into_token_types() -> None:
    costs = read_export(samples_dir() / "openai-costs.json")
    first = [ln for ln in costs.lines if ln.day == dt.date(2026, 11, 1)]
    kinds = {(ln.model, ln.token_type) for ln in first}
    assert ("gpt-4o-mini-2024-07-18", "cache_read") in kinds
    assert ("text-embedding-3-small", "all") in kinds  # a line item without a type
    usage = read_export(samples_dir() / "openai-usage-completions.json")
    mini = {ln.token_type: ln.tokens for ln in usage.lines
            if ln.day == dt.date(2026, 11, 1) and ln.model.startswith("gpt-4o-mini")}
    # input_tokens 20,000 includes 10,240 cached: billed as 9,760 input + 10,240 cached
    assert mini == {"input": 9_760, "cache_read": 10_240, "output": 3_000}
    assert not usage.covers_embeddings


def test_anthropic_cents_and_cache_write_kinds(tmp_path: Path) -> None:
    doc = {"data": [{"starting_at": "2026-11-05T00:00:00Z", "ending_at": "2026-11-06T00:00:00Z",
                     "results": [
                         {"currency": "USD", "amount": "123.45", "cost_type": "tokens",
                          "model": "claude-sonnet-4-5", "service_tier": "batch",
                          "token_type": "cache_creation.ephemeral_1h_input_tokens"},
                         {"currency": "USD", "amount": "50", "cost_type": "web_search",
                          "model": None, "service_tier": None, "token_type": None}]}]}
    path = tmp_path / "cost.json"
    path.write_text(json.dumps(doc))
    lines = read_export(path).lines
    assert [(ln.amount, ln.token_type, ln.tier, ln.variant) for ln in lines] == [
        (D("1.2345"), "cache_write", "batch", "1h"), (D("0.5"), "requests", "standard", "")]
    assert lines[1].model == "web_search"


def test_a_list_of_pages_is_one_report(tmp_path: Path) -> None:
    page = json.loads((samples_dir() / "openai-costs.json").read_text())
    first, second = dict(page, data=page["data"][:1]), dict(page, data=page["data"][1:])
    path = tmp_path / "pages.json"
    path.write_text(json.dumps([first, second]))
    assert len(read_export(path).lines) == len(read_export(samples_dir() /
                                                           "openai-costs.json").lines)


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(("name", "text", "message"), [
    ("broken.json", '{"data": [\n  {"start_time": 1,\n  ]}',
     "broken.json:3: invalid JSON: Expecting property name enclosed in double quotes"),
    ("nogroup.json", '{"object": "page", "data": [{"start_time": 1793491200, "results": [\n'
     '  {"object": "organization.costs.result", "amount": {"value": 1.5, "currency": "usd"},'
     ' "line_item": null, "project_id": null}]}]}',
     "nogroup.json:2: line_item: no line item: export the costs with group_by=line_item"),
    ("eur.json", '{"data": [{"starting_at": "2026-11-01T00:00:00Z", "results": [\n'
     '  {"currency": "EUR", "amount": "10", "cost_type": "tokens", "model": "claude-haiku-4-5",'
     ' "token_type": "output_tokens"}]}]}',
     "eur.json:2: currency: only USD bills are supported, got 'EUR'"),
    ("time.json", '{"data": [\n {"starting_at": "yesterday", "results": [\n'
     '  {"currency": "USD", "amount": "10", "cost_type": "tokens", "model": "m",'
     ' "token_type": "output_tokens"}]}]}',
     "time.json:2: starting_at: expected an RFC 3339 time, got 'yesterday'"),
    ("what.json", '{"data": [{"results": [{"foo": 1}]}]}',
     "what.json:1: cannot tell which provider export this is"),
    ("tokens.json", '{"data": [{"starting_at": "2026-11-01T00:00:00Z", "results": [\n'
     '  {"uncached_input_tokens": -5, "output_tokens": 1, "model": "claude-haiku-4-5"}]}]}',
     "tokens.json:2: uncached_input_tokens: expected a token count, got -5"),
    ("focus.csv", "BilledCost,ChargePeriodStart\n1,2026-11-01T00:00:00Z\n",
     "focus.csv:1: not a FOCUS cost and usage file: no column BillingCurrency"),
    ("focusrow.csv", "BilledCost,BillingCurrency,ChargePeriodStart,ServiceName,ConsumedQuantity,"
     "ConsumedUnit,x_UsageType\n1,USD,2026-11-01T00:00:00Z,Amazon Bedrock,10,Tokens,"
     "USE1-Claude4.5Sonnet-input-tokens\nabc,USD,2026-11-01T00:00:00Z,Amazon Bedrock,10,Tokens,"
     "USE1-Claude4.5Sonnet-input-tokens\n",
     "focusrow.csv:3: BilledCost: expected a number, got 'abc'"),
])
def test_bad_exports_exit_2_naming_file_line_and_field(tmp_path: Path, name: str, text: str,
                                                       message: str) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(ExportError) as err:
        read_export(path)
    assert str(err.value).startswith(f"{tmp_path}/{message}")
    code, out, stderr = run_cli(["reconcile", path, "--url", f"chdb://{tmp_path}/store"])
    assert code == 2 and out == ""
    assert stderr.startswith(f"spanledger reconcile: error: {tmp_path}/{message}")


def test_focus_exports_in_parts_may_share_days(tmp_path: Path) -> None:
    text = (samples_dir() / "focus-aws-bedrock.csv").read_text().splitlines(keepends=True)
    part1 = _write(tmp_path, "part-00000.csv", "".join(text[:4]))
    part2 = _write(tmp_path, "part-00001.csv", "".join([text[0], *text[4:]]))
    lines = [ln for e in read_exports([part1, part2]) for ln in e.lines]
    assert len(lines) == len(read_export(samples_dir() / "focus-aws-bedrock.csv").lines)


def test_the_same_export_twice_is_refused(tmp_path: Path) -> None:
    costs = samples_dir() / "openai-costs.json"
    copy = _write(tmp_path, "copy.json", costs.read_text())
    with pytest.raises(ExportError, match="the same file as"):
        read_exports([costs, copy])
    page = json.loads(costs.read_text())
    page["data"] = page["data"][:1]
    overlap = _write(tmp_path, "overlap.json", json.dumps(page, indent=1))
    with pytest.raises(ExportError, match=r"openai cost on 2026-11-01 is in .* too"):
        read_exports([costs, overlap])


def test_flags_are_checked_before_any_file(tmp_path: Path) -> None:
    code, _, err = run_cli(["reconcile", "missing.json", "--tolerance", "abc"])
    assert code == 2 and "--tolerance: expected a number" in err
    code, _, err = run_cli(["reconcile", "missing.json", "--tolerance", "150%"])
    assert code == 2 and "--tolerance must be between 0 and 100%" in err
    code, _, err = run_cli(["reconcile", str(tmp_path / "missing.json")])
    assert code == 2 and err.endswith("missing.json: file not found\n")
