"""A read-only, ClickHouse-HTTP-compatible SQL endpoint over a store.

While the collector owns the embedded store, this lets reports, Grafana's
ClickHouse datasource, clickhouse-connect and curl read it: it speaks the
part of ClickHouse's HTTP interface they use (``/ping``, query in ``?query=``
or the POST body, ``default_format`` or a FORMAT clause, ``param_*`` query
parameters, ``database``, X-ClickHouse-* headers) and relays the engine's
own output bytes (Native, TabSeparated, JSON...). Anything but a read is
refused with a ClickHouse-style error: ClickHouse's own parser decides (see
``sql_gate``), and what runs is the canonical text it judged.

Reads must never starve the collector's writes. The embedded engine runs one
statement at a time, so every query runs with a short ``max_execution_time``
(the longest an insert waits behind it; inserts go before waiting reads, see
:class:`~spanledger.store.chdb_store.EngineTurns`), a memory and a result cap;
one query runs at a time and a bounded number wait for their turn, the rest are
refused with 503 ``TOO_MANY_SIMULTANEOUS_QUERIES`` (clients retry). Results
in row formats are streamed from the engine block by block, and a query whose
client has gone away is cancelled at the next block (chdb cannot interrupt a
block being computed: until the first block, ``max_execution_time`` bounds it).
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import logging
import re
import select
import socket
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping
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

#: formats whose output is the concatenation of its blocks' (no header, no footer):
#: these stream from the engine (and can be cancelled between blocks)
_STREAMABLE = frozenset({
    "tabseparated", "tsv", "tabseparatedraw", "tsvraw", "csv", "native", "jsoneachrow",
    "jsonlines", "ndjson", "jsoncompacteachrow", "rowbinary", "values",
})  # fmt: skip
#: only SELECTs stream (chdb refuses SHOW, DESCRIBE, EXPLAIN... as streaming queries)
_SELECTS = ("SELECT", "WITH")
_NOT_STREAMABLE = "Streaming query is not supported"
TOO_MANY_QUERIES = 202
_TOO_MANY_NAME = "TOO_MANY_SIMULTANEOUS_QUERIES"
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
    if code == TOO_MANY_QUERIES:
        return 503
    # syntax, bad arguments, unknown identifier / function / format, bad input
    if code in (62, 36, 47, 46, 73, 27):
        return 400
    return 500


class Turns:
    """One query at a time, at most ``max_queued`` waiting (each at most ``max_wait_s``)."""

    def __init__(self, max_queued: int, max_wait_s: float) -> None:
        self.max_queued = max_queued
        self.max_wait_s = max_wait_s
        self._cv = threading.Condition()
        self.running = 0
        self.waiting = 0

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        with self._cv:
            if self.running or self.waiting:
                if self.waiting >= self.max_queued:
                    raise RefusedQuery(
                        f"Too many simultaneous queries: one runs, {self.waiting} wait "
                        f"(the limit); retry later", TOO_MANY_QUERIES, _TOO_MANY_NAME)
                self.waiting += 1
                try:
                    ready = self._cv.wait_for(lambda: not self.running, self.max_wait_s)
                finally:
                    self.waiting -= 1
                if not ready:
                    raise RefusedQuery(
                        f"Too many simultaneous queries: waited {self.max_wait_s:g} s for a "
                        f"turn; retry later", TOO_MANY_QUERIES, _TOO_MANY_NAME)
            self.running = 1
        try:
            yield
        finally:
            with self._cv:
                self.running = 0
                self._cv.notify()


class SqlHttpServer:
    """Serve ``store`` read-only on ``http://host:port`` from a background thread.

    A query runs at most ``max_execution_time`` seconds, uses at most
    ``max_memory_mb`` of memory and returns at most ``max_result_mb``, so a
    careless dashboard cannot stall or starve the collector that shares the engine;
    one runs at a time, ``max_queued`` may wait (see the module docstring).
    ``port=0`` picks a free port (see :attr:`port` / :attr:`url` after start()).
    With ``token`` set, a request must present it as the password (Basic auth,
    ``X-ClickHouse-Key`` or ``?password=``) or as ``Authorization: Bearer``. With
    ``authorize`` (the collector's read-token check; the store cannot know the
    collector's tokens) it is asked with every secret offered those ways instead.
    ``pages`` are GET paths served beside the SQL interface behind the same check
    (``?token=`` also works there, and a browser is asked for it with Basic auth):
    the collector's live ``/report`` page.
    """

    def __init__(
        self,
        store: Store,
        host: str = "127.0.0.1",
        port: int = 8123,
        token: str | None = None,
        authorize: Callable[[list[str]], bool] | None = None,
        max_execution_time: int = 10,
        max_memory_mb: int = 256,
        max_result_mb: int = 64,
        max_queued: int = 16,
        max_wait_s: float = 30,
        pages: Mapping[str, Page] | None = None,
    ) -> None:
        self.store = store
        self.pages: dict[str, Page] = dict(pages or {})
        self.gate = ReadOnlyGate(store)  # type: ignore[arg-type]
        self.max_execution_time = max_execution_time
        self.max_memory_mb = max_memory_mb
        self.max_result_mb = max_result_mb
        self.turns = Turns(max_queued, max_wait_s)
        #: queries stopped because their client went away
        self.cancelled = 0
        self.host = host
        self.port = port
        self.token = token
        self.authorize = authorize
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
        if not self.token and self.authorize is None:
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
        if self.authorize is not None:
            return self.authorize(offered)
        assert self.token is not None
        return any(hmac.compare_digest(o.encode(), self.token.encode()) for o in offered)

    def run(self, sql: str, params: dict[str, str],
            cancelled: Callable[[], bool] | None = None) -> tuple[list[bytes], str]:
        """Output blocks and format name of the read ``sql``; raises RefusedQuery/StoreError.

        ``cancelled`` is asked between result blocks; when it says yes the query stops.
        """
        database = params.get("database", "")
        if database not in ("", "default"):
            raise RefusedQuery(f"Database {database} does not exist", 81, "UNKNOWN_DATABASE")
        query_params = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        with self.turns.turn():
            read = self.gate.check(sql, query_params or None)
            fmt = read.fmt or params.get("default_format") or DEFAULT_FORMAT
            if fmt.lower() in _PYTHON_FORMATS:
                raise RefusedQuery(f"Unknown output format {fmt}", 73, "UNKNOWN_FORMAT")
            guarded = f"{read.text} SETTINGS {self._settings()}"
            stream = getattr(self.store, "query_stream", None)
            if (stream is not None and fmt.lower() in _STREAMABLE
                    and read.text.lstrip("( ").upper().startswith(_SELECTS)):
                try:
                    return stream(guarded, fmt, query_params or None, cancelled,
                                  self.max_result_mb * 1024 * 1024), fmt
                except StoreError as exc:
                    if exc.code == 394 and cancelled is not None and cancelled():
                        self.cancelled += 1
                        log.info("SQL front: query cancelled, its client went away")
                    if not (exc.code == 36 and _NOT_STREAMABLE in str(exc)):
                        raise
            raw = getattr(self.store, "query_raw", None)
            if raw is None:
                raise StoreError("this store cannot relay raw query output")
            data = raw(guarded, fmt, query_params or None)
            if len(data) > self.max_result_mb * 1024 * 1024:
                raise StoreError(
                    f"Code: 396. DB::Exception: Limit for result exceeded, max bytes: "
                    f"{self.max_result_mb} MiB, current bytes: {len(data) / 1048576:.2f} MiB. "
                    f"(TOO_MANY_ROWS_OR_BYTES)")
            return [data], fmt

    def _settings(self) -> str:
        """The only settings of a query (the gate refuses the query's own).

        readonly first: ClickHouse then refuses any later attempt to change settings.
        Sorting and grouping spill to disk past half the memory cap instead of failing.
        """
        mb = 1024 * 1024
        memory = int(self.max_memory_mb) * mb
        return (f"readonly = 1, max_execution_time = {int(self.max_execution_time)}, "
                f"max_memory_usage = {memory}, "
                f"max_bytes_before_external_group_by = {memory // 2}, "
                f"max_bytes_before_external_sort = {memory // 2}, "
                f"max_result_bytes = {int(self.max_result_mb) * mb}, "
                f"result_overflow_mode = 'throw'")


def client_gone(sock: socket.socket) -> bool:
    """Has the peer closed ``sock``? (hung up, or readable with nothing to read)

    ``poll``, not ``select``: a collector holds many files open, and ``select``
    fails for descriptors past 1023. In doubt the answer is no: the query's
    ``max_execution_time`` still bounds it.
    """
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLHUP | select.POLLERR)
        events = poller.poll(0)
        if not events:
            return False
        if events[0][1] & (select.POLLHUP | select.POLLERR):
            return True
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (OSError, ValueError):
        return False


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
                blocks, fmt = front.run(sql, params, lambda: client_gone(self.connection))
            except RefusedQuery as exc:
                extra = {"Retry-After": "1"} if exc.code == TOO_MANY_QUERIES else None
                self._fail(_http_status(exc.code), exc.code, exc.name, str(exc), extra)
                return
            except StoreError as exc:
                if exc.code == 394 and client_gone(self.connection):
                    self.close_connection = True  # nobody to answer
                    return
                message = str(exc)
                m = _CODE_RE.search(message)
                code = int(m.group(1)) if m else 1000
                n = _NAME_RE.search(message)
                self._fail(_http_status(code), code, n.group(1) if n else "UNKNOWN", message)
                return
            content_type = _CONTENT_TYPES.get(fmt.lower(), "application/octet-stream")
            self._reply(200, blocks, content_type, {"X-ClickHouse-Format": fmt})

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
            try:
                with front.turns.turn():  # a page is one query in the front's queue
                    status, content_type, body = page(params)
            except RefusedQuery as exc:  # the queue is full: retry, like a SQL client
                self._fail(_http_status(exc.code), exc.code, exc.name, str(exc),
                           {"Retry-After": "1"})
                return
            self._reply(status, body, content_type, _PAGE_HEADERS)

        def _fail(self, status: int, code: int, name: str, message: str,
                  extra: dict[str, str] | None = None) -> None:
            body = _error_body(code, name, message, front.version())
            self._reply(
                status, body, "text/plain; charset=UTF-8",
                {"X-ClickHouse-Exception-Code": str(code), **(extra or {})},
            )  # fmt: skip

        def _reply(
            self, status: int, body: bytes | list[bytes], content_type: str,
            extra: dict[str, str] | None = None,
        ) -> None:
            blocks = body if isinstance(body, list) else [body]
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(sum(len(b) for b in blocks)))
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
                for block in blocks:
                    self.wfile.write(block)

    return Handler
