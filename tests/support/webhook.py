"""A local HTTP receiver for alert webhooks: records every request, answers as told."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

from support.local_http import LocalHttpServer, QuietHandler


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    #: the status this request was answered with
    status: int


class WebhookReceiver(LocalHttpServer):
    """``POST`` anything; the n-th request gets ``statuses[n]`` (the last one repeats)."""

    def __init__(self, statuses: tuple[int, ...] = (200,)) -> None:
        self.statuses = list(statuses)
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    n = len(receiver.requests)
                    status = receiver.statuses[min(n, len(receiver.statuses) - 1)]
                    receiver.requests.append(Received(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body, status))
                out = b"ok" if status < 400 else b"no"
                self.send_response(status)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        super().__init__(Handler)

    @property
    def url(self) -> str:
        return f"{self.base_url}/hook"

    def delivered(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.status < 300]

    def __enter__(self) -> WebhookReceiver:
        return self

    def __iter__(self) -> Iterator[Received]:
        return iter(list(self.requests))
