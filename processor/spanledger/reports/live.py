"""The live report: the HTML report of the store as it is now, for the collector's ``/report``.

The same page as ``spanledger report html`` (same fetches, same renderer),
plus the pickers: ``?period=YYYY-MM`` or ``?from=YYYY-MM-DD&to=YYYY-MM-DD``,
``?team=`` and ``?feature=`` (``(unattributed)`` for the untagged rows),
``?env=``. A mistake in them is answered with status 400 and the same one-line
message the command line gives, on the page. The collector serves it behind
its token (``?token=`` is carried along by the pickers' form).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import urlencode

from spanledger.errors import UsageError
from spanledger.reports.chargeback import UNATTRIBUTED
from spanledger.reports.html import CSS, fetch_html_data, render_html
from spanledger.reports.html_pickers import Pickers
from spanledger.reports.period import Period, resolve_period
from spanledger.reports.queries import fetch_attribution_values, missing_rollups
from spanledger.reports.revenue import Revenue
from spanledger.store.base import Store

#: what a layer above the reports adds to the page: (store, period, now) -> keyword
#: arguments of fetch_html_data: the ``budget_status`` and ``anomalies`` Reports and the
#: month-end ``forecaster`` (the budgets layer builds them)
Extras = Callable[[Store, Period, dt.datetime], Mapping[str, Any]]

#: months offered by the period picker (the current one and those before)
PICKER_MONTHS = 13


@dataclass(frozen=True, slots=True)
class LiveQuery:
    period: Period
    team: str | None
    feature: str | None
    env: str | None
    top: int


def parse_query(params: Mapping[str, str], today: dt.date | None = None) -> LiveQuery:
    """The page's query parameters; a mistake is a UsageError saying which."""
    def get(name: str) -> str | None:
        value = (params.get(name) or "").strip()
        return value or None

    month = get("period")
    period = resolve_period(month, None if month else get("from"), None if month else get("to"),
                            today)
    top_text = get("top") or "10"
    if not top_text.isdigit() or not 1 <= int(top_text) <= 100:
        raise UsageError(f"top: expected a number from 1 to 100, got {top_text!r}")

    def who(name: str) -> str | None:
        value = get(name)
        return "" if value == UNATTRIBUTED else value

    return LiveQuery(period, who("team"), who("feature"), get("env"), int(top_text))


def live_renderer(revenue: Revenue | None = None, extras: Extras | None = None,
                  now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
                  ) -> Callable[[Store, Mapping[str, str]], tuple[int, str]]:
    """The ``/report`` renderer for ``Collector(config, report=...)``.

    ``revenue`` adds margins to the customer section; ``extras`` the budget states
    and anomalies (handed in by the command, which may use the budgets layer);
    ``now`` is asked per request.
    """

    def render(store: Store, params: Mapping[str, str]) -> tuple[int, str]:
        return render_live_report(store, params, now=now(), revenue=revenue, extras=extras)

    return render


def render_live_report(store: Store, params: Mapping[str, str], *,
                       now: dt.datetime | None = None, revenue: Revenue | None = None,
                       extras: Extras | None = None, action: str = "/report"
                       ) -> tuple[int, str]:
    """(status, page) for one request: 200 and the report, or 400 and what is wrong."""
    now = now or dt.datetime.now(dt.UTC)
    today = now.date()
    token = params.get("token") or params.get("password")
    carried = {"token": token} if token else {}
    try:
        query = parse_query(params, today)
    except UsageError as exc:
        return 400, error_page(str(exc), carried)
    teams: list[str] = []
    features: list[str] = []
    if not missing_rollups(store):
        teams, features = fetch_attribution_values(
            store, min(query.period.start, today - dt.timedelta(days=400)))
    months = _months(today, query.period)
    whole = query.period.label if query.period.label in months else None
    pickers = Pickers(
        action=action, months=months, teams=teams, features=features, period=whole,
        date_from=None if whole else query.period.start.isoformat(),
        date_to=None if whole else query.period.end.isoformat(),
        team=query.team, feature=query.feature,
        hidden=carried | ({"env": query.env} if query.env else {}))
    added = dict(extras(store, query.period, now)) if extras is not None else {}
    data = fetch_html_data(store, query.period, env=query.env, top=query.top, today=today,
                           now=now, revenue=revenue, team=query.team, feature=query.feature,
                           pickers=pickers, **added)
    return 200, render_html(data)


def _months(today: dt.date, period: Period) -> list[str]:
    """YYYY-MM of the current month and the PICKER_MONTHS - 1 before it, newest first."""
    out, year, month = [], today.year, today.month
    for _ in range(PICKER_MONTHS):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    if period.label not in out and len(period.label) == 7:
        out.append(period.label)
    return out


def error_page(message: str, carried: Mapping[str, str] | None = None) -> str:
    """The answer to a bad picker value: what is wrong, and a way back."""
    back = "?" + urlencode(dict(carried or {}))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>spanledger: '
            f'report</title><style>{CSS}</style></head><body><h1>Cannot show that report</h1>'
            f'<p class="warn">{escape(message)}</p><p class="note"><a href="{escape(back)}">'
            'the current month</a></p></body></html>\n')
