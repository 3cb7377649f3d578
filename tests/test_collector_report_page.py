"""The collector's live ``/report``: the HTML report of the store it writes, on the SQL
front, behind the same token, with the period, team and feature pickers applied."""

from __future__ import annotations

import base64
import re
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from spanledger.collector.app import Collector
from spanledger.collector.config import CollectorConfig
from spanledger.reports.live import live_renderer
from support.outcomes import unit_spans
from support.reports import load_store, october_spans

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    url = load_store(tmp_path_factory.mktemp("live") / "store", october_spans() + unit_spans())
    cfg = CollectorConfig()
    cfg.clickhouse.url = url
    cfg.grpc.port = 0
    cfg.http.enabled = False
    cfg.telemetry.port = 0
    cfg.sql_http.port = 0
    cfg.auth.bearer_token = TOKEN
    cfg.batch.workers = 0
    running = Collector(cfg, report=live_renderer()).start()
    try:
        yield running
    finally:
        running.stop()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def page(collector: Collector, query: str) -> tuple[int, str]:
    status, _, body = get(f"{collector.endpoints()['report']}?token={TOKEN}&{query}")
    return status, body


def test_the_report_is_served_with_the_pickers_applied(collector: Collector) -> None:
    assert collector.endpoints()["report"].endswith("/report")
    status, html = page(collector, "period=2026-10&team=support")
    assert status == 200
    assert "(UTC), team support · generated" in html and " · live" in html
    showback = re.search(r'<section id="by-team">(.*?)</section>', html, re.S)
    assert showback is not None
    teams = re.findall(r'<td class="t nw">([^<]+)</td>', showback.group(1))
    assert teams == ["support", "TOTAL"]  # 24.00 in October: chat and triage runs
    assert ">24.0000<" in showback.group(1)
    # the form shows what is picked, and carries the token along
    assert '<option value="2026-10" selected>2026-10</option>' in html
    assert '<option value="support" selected>support</option>' in html
    assert f'<input type="hidden" name="token" value="{TOKEN}">' in html
    assert '<option value="(unattributed)">(unattributed)</option>' in html


def test_a_feature_and_a_date_range(collector: Collector) -> None:
    status, html = page(collector, "from=2026-10-01&to=2026-10-05&feature=triage")
    assert status == 200
    assert "2026-10-01 to 2026-10-05 (UTC), feature triage" in html
    outcome = re.search(r'<section id="cost-per-outcome">(.*?)</section>', html, re.S)
    assert outcome is not None
    # runs 1-3 started by the 5th (runs 4 and the unlinked ticket of the 9th are later)
    assert re.search(r">ticket_resolved</td><td class=\"n\">3</td><td class=\"n\">2</td>",
                     outcome.group(1))
    assert '<input type="date" name="from" value="2026-10-01">' in html


def test_untagged_rows_are_picked_as_unattributed(collector: Collector) -> None:
    status, html = page(collector, "period=2026-10&team=(unattributed)")
    assert status == 200 and "team (unattributed)" in html
    assert "$0.2000" in html and "support" not in re.sub(r"<form.*?</form>", "", html, flags=re.S)


def test_a_bad_picker_value_is_a_400_that_says_which(collector: Collector) -> None:
    status, html = page(collector, "period=2026-13")
    assert status == 400
    assert "--period: expected a month YYYY-MM, got &#x27;2026-13&#x27;" in html
    assert f'href="?token={TOKEN}"' in html
    status, html = page(collector, "from=2026-10-05")
    assert status == 400 and "--from and --to must be given together" in html


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer " + TOKEN},
    {"Authorization": "Basic " + base64.b64encode(f"finance:{TOKEN}".encode()).decode()},
])
def test_the_token_as_a_header_works_too(collector: Collector, headers: dict[str, str]) -> None:
    status, head, body = get(collector.endpoints()["report"] + "?period=2026-10", headers)
    assert status == 200 and body.startswith("<!DOCTYPE html>")
    assert head["Content-Type"] == "text/html; charset=UTF-8"
    assert "default-src 'none'" in head["Content-Security-Policy"]  # no external requests
    assert head["Cache-Control"] == "no-store"


@pytest.mark.parametrize("query", ["", "?token=wrong", "?password=wrong&period=2026-10"])
def test_without_the_token_the_page_is_refused(collector: Collector, query: str) -> None:
    status, head, body = get(collector.endpoints()["report"] + query)
    assert status == 401
    assert head["WWW-Authenticate"].startswith("Basic realm=")  # a browser asks for it
    assert "token" in body and "<html" not in body


def test_the_sql_front_still_answers_beside_the_page(collector: Collector) -> None:
    sql = collector.endpoints()["sql_http"]
    status, _, body = get(f"{sql}/?query=SELECT%20sum(Calls)%20FROM%20llm_cost_daily",
                          {"Authorization": "Bearer " + TOKEN})
    assert (status, body.strip()) == (200, "23")  # every call stored, October or not
    status, _, _ = get(f"{sql}/?query=SELECT%201")
    assert status == 403  # the SQL interface keeps its ClickHouse-style refusal


def test_no_page_without_a_renderer(collector: Collector) -> None:
    from spanledger.store.sql_http import SqlHttpServer

    assert "report" not in Collector(CollectorConfig()).endpoints()
    with SqlHttpServer(collector.store, port=0) as plain:  # type: ignore[arg-type]
        status, _, body = get(plain.url + "/report")
    assert status == 404 and "no handler for /report" in body


def test_the_page_takes_its_turn_in_the_sql_fronts_queue(collector: Collector) -> None:
    """A page is one query in the front's queue: while another read runs and the queue is
    full it is refused like a SQL client (503, Retry-After), never run beside it."""
    import threading

    from spanledger.store.sql_http import SqlHttpServer

    calls: list[str] = []

    def page(params: dict[str, str]) -> tuple[int, str, bytes]:
        calls.append(params.get("n", ""))
        return 200, "text/plain; charset=UTF-8", b"ok\n"

    with SqlHttpServer(collector.store, port=0, max_queued=0,  # type: ignore[arg-type]
                       pages={"/report": page}) as front:
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with front.turns.turn():
                held.set()
                release.wait(30)

        worker = threading.Thread(target=hold)
        worker.start()
        try:
            assert held.wait(30)
            status, head, body = get(front.url + "/report?n=1")
        finally:
            release.set()
            worker.join(30)
        assert status == 503 and head["Retry-After"] == "1"
        assert "TOO_MANY_SIMULTANEOUS_QUERIES" in body and calls == []
        assert get(front.url + "/report?n=2")[:1] == (200,) and calls == ["2"]
