"""The HTML report renders in a real browser: bars with size, dollar labels, no external files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support.browser import CHROMIUM, headless
from support.reports import load_store, october_spans, run_cli

BUDGETS = """
by: team
budgets:
  - {team: search, monthly: 3.60}
  - {team: support, monthly: 10}
"""


@pytest.fixture
def report(tmp_path: Path) -> Path:
    url = load_store(tmp_path / "store", october_spans())
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(BUDGETS)
    out = tmp_path / "report.html"
    code, stdout, err = run_cli(["report", "html", "--url", url, "--period", "2026-10",
                                 "--budgets", str(budgets), "--output", str(out)])
    assert code == 0, err
    assert stdout.strip() == str(out.resolve())
    return out


def section_bodies(html: str) -> dict[str, str]:
    """Each ``<section id=...>`` of the page: its id and its HTML."""
    return dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', html, re.S))


#: the charts the report had before the unit-economics sections: per day, per feature,
#: traces, unpriced, budget burn (the new sections are checked in test_reports_html_*.py)
CHART_SECTIONS = ("over-time", "by-feature", "top-runs", "unpriced", "budgets")


def test_html_is_self_contained_and_shows_the_numbers(report: Path) -> None:
    html = report.read_text()
    assert not re.search(r"<script|<link|src=\"http|href=\"http|@import", html)
    sections = section_bodies(html)
    assert sum(sections[s].count("<svg") for s in CHART_SECTIONS) == 5
    for text in ("Spend by team per day, 2026-10", "legend (period total)", "support $14.00",
                 "search $1.80", "(unattributed) $0.2000", "openai/mystery-1",
                 "1 calls, 770 tokens", "x5.0 cost, x5.0 calls", "HARD STOP (120%)",
                 "&gt;= 50%", "$16.00"):
        assert text in html, text


def test_write_html_report_api(tmp_path: Path) -> None:
    import datetime as dt

    from spanledger.reports.html import write_html_report
    from spanledger.reports.period import Period
    from spanledger.store import open_store

    url = load_store(tmp_path / "store", october_spans())
    store = open_store(url, read_only=True)
    try:
        path = write_html_report(store, tmp_path / "sub" / "r.html",
                                 Period(dt.date(2026, 10, 1), dt.date(2026, 10, 31)))
    finally:
        store.close()
    assert path.is_file() and path.is_absolute()
    assert "No budgets file given" in path.read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_html_renders_bars_in_chromium(report: Path, tmp_path: Path) -> None:
    dom = headless("--dump-dom", report.as_uri(), profile=tmp_path / "profile").stdout
    charts = "".join(section_bodies(dom)[s] for s in CHART_SECTIONS)
    bars = re.findall(r'<rect class="bar" [^>]*width="([\d.]+)" height="([\d.]+)"', charts)
    assert len(bars) >= 10
    sized = [b for b in bars if float(b[0]) > 0 and float(b[1]) > 0]
    # per day: 6 priced segments (1st, 2nd, 3rd, 4th, 6th, 10th; the 5th has only the
    # unpriced call); features 3; traces 6 of 7 (c4 is $0); unpriced 1; budgets 2
    assert len(sized) == 18, bars
    shot = tmp_path / "report.png"
    headless(f"--screenshot={shot}", "--window-size=1200,3000", report.as_uri(),
             profile=tmp_path / "profile")
    assert shot.stat().st_size > 50_000  # a blank page is a few kB


def test_week_over_week_flags_threefold_growth_at_greater_or_equal() -> None:
    import datetime as dt
    from decimal import Decimal

    from spanledger.reports.html_charts import week_over_week
    from spanledger.reports.queries import DailyRow

    end = dt.date(2026, 10, 14)
    rows = [DailyRow(dt.date(2026, 10, 1), "rag", Decimal("1.00")),
            DailyRow(dt.date(2026, 10, 8), "rag", Decimal("3.00")),     # x3.0: flagged
            DailyRow(dt.date(2026, 10, 7), "chat", Decimal("1.00")),
            DailyRow(dt.date(2026, 10, 14), "chat", Decimal("2.99")),   # x2.99: not flagged
            DailyRow(dt.date(2026, 10, 9), "", Decimal("0.50"))]        # new spend: flagged
    html = week_over_week(rows, end)
    assert "10-01 – 10-07" in html and "10-08 – 10-14" in html
    assert '<tr class="warn"><td>rag</td><td class="n">$1.00</td><td class="n">$3.00</td>' in html
    assert '<tr><td>chat</td><td class="n">$1.00</td><td class="n">$2.99</td>' in html
    assert '<tr class="warn"><td>(unattributed)</td>' in html and ">new<" in html
    assert ">x3.00<" in html and ">x2.99<" in html


def test_render_html_from_plain_rows_without_a_store() -> None:
    """The page is a function of the fetched rows: headline cards, tables, budget burn."""
    import dataclasses
    import datetime as dt
    from decimal import Decimal

    from spanledger.reports.budgets import Budget, Budgets
    from spanledger.reports.html import HtmlData, render_html
    from spanledger.reports.period import parse_month
    from spanledger.reports.queries import DailyRow, SpendRow, TraceRow

    def spend(team: str, feature: str, status: str, calls: int, cost: str) -> SpendRow:
        return SpendRow((team, feature), "openai", "gpt-4o" if status == "priced" else "odd-1",
                        status, calls, 0, 100 * calls, 10 * calls, 0, 0, 0, Decimal(cost))

    start = dt.datetime(2026, 10, 3, 9, tzinfo=dt.UTC)
    trace = TraceRow("t" * 32, start, start + dt.timedelta(seconds=4), "search", "rag", "",
                     ("svc",), ("gpt-4o",), 3, 0, 0, 300, 30, Decimal("1.20"))
    data = HtmlData(
        period=parse_month("2026-10"),
        spend=[spend("search", "rag", "priced", 3, "1.20"), spend("", "", "priced", 1, "0.30"),
               spend("search", "rag", "unpriced", 2, "0")],
        daily=[DailyRow(dt.date(2026, 10, 3), "search", Decimal("1.20"))],
        traces=[trace],
        wow=[DailyRow(dt.date(2026, 10, 3), "rag", Decimal("1.20"))],
        wow_end=dt.date(2026, 10, 14),
        generated=dt.datetime(2026, 10, 14, 8, 30, tzinfo=dt.UTC),
        today=dt.date(2026, 10, 14),
        env="prod",
        budgets=Budgets("b.yaml", ("team",), {("search",): Budget(Decimal(2), Decimal(120))}),
        budget_spend=[dataclasses.replace(spend("search", "rag", "priced", 3, "1.20"),
                                          group=("search",))],
    )
    html = render_html(data)
    assert html == render_html(data)  # no clock, no store: the same rows, the same page
    assert "2026-10-01 to 2026-10-31 (UTC), environment prod · generated\n2026-10-14 08:30 UTC" \
        in html
    cards = [(k, v) for v, k in re.findall(
        r'<div class="v[^"]*">([^<]*)</div><div class="k">([^<]*)</div>', html)]
    assert cards == [("spend", "$1.50"), ("LLM calls", "6"), ("tool calls", "0"),
                     ("vector-DB calls", "0"), ("agent runs (traces)", "1"),
                     ("unpriced calls", "2"), ("untagged spend (no team)", "$0.3000")]
    assert '<div class="v warn">2</div>' in html  # unpriced calls are flagged
    assert "openai/odd-1" in html and "2 calls, 220 tokens" in html
    assert "60.0% of $2.00" in html  # budget burn: 1.20 of 2.00
    assert html.count("<svg") == 5
