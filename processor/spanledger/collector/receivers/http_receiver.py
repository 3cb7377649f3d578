"""OTLP/HTTP receiver (``POST /v1/traces``) plus the telemetry endpoints.

Bodies are ``application/x-protobuf`` or ``application/json`` (OTLP/JSON),
optionally ``Content-Encoding: gzip`` (decoded by :mod:`.http_body`); the
answer uses the request's content type. Status codes follow the OTLP/HTTP
spec so SDK exporters retry exactly when they should: 400 malformed, 401 bad
token, 413 too large, 503 with ``Retry-After`` when the spool is full.
``GET /healthz``, ``GET /metrics`` and ``GET /budgets/state`` (bearer token)
are served by the same server when telemetry shares this port, or by a
separate :class:`HttpServer` with ``intake=None``.

Both run on a :class:`~.guarded_http.GuardedHTTPServer`: connections per
client, deadlines for headers and bodies, and a byte budget for bodies being
read, so slow senders cannot lock fast ones out. A body is read (charged to
that budget) before it takes one of the :data:`MAX_CONCURRENT` decode slots,
so a slot is held only while a complete body is decoded and spooled.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from spanledger.collector import otlp
from spanledger.collector.access import Access
from spanledger.collector.receivers import http_body
from spanledger.collector.receivers.guarded_http import (
    BodyBudgetExceeded,
    GuardedHandler,
    GuardedHTTPServer,
    Limits,
)
from spanledger.collector.receivers.intake import RETRY_AFTER_S, Intake, Refusal

log = logging.getLogger(__name__)

#: bodies decoded and spooled at once; more wait up to SLOT_WAIT_S, then get 503 + Retry-After
MAX_CONCURRENT = 16
SLOT_WAIT_S = 2.0
#: body bytes read at once over all connections: this many maximal bodies (at least 64 MiB)
BODY_BUDGET_BODIES = 4

_STATUS = {
    Refusal.BAD_REQUEST: 400,
    Refusal.OVERSIZE: 413,
    Refusal.UNAUTHENTICATED: 401,
    Refusal.UNAVAILABLE: 503,
    Refusal.INTERNAL: 500,
}


class HttpServer:
    def __init__(self, host: str, port: int, *, intake: Intake | None, max_body_mb: int,
                 health: Callable[[], tuple[bool, str]] | None,
                 metrics_text: Callable[[], str] | None, limits: Limits | None = None,
                 budgets_state: Callable[[], bytes | None] | None = None,
                 token: str | None = None,
                 read_auth: Callable[[str | None], bool] | None = None) -> None:
        self.intake = intake
        #: ``GET /budgets/state``: the budget evaluator's JSON, for a read token
        #: (``read_auth`` of the Authorization header; else the bearer ``token`` when set)
        self.budgets_state = budgets_state
        self.read_auth = read_auth if read_auth is not None else Access(token).read_header
        self.max_body = max_body_mb * 1024 * 1024
        self.health = health
        self.metrics_text = metrics_text
        if limits is None:
            limits = Limits(body_budget=max(BODY_BUDGET_BODIES * self.max_body, 64 << 20))
        self._server = GuardedHTTPServer((host, port), self._handler(), limits)
        self.host = host
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None
        #: complete bodies being decoded and spooled at once: bounds memory under overload
        self.slots = threading.BoundedSemaphore(MAX_CONCURRENT)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2},
                                        name=f"otlp-http:{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _handler(self) -> type[GuardedHandler]:
        outer = self

        class Handler(GuardedHandler):
            server_version = "spanledger-collector"

            def log_message(self, format: str, *args: object) -> None:
                log.debug("%s " + format, self.address_string(), *args)

            def _send(self, status: int, body: bytes, ctype: str,
                      extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz" and outer.health is not None:
                    ok, reason = outer.health()
                    self._send(200 if ok else 503, (reason + "\n").encode(), "text/plain")
                elif path == "/metrics" and outer.metrics_text is not None:
                    self._send(200, outer.metrics_text().encode(),
                               "text/plain; version=0.0.4; charset=utf-8")
                elif path == "/budgets/state" and outer.budgets_state is not None:
                    self._budgets_state()
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _budgets_state(self) -> None:
                if not outer.read_auth(self.headers.get("Authorization")):
                    self._send(401, b"missing or wrong bearer token (a read token)\n",
                               "text/plain")
                    return
                assert outer.budgets_state is not None
                body = outer.budgets_state()
                if body is None:
                    self._send(503, b"budgets not evaluated yet\n", "text/plain",
                               {"Retry-After": "5"})
                else:
                    self._send(200, body, "application/json")

            def do_POST(self) -> None:
                try:
                    self._post()
                except BodyBudgetExceeded:  # the body is half read: answer and hang up
                    self.close_connection = True
                    self._send(503, b"too many bodies in flight; retry later\n", "text/plain",
                               {"Retry-After": str(RETRY_AFTER_S), "Connection": "close"})
                except OSError:  # the client hung up or was too slow: nobody to answer
                    self.close_connection = True
                except Exception:  # the server thread must survive anything
                    log.exception("OTLP/HTTP request failed")
                    with contextlib.suppress(OSError):
                        self._send(500, b"internal error\n", "text/plain")

            def _post(self) -> None:
                intake = outer.intake
                if self.path.split("?", 1)[0] != "/v1/traces" or intake is None:
                    self._drain()
                    self._send(404, b"not found: POST OTLP traces to /v1/traces\n", "text/plain")
                    return
                json_body = False
                try:
                    json_body = http_body.is_json(self.headers)
                    body = http_body.read_body(self.headers, self.read_body, outer.max_body)
                except http_body.BodyRefused as exc:
                    if not exc.consumed:
                        self._drain()
                    self._refuse(exc.refusal, exc.message, json_body, count=intake)
                    return
                if not outer.slots.acquire(timeout=SLOT_WAIT_S):
                    self._refuse(Refusal.UNAVAILABLE, "too many concurrent requests; retry later",
                                 json_body, count=intake)
                    return
                try:
                    outcome = intake.handle(body, json_body=json_body,
                                            auth_header=self.headers.get("Authorization"))
                finally:
                    outer.slots.release()
                if outcome.refusal is not None:
                    self._refuse(outcome.refusal, outcome.message, json_body)
                    return
                assert outcome.accepted is not None
                response = outcome.accepted.response()
                if json_body:
                    self._send(200, otlp.response_json(response), "application/json")
                else:
                    self._send(200, response.SerializeToString(), "application/x-protobuf")

            def _drain(self) -> None:
                """Read a body we do not want (keeps the connection usable), or hang up."""
                self.discard_body(http_body.declared_length(self.headers), outer.max_body)

            def _refuse(self, refusal: Refusal, message: str, json_body: bool,
                        count: Intake | None = None) -> None:
                if count is not None:  # refused before reaching Intake.handle
                    count.metrics.inc("requests_total")
                    count.refuse(refusal, message)
                extra = ({"Retry-After": str(RETRY_AFTER_S)}
                         if refusal is Refusal.UNAVAILABLE else None)
                status = otlp.rpc_status(_STATUS[refusal], message)
                if json_body:
                    self._send(_STATUS[refusal], otlp.status_json(status), "application/json",
                               extra)
                else:
                    self._send(_STATUS[refusal], status.SerializeToString(),
                               "application/x-protobuf", extra)

        return Handler
