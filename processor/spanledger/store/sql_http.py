"""A read-only, ClickHouse-HTTP-compatible SQL endpoint over a store.

While the collector owns the embedded store, this lets reports, Grafana's
ClickHouse datasource, clickhouse-connect and curl read it: it speaks the
part of ClickHouse's HTTP interface they use (``/ping``, query in ``?query=``
or the POST body, ``default_format`` or a FORMAT clause, ``param_*`` query
parameters, ``database``, X-ClickHouse-* headers) and relays the engine's
own output bytes (Native, TabSeparated, JSON...). Anything but a read is
refused with a ClickHouse-style error: ClickHouse's own parser decides (see
``sql_gate``), and what runs is the canonical text it judged.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import logging
import re
import threading
import uuid
import zlib
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from spanledger.store.base import Store, StoreError
from spanledger.store.sql_gate import ReadOnlyGate, RefusedQuery

log = logging.getLogger(__name__)

DEFAULT_FORMAT = "TabSeparated"
#: chdb-only output "formats" that are Python objects, not bytes
_PYTHON_FORMATS = frozenset({"arrowtable", "dataframe", "debug"})
_MAX_BODY = 16 * 1024 * 1024
_CODE_RE = re.compile(r"Code:\s*(\d+)")
_NAME_RE = re.compile(r"\(([A-Z_]+)\)\s*(?:\(version [^)]*\))?\s*\.?\s*$")

#: a page served beside the SQL interface: query parameters -> (status, content type, body)
Page = Callable[[dict[str, str]], tuple[int, str, bytes]]
#: what a page's answer may load: its own inline styles and images, nothing from elsewhere
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "img-src data:; form-action 'self'",
}

_CONTENT_TYPES = {
    "tabseparated": "text/tab-separated-values; charset=UTF-8",
    "tsv": "text/tab-separated-values; charset=UTF-8",
    "csv": "text/csv; charset=UTF-8; header=absent",
    "csvwithnames": "text/csv; charset=UTF-8; header=present",
    "json": "application/json; charset=UTF-8",
    "jsoncompact": "application/json; charset=UTF-8",
    "jsoneachrow": "application/x-ndjson; charset=UTF-8",
}


def _http_status(code: int) -> int:
    """ClickHouse's mapping of error codes to HTTP statuses, for the codes we produce."""
    if code in (164, 497, 516):  # READONLY, ACCESS_DENIED, AUTHENTICATION_FAILED
        return 403
    if code in (60, 81):  # UNKNOWN_TABLE, UNKNOWN_DATABASE
        return 404
    # syntax, bad arguments, unknown identifier / function / format, bad input
    if code in (62, 36, 47, 46, 73, 27):
        return 400
    return 500


class SqlHttpServer:
    """Serve ``store`` read-only on ``http://host:port`` from a background thread.

    A query runs at most ``max_execution_time`` seconds, uses at most
    ``max_memory_mb`` of memory and returns at most ``max_result_mb``, so a
    careless dashboard cannot stall or starve the collector that shares the engine.
    ``port=0`` picks a free port (see :attr:`port` / :attr:`url` after start()).
    With ``token`` set, a request must present it as the password (Basic auth,
    ``X-ClickHouse-Key`` or ``?password=``) or as ``Authorization: Bearer``.
    ``pages`` are GET paths served beside the SQL interface behind the same token
    (``?token=`` also works there, and a browser is asked for it with Basic auth):
    the collector's live ``/report`` page.
    """

    def __init__(
        self,
        store: Store,
        host: str = "127.0.0.1",
        port: int = 8123,
        token: str | None = None,
        max_execution_time: int = 60,
        max_memory_mb: int = 512,
        max_result_mb: int = 256,
        pages: Mapping[str, Page] | None = None,
    ) -> None:
        self.store = store
        self.pages: dict[str, Page] = dict(pages or {})
        self.gate = ReadOnlyGate(store)  # type: ignore[arg-type]
        self.max_execution_time = max_execution_time
        self.max_memory_mb = max_memory_mb
        self.max_result_mb = max_result_mb
        self.host = host
        self.port = port
        self.token = token
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._version: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SqlHttpServer:
        if self._server is not None:
            return self
        handler = _make_handler(self)
        server = ThreadingHTTPServer((self.host, self.port), handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2},
            name=f"spanledger-sql-http:{self.port}", daemon=True,
        )  # fmt: skip
        self._thread.start()
        log.info("read-only SQL endpoint on %s", self.url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SqlHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request logic (transport-free, so it is easy to reason about) --------
    def version(self) -> str:
        if self._version is None:
            try:
                self._version = str(self.store.query("SELECT version()")[0][0])
            except StoreError:
                self._version = "unknown"
        return self._version

    def authorized(self, headers: Any, params: dict[str, str]) -> bool:
        if not self.token:
            return True
        offered: list[str] = []
        auth = headers.get("Authorization", "")
        if auth.startswith("Basic "):
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                offered.append(base64.b64decode(auth[6:]).decode().partition(":")[2])
        elif auth.startswith("Bearer "):
            offered.append(auth[7:].strip())
        if headers.get("X-ClickHouse-Key"):
            offered.append(headers["X-ClickHouse-Key"])
        if "password" in params:
            offered.append(params["password"])
        return any(hmac.compare_digest(o.encode(), self.token.encode()) for o in offered)

    def run(self, sql: str, params: dict[str, str]) -> tuple[bytes, str]:
        """Output bytes and format name of the read ``sql``; raises RefusedQuery/StoreError."""
        database = params.get("database", "")
        if database not in ("", "default"):
            raise RefusedQuery(f"Database {database} does not exist", 81, "UNKNOWN_DATABASE")
        query_params = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        read = self.gate.check(sql, query_params or None)
        fmt = read.fmt or params.get("default_format") or DEFAULT_FORMAT
        if fmt.lower() in _PYTHON_FORMATS:
            raise RefusedQuery(f"Unknown output format {fmt}", 73, "UNKNOWN_FORMAT")
        # The judged text has no SETTINGS of its own (the gate refuses them), so these are
        # the only ones; readonly first: ClickHouse then refuses any later attempt to change
        # settings.
        mb = 1024 * 1024
        guarded = (
            f"{read.text} SETTINGS readonly = 1, "
            f"max_execution_time = {int(self.max_execution_time)}, "
            f"max_memory_usage = {int(self.max_memory_mb) * mb}, "
            f"max_result_bytes = {int(self.max_result_mb) * mb}, result_overflow_mode = 'throw'"
        )
        raw = getattr(self.store, "query_raw", None)
        if raw is None:
            raise StoreError("this store cannot relay raw query output")
        return raw(guarded, fmt, query_params or None), fmt


def _decompress(body: bytes, encoding: str) -> bytes:
    """Request bodies as ClickHouse accepts them from HTTP clients (gzip, deflate)."""
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "identity":
        return body
    raise ValueError(f"unsupported Content-Encoding {encoding!r} (use gzip, deflate or none)")


def _error_body(code: int, name: str, message: str, version: str) -> bytes:
    message = message.strip()
    if message.startswith("Code:"):
        return (message + "\n").encode()
    return f"Code: {code}. DB::Exception: {message}. ({name}) (version {version})\n".encode()


def _make_handler(front: SqlHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "spanledger-sql-http"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def do_GET(self) -> None:
            self._handle(b"")

        def do_HEAD(self) -> None:
            self._reply(200, b"", "text/plain; charset=UTF-8")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY:
                self._fail(413, 62, "SYNTAX_ERROR", "query is too large")
                return
            self._handle(self.rfile.read(length) if length else b"")

        def _handle(self, body: bytes) -> None:
            parts = urlsplit(self.path)
            if parts.path in ("/ping", "/ping/"):
                self._reply(200, b"Ok.\n", "text/plain; charset=UTF-8")
                return
            if parts.path in front.pages:
                self._page(front.pages[parts.path], parts.query)
                return
            if parts.path not in ("/", ""):
                self._fail(404, 0, "UNKNOWN", f"there is no handler for {parts.path}")
                return
            params = dict(parse_qsl(parts.query, keep_blank_values=True))
            if not front.authorized(self.headers, params):
                self._fail(403, 516, "AUTHENTICATION_FAILED", "authentication failed")
                return
            encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
            if encoding and body:
                try:
                    body = _decompress(body, encoding)
                except (ValueError, zlib.error) as exc:
                    self._fail(400, 62, "SYNTAX_ERROR", f"cannot read {encoding} body: {exc}")
                    return
            if params.get("compress") == "1":
                # clickhouse-go asks for ClickHouse's own block compression with LZ4/ZSTD
                self._fail(400, 36, "BAD_ARGUMENTS", "this endpoint does not send ClickHouse "
                           "block compression (compress=1): set the client's compression to "
                           "none or gzip")
                return
            query = params.get("query", "")
            text = body.decode("utf-8", errors="replace")
            sql = f"{query}\n{text}" if query and text.strip() else (query or text)
            if not sql.strip():
                self._reply(200, b"Ok.\n", "text/plain; charset=UTF-8")
                return
            try:
                data, fmt = front.run(sql, params)
            except RefusedQuery as exc:
                self._fail(_http_status(exc.code), exc.code, exc.name, str(exc))
                return
            except StoreError as exc:
                message = str(exc)
                m = _CODE_RE.search(message)
                code = int(m.group(1)) if m else 1000
                n = _NAME_RE.search(message)
                self._fail(_http_status(code), code, n.group(1) if n else "UNKNOWN", message)
                return
            content_type = _CONTENT_TYPES.get(fmt.lower(), "application/octet-stream")
            self._reply(200, data, content_type, {"X-ClickHouse-Format": fmt})

        def _page(self, page: Page, query: str) -> None:
            params = dict(parse_qsl(query, keep_blank_values=True))
            offered = dict(params)
            if "token" in offered:
                offered.setdefault("password", offered["token"])
            if not front.authorized(self.headers, offered):
                self._reply(401, b"this page needs the collector's token: open it with "
                                 b"?token=TOKEN, or give it as the password\n",
                            "text/plain; charset=UTF-8",
                            {"WWW-Authenticate": 'Basic realm="spanledger", charset="UTF-8"'})
                return
            status, content_type, body = page(params)
            self._reply(status, body, content_type, _PAGE_HEADERS)

        def _fail(self, status: int, code: int, name: str, message: str) -> None:
            body = _error_body(code, name, message, front.version())
            self._reply(
                status, body, "text/plain; charset=UTF-8",
                {"X-ClickHouse-Exception-Code": str(code)},
            )  # fmt: skip

        def _reply(
            self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-ClickHouse-Server-Display-Name", "spanledger")
            self.send_header("X-ClickHouse-Query-Id", str(uuid.uuid4()))
            self.send_header("X-ClickHouse-Timezone", "UTC")
            self.send_header(
                "X-ClickHouse-Summary",
                '{"read_rows":"0","read_bytes":"0","written_rows":"0","written_bytes":"0"}',
            )
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    return Handler
