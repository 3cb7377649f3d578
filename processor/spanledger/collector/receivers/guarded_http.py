"""An HTTP server that slow or greedy clients cannot lock other clients out of.

``http.server`` waits forever for a request's bytes and serves any number of
connections, so a few clients trickling a byte now and then hold threads and
whatever the handler reserved for them (the OTLP receiver's body slots) for as
long as they like. :class:`GuardedHTTPServer` and :class:`GuardedHandler`
bound every resource a client can hold, and for how long:

- connections: at most :attr:`Limits.max_connections` in all and
  :attr:`Limits.max_per_client` per client address; one more is answered
  ``503`` with ``Retry-After`` and closed without reading a byte;
- time, as deadlines over a whole phase (not per ``recv``, which a byte a
  second would satisfy): a kept-alive connection waits at most
  ``idle_timeout`` for its next request, whose request line and headers must
  arrive within ``header_timeout`` of its first byte, its body within
  ``body_timeout`` of the headers (:meth:`GuardedHandler.read_body`), and each
  response must be taken within ``write_timeout``;
- memory: bodies are read in chunks charged to a budget of ``body_budget``
  bytes in flight, at most half of it per client address. A slow sender holds
  only what it has sent; a request that would overdraw the budget is refused
  (:class:`BodyBudgetExceeded`, answered 503 by the handler).

Nothing here knows OTLP: any ``http.server`` handler can derive from
:class:`GuardedHandler` and serve from a :class:`GuardedHTTPServer`.
"""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

#: body bytes read (and charged to the budget) at a time
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """What one client may hold, and for how long (seconds)."""

    max_connections: int = 256
    max_per_client: int = 64
    idle_timeout: float = 30.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    write_timeout: float = 30.0
    #: body bytes buffered at once over all connections (a client gets half at most)
    body_budget: int = 64 * 1024 * 1024
    #: Retry-After (seconds) sent with a refused connection
    retry_after_s: int = 5


class BodyBudgetExceeded(Exception):
    """Reading this body would overdraw the shared (or the client's) byte budget."""


class GuardedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, with the bounds of :class:`Limits` (module docstring)."""

    daemon_threads = True
    block_on_close = False  # stopping must not wait for a slow client's deadline

    def __init__(self, address: tuple[str, int], handler: type[GuardedHandler],
                 limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._lock = threading.Lock()
        self._open: dict[socket.socket, str] = {}
        self._per_client: Counter[str] = Counter()
        self._charged = 0
        self._charged_by: Counter[str] = Counter()
        super().__init__(address, handler)

    # -- connections ----------------------------------------------------------------
    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Admit the connection if neither bound is reached; else answer 503 and close."""
        client = str(client_address[0])
        with self._lock:
            full = (len(self._open) >= self.limits.max_connections
                    or self._per_client[client] >= self.limits.max_per_client)
            if not full:
                self._open[request] = client
                self._per_client[client] += 1
                return True
        log.debug("refusing a connection from %s: too many open", client)
        body = b"too many connections; retry later\n"
        head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\nRetry-After: {self.limits.retry_after_s}\r\n"
                "Connection: close\r\n\r\n").encode()
        try:
            request.setblocking(False)  # a fresh socket's send buffer takes this at once
            request.send(head + body)
        except OSError:
            pass
        return False

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            client = self._open.pop(request, None)
            if client is not None:
                self._per_client[client] -= 1
                if not self._per_client[client]:
                    del self._per_client[client]
        super().shutdown_request(request)

    def open_connections(self, client: str | None = None) -> int:
        with self._lock:
            return len(self._open) if client is None else self._per_client[client]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up or times out is routine, not a traceback on stderr."""
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    # -- the body budget ---------------------------------------------------------------
    def charge(self, client: str, nbytes: int) -> bool:
        """Reserve ``nbytes`` of body memory for ``client``; False when it does not fit."""
        budget = self.limits.body_budget
        with self._lock:
            if (self._charged + nbytes > budget
                    or self._charged_by[client] + nbytes > budget // 2):
                return False
            self._charged += nbytes
            self._charged_by[client] += nbytes
            return True

    def release(self, client: str, nbytes: int) -> None:
        if nbytes <= 0:
            return
        with self._lock:
            self._charged -= nbytes
            self._charged_by[client] -= nbytes
            if self._charged_by[client] <= 0:
                del self._charged_by[client]

    @property
    def charged(self) -> int:
        with self._lock:
            return self._charged


class _DeadlineReader(io.RawIOBase):
    """The socket's input, every ``recv`` bounded by the current phase's deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._deadline = time.monotonic()

    def expire_in(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the client was too slow")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class _TimedWriter(io.RawIOBase):
    """The socket's output: each write (a whole response part) within ``timeout``."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self._sock = sock
        self._timeout = timeout

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._sock.settimeout(self._timeout)  # sendall: the timeout bounds the whole call
        self._sock.sendall(data)
        with memoryview(data) as view:
            return view.nbytes


class GuardedHandler(BaseHTTPRequestHandler):
    """A request handler whose reads have deadlines; bodies come from :meth:`read_body`."""

    server: GuardedHTTPServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.connection = self.request
        self._reader = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader, CHUNK_BYTES)
        self.wfile = _TimedWriter(self.connection, self.server.limits.write_timeout)
        self._charged = 0

    def handle_one_request(self) -> None:
        limits = self.server.limits
        self._reader.expire_in(limits.idle_timeout)
        try:
            if not self.rfile.peek(1):  # the client closed a kept-alive connection
                self.close_connection = True
                return
        except OSError:  # idle too long (TimeoutError) or reset
            self.close_connection = True
            return
        self._reader.expire_in(limits.header_timeout)
        try:
            super().handle_one_request()  # a TimeoutError in it closes the connection
        finally:
            self.server.release(self.client_address[0], self._charged)
            self._charged = 0

    def read_body(self, length: int) -> bytes:
        """Up to ``length`` bytes (fewer only if the client closed), within ``body_timeout``.

        Raises :class:`BodyBudgetExceeded` (the connection is then unusable:
        answer and close) or ``TimeoutError``. The bytes stay charged to the
        budget until this request is answered.
        """
        self._reader.expire_in(self.server.limits.body_timeout)
        client = self.client_address[0]
        chunks: list[bytes] = []
        got = 0
        while got < length:
            want = min(CHUNK_BYTES, length - got)
            if not self.server.charge(client, want):
                self.close_connection = True
                raise BodyBudgetExceeded(f"{got + want} body bytes would exceed the budget")
            self._charged += want
            chunk = self.rfile.read(want)
            self.server.release(client, want - len(chunk))
            self._charged -= want - len(chunk)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def discard_body(self, length: int, limit: int) -> None:
        """Read and drop a body we do not want (keeps the connection usable), or hang up."""
        if 0 < length <= limit:
            try:
                self.read_body(length)
                return
            except BodyBudgetExceeded:
                pass
        if length != 0:
            self.close_connection = True
