"""Serve spanledger's OpenAI-compatible stub provider on a container port.

Why: the compose stack should work offline, so the example service talks to
``spanledger.demo.stub_provider`` instead of a real provider. The stub binds
127.0.0.1 on a random port (it is built for tests); a container needs a fixed
port on all interfaces, so this script serves the stub's request handler on
``MOCK_LLM_HOST:MOCK_LLM_PORT`` (default 0.0.0.0:8080). It answers instantly
with fixed usage numbers; nothing leaves the machine.
"""

from __future__ import annotations

import os
import signal
import sys
from http.server import ThreadingHTTPServer
from types import FrameType

from spanledger.demo import stub_provider


def build_server(host: str, port: int) -> ThreadingHTTPServer:
    stub = stub_provider.StubProvider(start=False)
    server = ThreadingHTTPServer((host, port), stub_provider._Handler)
    server.daemon_threads = True
    # the handler reads its configuration and counters from server.stub
    server.stub = stub  # type: ignore[attr-defined]
    return server


def main() -> int:
    host = os.environ.get("MOCK_LLM_HOST", "0.0.0.0")
    port = int(os.environ.get("MOCK_LLM_PORT", "8080"))
    server = build_server(host, port)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"mock LLM provider on http://{host}:{server.server_address[1]}/v1", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
