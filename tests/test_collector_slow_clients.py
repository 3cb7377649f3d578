"""Slow or greedy HTTP clients cannot lock others out of the collector's HTTP servers.

The guarded server alone (small limits, in this process): deadlines close
trickling connections, connections per client address are bounded, body
bytes in flight come from a budget a client gets half of at most. Then the
real collector: a fast client is served while dozens of connections trickle
headers and bodies into the OTLP/HTTP and the telemetry ports.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from spanledger.collector.receivers.guarded_http import (
    BodyBudgetExceeded,
    GuardedHandler,
    GuardedHTTPServer,
    Limits,
)
from support.collector import start_collector
from support.loadgen import genai_request

#: generous upper bound for anything the server must do "eventually"
PATIENCE_S = 15


class _Echo(GuardedHandler):
    """Answers a POST with the number of body bytes it read."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        try:
            body = self.read_body(int(self.headers["Content-Length"]))
        except BodyBudgetExceeded:
            self._answer(503, b"budget")
            return
        self._answer(200, str(len(body)).encode())

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def _server(**limits: float) -> Iterator[GuardedHTTPServer]:
    server = GuardedHTTPServer(("127.0.0.1", 0), _Echo, Limits(**limits))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _connect(server: GuardedHTTPServer, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(server.server_address[:2])
    sock.settimeout(PATIENCE_S)
    return sock


def _post_head(length: int) -> bytes:
    return f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()


def _answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            while len(rest) < int(line.split(b":")[1]):
                rest += sock.recv(4096)
    return head.split(b"\r\n")[0] + b" | " + rest


def _closed_while_trickling(sock: socket.socket, byte: bytes = b"x") -> bool:
    """Send a byte every 50 ms until the server hangs up (True) or patience runs out."""
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        try:
            sock.send(byte)
        except OSError:
            return True
        readable, _, _ = select.select([sock], [], [], 0.05)
        if readable:
            try:
                if not sock.recv(4096):
                    return True
            except OSError:
                return True
    return False


def test_trickled_headers_are_cut_off() -> None:
    with _server(header_timeout=0.5) as server, _connect(server) as sock:
        sock.send(b"POST / HTTP/1.1\r\nX-Slow: ")
        assert _closed_while_trickling(sock)
        assert _eventually(lambda: server.open_connections() == 0)


def test_trickled_body_is_cut_off_and_its_bytes_released() -> None:
    with _server(body_timeout=0.5) as server, _connect(server) as sock:
        sock.send(_post_head(1_000_000))
        assert _closed_while_trickling(sock)
        assert _eventually(lambda: server.charged == 0 and server.open_connections() == 0)


def test_idle_keepalive_connection_is_closed() -> None:
    with _server(idle_timeout=0.5) as server, _connect(server) as sock:
        sock.sendall(_post_head(3) + b"abc")
        assert _answer(sock) == b"HTTP/1.1 200 OK | 3"
        sock.sendall(_post_head(2) + b"de")  # kept alive: a second request on it
        assert _answer(sock) == b"HTTP/1.1 200 OK | 2"
        assert sock.recv(1) == b""  # then idle: the server hangs up


def test_connections_per_client_are_bounded() -> None:
    with _server(max_per_client=3) as server:
        held = [_connect(server) for _ in range(3)]
        assert _eventually(lambda: server.open_connections("127.0.0.1") == 3)
        with _connect(server) as extra:
            refused = _answer(extra)
            assert refused.startswith(b"HTTP/1.1 503 Service Unavailable | too many connections")
        with _connect(server, "127.0.0.2") as other:  # another client is still served
            other.sendall(_post_head(4) + b"fast")
            assert _answer(other) == b"HTTP/1.1 200 OK | 4"
        held.pop().close()
        assert _eventually(lambda: server.open_connections("127.0.0.1") == 2)
        with _connect(server) as again:
            again.sendall(_post_head(2) + b"ok")
            assert _answer(again) == b"HTTP/1.1 200 OK | 2"
        for sock in held:
            sock.close()


def test_body_budget_is_shared_fairly() -> None:
    budget = 1024 * 1024
    with _server(body_budget=budget) as server, _connect(server) as greedy:
        greedy.sendall(_post_head(budget // 2) + b"x" * (budget // 2 - 1000))  # holds ~half
        assert _eventually(lambda: server.charged >= budget // 2 - 64 * 1024)
        with _connect(server) as same_client:
            same_client.sendall(_post_head(100_000) + b"y" * 100_000)
            assert _answer(same_client) == b"HTTP/1.1 503 Service Unavailable | budget"
        with _connect(server, "127.0.0.2") as other:
            other.sendall(_post_head(100_000) + b"z" * 100_000)
            assert _answer(other) == b"HTTP/1.1 200 OK | 100000"
        greedy.sendall(b"x" * 1000)
        assert _answer(greedy) == b"HTTP/1.1 200 OK | " + str(budget // 2).encode()
        assert _eventually(lambda: server.charged == 0)


def _eventually(check: object) -> bool:
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


class _Tricklers:
    """Connections that send a request's first bytes, then one byte every 200 ms."""

    def __init__(self) -> None:
        self.socks: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def open(self, url: str, first: bytes, count: int) -> None:
        parts = urlsplit(url)
        for _ in range(count):
            sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
            sock.sendall(first)
            self.socks.append(sock)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for sock in self.socks:
                with suppress(OSError):
                    sock.send(b"a")

    def __enter__(self) -> _Tricklers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self.socks:
            sock.close()


def test_fast_client_is_served_while_slow_ones_trickle(tmp_path: Path) -> None:
    config = tmp_path / "collector.yaml"
    config.write_text("telemetry:\n  port: 0\n")
    running = start_collector(tmp_path / "store", config=config)
    try:
        otlp_url, healthz = running.http_url, running.endpoints["healthz"]
        body_head = (b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/x-protobuf\r\nContent-Length: 1000000\r\n\r\n")
        with _Tricklers() as slow:
            slow.open(otlp_url, body_head, 20)  # more than the 16 decode slots
            slow.open(otlp_url, b"POST /v1/traces HTTP/1.1\r\nX-Slow: ", 20)
            slow.open(healthz, b"GET /healthz HTTP/1.1\r\nX-Slow: ", 20)
            time.sleep(1)  # let them all be accepted and start trickling
            sent = 0
            for _ in range(5):
                request = genai_request(10)
                r = requests.post(otlp_url, data=request.SerializeToString(), timeout=30,
                                  headers={"Content-Type": "application/x-protobuf"})
                assert r.status_code == 200, r.text
                sent += 10
                assert requests.get(healthz, timeout=30).status_code == 200
        assert running.wait_metric("spans_written_total", sent) == sent
    finally:
        assert running.stop() == 0


@pytest.mark.parametrize("length", [0, 5])
def test_read_body_returns_what_was_sent(length: int) -> None:
    with _server() as server, _connect(server) as sock:
        sock.sendall(_post_head(length) + b"h" * length)
        assert _answer(sock) == f"HTTP/1.1 200 OK | {length}".encode()

