"""The collector's live ``/report`` page: the HTML report of the store it is writing.

Served by the read-only SQL front (same port, same token: a browser is asked
for it, or the URL carries ``?token=``), so nothing new is exposed and the page
reads exactly what SQL clients read. The page itself is built by the reports
layer; the collector does not import it (it sits below the reports), so the
command that starts the collector hands in the renderer
(``Collector(config, report=...)``; ``spanledger collector`` and ``spanledger
demo --serve`` give :func:`spanledger.reports.live.live_renderer`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from spanledger.store.base import Store, StoreError
from spanledger.store.sql_http import Page

log = logging.getLogger(__name__)

REPORT_PATH = "/report"
#: (store, query parameters) -> (HTTP status, HTML)
ReportRenderer = Callable[[Store, Mapping[str, str]], tuple[int, str]]
_TEXT = "text/plain; charset=UTF-8"


def report_pages(store: Store, render: ReportRenderer) -> dict[str, Page]:
    """The pages to serve on the SQL front: ``/report`` rendered from ``store``."""

    def report(params: dict[str, str]) -> tuple[int, str, bytes]:
        try:
            status, html = render(store, params)
        except StoreError as exc:  # the store is busy or down: the page says so, briefly
            log.warning("/report: the store could not answer: %s", exc)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unavailable"
            return 503, _TEXT, f"the store cannot answer right now: {first}\n".encode()
        except Exception:  # the server thread and the collector must survive anything
            log.exception("/report failed")
            return 500, _TEXT, b"the report could not be rendered (see the collector's log)\n"
        return status, "text/html; charset=UTF-8", html.encode("utf-8")

    return {REPORT_PATH: report}
