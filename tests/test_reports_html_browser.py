"""The HTML report in headless Chromium: its sections there, each drilled run's waterfall
climbing to exactly the run's cost in the store, nothing wider than the page at 1280 px,
and the print stylesheet laying it out on A4 landscape when printed to PDF."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from spanledger.store import open_store
from support.browser import CHROMIUM, headless, measure_widths, media_boxes
from support.outcomes import unit_spans
from support.reports import load_store, october_spans, run_cli

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

REVENUE = "customers:\n  - {customer: acme, monthly: 31}\n  - {customer: globex, monthly: 10}\n"
TITLES = ["What stands out", "Spend over time", "Month-end forecast per team",
          "Week over week by feature", "Showback by team", "Spend by feature",
          "Cost per outcome", "Unit economics per customer", "Model mix",
          "LLM calls, tool calls and vector-database queries", "Top agent runs",
          "Inside the top runs", "Unpriced calls", "Budget burn",
          "Anomalies"]  # `report html` adds the anomalies of the period's last week


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("browser")
    url = load_store(folder / "store", october_spans() + unit_spans())
    revenue = folder / "revenue.yaml"
    revenue.write_text(REVENUE)
    out = folder / "report.html"
    code, _, err = run_cli(["report", "html", "--url", url, "--period", "2026-10",
                            "--revenue", str(revenue), "--output", str(out)])
    assert code == 0, err
    return out, url


def test_sections_render_and_each_waterfall_ends_at_the_runs_cost(
        report: tuple[Path, str], tmp_path: Path) -> None:
    page, url = report
    dom = headless("--dump-dom", page.as_uri(), profile=tmp_path / "profile").stdout
    assert re.findall(r"<h2>([^<]+)</h2>", dom) == TITLES
    runs = re.findall(r'<h3>#\d+ <span class="id">([0-9a-z]+)</span></h3>', dom)
    assert runs[0] == "c2"  # the costliest run of October: the runaway chat, $10.00
    store = open_store(url, read_only=True)
    try:
        cost = {str(t): Decimal(str(c)) for t, c in store.query(
            "SELECT TraceId, toString(sum(Cost)) FROM llm_cost_by_trace GROUP BY TraceId")}
    finally:
        store.close()
    charts = re.findall(r"<svg[^>]*aria-label=\"Run #\d+: cost step by step.*?</svg>", dom, re.S)
    assert len(charts) == len(runs) == 3
    for trace, chart in zip(runs, charts, strict=True):
        steps = [Decimal(c) for c in re.findall(r'class="step"[^>]*data-cost="([^"]+)"', chart)]
        running = [Decimal(r) for r in re.findall(r'class="step"[^>]*data-running="([^"]+)"',
                                                  chart)]
        total = re.search(r'class="total" data-running="([^"]+)"', chart)
        assert total is not None
        # each bar starts where the previous one ended, and the last ends at the run's cost
        assert running == [sum(steps[:i + 1], Decimal(0)) for i in range(len(steps))]
        assert running[-1] == Decimal(total.group(1)) == cost[trace], trace
    sized = re.findall(r'<rect class="step"[^>]*height="([\d.]+)"', dom)
    assert sized and all(float(h) >= 1 for h in sized)  # every step visible, $0 ones too


def test_nothing_is_wider_than_the_page_at_1280_px(report: tuple[Path, str],
                                                  tmp_path: Path) -> None:
    seen = measure_widths(report[0], 1280, tmp_path / "profile")
    assert seen["viewport"] >= 1200  # the window really was 1280 wide (minus a scrollbar)
    assert seen["scroll"] == seen["viewport"], seen["wide"][:10]
    assert seen["wide"] == []


def test_ids_and_dates_stay_on_one_line(report: tuple[Path, str]) -> None:
    html = report[0].read_text()
    css = re.search(r"<style>(.*?)</style>", html, re.S)
    assert css is not None and "td.id,.id{white-space:nowrap" in css.group(1)
    trace_cells = re.findall(r'<td class="([^"]+)">[0-9a-z]{32}</td>', html)
    date_cells = re.findall(r'<td class="([^"]+)">2026-10-\d\d \d\d:\d\d:\d\d</td>', html)
    assert trace_cells and date_cells
    assert set(trace_cells) == set(date_cells) == {"id"}


def test_printing_to_pdf_uses_the_print_stylesheet(report: tuple[Path, str],
                                                   tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    headless("--no-pdf-header-footer", f"--print-to-pdf={pdf}", report[0].as_uri(),
             profile=tmp_path / "profile")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    pages = media_boxes(data)
    # @page {size: A4 landscape}: 297 x 210 mm = 842 x 595 pt on every page (Chromium's
    # default, without the stylesheet, is US Letter portrait, 612 x 792)
    assert len(pages) >= 3
    assert all(abs(w - 842) < 2 and abs(h - 595) < 2 for w, h in pages), pages
