"""A local OpenAI- and Anthropic-compatible HTTP stub: the only stand-in in the suite.

Why it exists: the tests and ``spanledger demo`` drive the *real* ``openai`` and
``anthropic`` clients and their OpenTelemetry instrumentations, so the span
attributes are exactly what production emits. Only the provider is replaced,
by this server on 127.0.0.1, which answers instantly with usage numbers the
caller chose (so expected costs can be computed independently).

Endpoints (a leading ``/v1`` may appear once or twice, so both clients' base
URL conventions work with :attr:`StubProvider.base_url`):

- ``POST /v1/chat/completions``: plain, streaming (SSE; a final usage chunk when
  ``stream_options.include_usage`` is set), and tool calls: when the request
  offers ``tools`` and the conversation holds fewer than ``tool_rounds`` tool
  results, the answer is an assistant message with ``tool_calls`` (so an agent
  loop runs ``tool_rounds`` times, then gets a text answer).
- ``POST /v1/embeddings``
- ``POST /v1/messages`` (Anthropic), plain and streaming, with
  ``cache_read_input_tokens`` / ``cache_creation_input_tokens`` and the 5m / 1h split
  (``cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``).
- ``POST /model/{modelId}/converse`` (Amazon Bedrock Converse, as ``boto3`` sends it):
  ``usage.inputTokens`` EXCLUDES ``cacheReadInputTokens`` / ``cacheWriteInputTokens``.

Mistral's client speaks the OpenAI chat and embeddings shapes; its streams always end
with a usage chunk (``StubConfig.stream_usage``). Response ids carry a random prefix per
stub, as real providers' ids are unique: spanledger matches two spans of one call by them.
A requested ``service_tier`` is echoed in the response (``auto`` answers ``default``).

Fast on purpose (the demo pushes ~20k calls): a threading server speaking
HTTP/1.1 keep-alive, Nagle off, no sleeps, no logging.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["AnthropicUsage", "ChatUsage", "StubProvider"]


@dataclass(frozen=True, slots=True)
class ChatUsage:
    """OpenAI usage for one chat completion (``prompt_tokens`` includes ``cached_tokens``)."""

    prompt_tokens: int = 100
    completion_tokens: int = 20
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def as_openai(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


@dataclass(frozen=True, slots=True)
class AnthropicUsage:
    """Anthropic usage: ``input_tokens`` EXCLUDES the cache reads and writes (Anthropic's API).

    ``cache_creation_input_tokens`` is every cache write; ``cache_write_1h_tokens`` of them
    were written with the one-hour TTL (billed at a higher rate than the 5-minute ones).
    """

    input_tokens: int = 100
    output_tokens: int = 20
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_write_1h_tokens: int = 0

    def as_anthropic(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
        }
        if self.cache_write_1h_tokens:
            out["cache_creation"] = {
                "ephemeral_5m_input_tokens":
                    self.cache_creation_input_tokens - self.cache_write_1h_tokens,
                "ephemeral_1h_input_tokens": self.cache_write_1h_tokens,
            }
        return out

    def as_bedrock(self) -> dict[str, Any]:
        """The Converse API's ``usage``: the same counts under Bedrock's names."""
        return {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "totalTokens": self.input_tokens + self.output_tokens
            + self.cache_read_input_tokens + self.cache_creation_input_tokens,
            "cacheReadInputTokens": self.cache_read_input_tokens,
            "cacheWriteInputTokens": self.cache_creation_input_tokens,
        }


#: hook: (endpoint "chat"|"embeddings"|"messages"|"converse", request JSON) -> usage or None
UsageHook = Callable[[str, dict[str, Any]], "ChatUsage | AnthropicUsage | int | None"]


@dataclass(slots=True)
class StubConfig:
    """What the stub answers. Mutable so a test can change it between calls."""

    chat_usage: ChatUsage = field(default_factory=ChatUsage)
    anthropic_usage: AnthropicUsage = field(default_factory=AnthropicUsage)
    #: embeddings usage: prompt_tokens (= total_tokens)
    embedding_tokens: int = 8
    embedding_dimensions: int = 8
    #: model reported in responses; None echoes the requested model
    response_model: str | None = None
    #: tool-call rounds before the final answer, when the request offers tools
    tool_rounds: int = 1
    reply_text: str = "Hello from the spanledger stub."
    #: optional per-request override of usage (e.g. a demo that varies sizes)
    usage_hook: UsageHook | None = None
    #: end every chat stream with a usage chunk, asked for or not (Mistral's API does)
    stream_usage: bool = False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, stub: StubProvider, host: str, port: int) -> None:
        self.stub = stub
        super().__init__((host, port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging (20k calls in the demo)."""

    def do_GET(self) -> None:
        path = _normalize(self.path)
        if path == "/models":
            models = [{"id": "gpt-4o-mini", "object": "model", "owned_by": "stub"}]
            self._send_json(200, {"object": "list", "data": models})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "stub"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send_json(400, {"error": {"message": "invalid JSON", "type": "stub"}})
            return
        path = _normalize(self.path)
        stub = self.server.stub
        stub._count(path)
        if path.startswith("/model/") and path.endswith("/converse"):
            self._converse(stub, body, path[len("/model/"):-len("/converse")])
        elif path == "/chat/completions":
            self._chat(stub, body)
        elif path == "/embeddings":
            self._embeddings(stub, body)
        elif path == "/messages":
            self._messages(stub, body)
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "stub"}})

    # --- OpenAI -------------------------------------------------------------
    def _chat(self, stub: StubProvider, body: dict[str, Any]) -> None:
        cfg = stub.config
        usage = cfg.chat_usage
        if cfg.usage_hook is not None:
            usage = cfg.usage_hook("chat", body) or usage  # type: ignore[assignment]
        assert isinstance(usage, ChatUsage)
        model = cfg.response_model or str(body.get("model", "stub-model"))
        cid = f"chatcmpl-{stub._next_id()}"
        tier = _service_tier(body)
        message: dict[str, Any] = {"role": "assistant", "content": cfg.reply_text}
        finish = "stop"
        tools = body.get("tools") or []
        if tools and _tool_results(body) < cfg.tool_rounds:
            fn = tools[0].get("function", {}).get("name", "tool")
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [{
                    "id": f"call_{stub._next_id()}",
                    "type": "function",
                    "function": {"name": fn, "arguments": json.dumps({"query": "stub"})},
                }],
            }
            finish = "tool_calls"
        if body.get("stream"):
            self._chat_stream(cid, model, message, finish, usage, body, tier)
            return
        answer: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "system_fingerprint": "fp_stub",
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish}],
            "usage": usage.as_openai(),
        }
        if tier is not None:
            answer["service_tier"] = tier
        self._send_json(200, answer)

    def _chat_stream(self, cid: str, model: str, message: dict[str, Any], finish: str,
                     usage: ChatUsage, body: dict[str, Any], tier: str | None) -> None:
        include_usage = (bool((body.get("stream_options") or {}).get("include_usage"))
                         or self.server.stub.config.stream_usage)
        base: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk",
                                "created": 1_700_000_000, "model": model,
                                "system_fingerprint": "fp_stub"}
        if tier is not None:
            base["service_tier"] = tier
        events: list[dict[str, Any]] = []
        if message.get("tool_calls"):
            call = message["tool_calls"][0]
            delta = {"role": "assistant", "content": None, "tool_calls": [{"index": 0, **call}]}
            choice = {"index": 0, "delta": delta, "finish_reason": None}
            events.append({**base, "choices": [choice]})
        else:
            events.append({**base, "choices": [{"index": 0, "delta": {"role": "assistant",
                                                                        "content": ""},
                                                "finish_reason": None}]})
            for word in str(message["content"]).split(" "):
                events.append({**base, "choices": [{"index": 0, "delta": {"content": word + " "},
                                                    "finish_reason": None}]})
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if include_usage:
            events.append({**base, "choices": [], "usage": usage.as_openai()})
        chunks = [f"data: {json.dumps(e)}\n\n" for e in events]
        chunks.append("data: [DONE]\n\n")
        self._send_sse("".join(chunks).encode())

    def _embeddings(self, stub: StubProvider, body: dict[str, Any]) -> None:
        cfg = stub.config
        tokens: Any = cfg.embedding_tokens
        if cfg.usage_hook is not None:
            tokens = cfg.usage_hook("embeddings", body) or tokens
        inputs = body.get("input", "")
        count = len(inputs) if isinstance(inputs, list) and inputs and not isinstance(
            inputs[0], int) else 1
        dims = cfg.embedding_dimensions
        data = [{"object": "embedding", "index": i,
                 "embedding": [round(0.01 * (i + j + 1), 4) for j in range(dims)]}
                for i in range(count)]
        self._send_json(200, {
            "id": f"emb-{stub._next_id()}",  # Mistral's client requires one; OpenAI ignores it
            "object": "list",
            "data": data,
            "model": cfg.response_model or str(body.get("model", "stub-embedding")),
            "usage": {"prompt_tokens": int(tokens), "total_tokens": int(tokens)},
        })

    # --- Anthropic ----------------------------------------------------------
    def _messages(self, stub: StubProvider, body: dict[str, Any]) -> None:
        cfg = stub.config
        usage = cfg.anthropic_usage
        if cfg.usage_hook is not None:
            usage = cfg.usage_hook("messages", body) or usage  # type: ignore[assignment]
        assert isinstance(usage, AnthropicUsage)
        model = cfg.response_model or str(body.get("model", "claude-stub"))
        mid = f"msg_{stub._next_id()}"
        if body.get("stream"):
            self._messages_stream(mid, model, usage, cfg.reply_text)
            return
        self._send_json(200, {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": cfg.reply_text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage.as_anthropic(),
        })

    def _messages_stream(self, mid: str, model: str, usage: AnthropicUsage, text: str) -> None:
        # The real API reports a small output count here and the cumulative count in
        # message_delta; instrumentations that add both would over-count, so the stub
        # says 0 here and the exact number at the end.
        start_usage = {**usage.as_anthropic(), "output_tokens": 0}
        events: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"type": "message_start", "message": {
                "id": mid, "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
        ]
        for word in text.split(" "):
            events.append(("content_block_delta", {
                "type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": word + " "}}))
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": usage.output_tokens}}),
            ("message_stop", {"type": "message_stop"}),
        ]
        payload = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
        self._send_sse(payload.encode())

    # --- Amazon Bedrock -----------------------------------------------------
    def _converse(self, stub: StubProvider, body: dict[str, Any], model_id: str) -> None:
        cfg = stub.config
        usage = cfg.anthropic_usage
        if cfg.usage_hook is not None:
            usage = cfg.usage_hook("converse", body) or usage  # type: ignore[assignment]
        assert isinstance(usage, AnthropicUsage)
        self._send_json(200, {
            "output": {"message": {"role": "assistant",
                                   "content": [{"text": cfg.reply_text}]}},
            "stopReason": "end_turn",
            "usage": usage.as_bedrock(),
            "metrics": {"latencyMs": 1},
        }, {"x-amzn-RequestId": f"req-{stub._next_id()}"})

    # --- plumbing -----------------------------------------------------------
    def _send_json(self, code: int, obj: dict[str, Any],
                   headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_sse(self, data: bytes) -> None:
        # The whole stream is known up front; a Content-Length keeps keep-alive simple.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _normalize(path: str) -> str:
    """``/v1/v1/messages?beta=true`` -> ``/messages``: accept either client's base URL."""
    path = path.split("?", 1)[0]
    while path.startswith("/v1/") or path == "/v1":
        path = path[3:]
    return path or "/"


def _service_tier(body: dict[str, Any]) -> str | None:
    """The tier a request asked for, as OpenAI answers it (``auto`` is served as ``default``)."""
    tier = body.get("service_tier")
    if not isinstance(tier, str) or not tier:
        return None
    return "default" if tier == "auto" else tier


def _tool_results(body: dict[str, Any]) -> int:
    messages = body.get("messages") or ()
    return sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "tool")


class StubProvider:
    """The stub server, running in a daemon thread on 127.0.0.1 and a free port.

    ``host``/``port`` exist for the offline compose stack, where the stub stands in
    for the provider in its own container (``python -m spanledger.demo.stub_provider``).

    >>> with StubProvider(chat_usage=ChatUsage(prompt_tokens=50)) as stub:
    ...     client = openai.OpenAI(base_url=stub.base_url, api_key="test")

    ``base_url`` (``http://127.0.0.1:PORT/v1``) works for ``openai.OpenAI`` and
    for ``anthropic.Anthropic`` alike; ``root_url`` is the same without ``/v1``.
    """

    def __init__(
        self,
        *,
        chat_usage: ChatUsage | None = None,
        anthropic_usage: AnthropicUsage | None = None,
        embedding_tokens: int = 8,
        response_model: str | None = None,
        tool_rounds: int = 1,
        usage_hook: UsageHook | None = None,
        stream_usage: bool = False,
        start: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._address = (host, port)
        self.config = StubConfig(
            chat_usage=chat_usage or ChatUsage(),
            anthropic_usage=anthropic_usage or AnthropicUsage(),
            embedding_tokens=embedding_tokens,
            response_model=response_model,
            tool_rounds=tool_rounds,
            usage_hook=usage_hook,
            stream_usage=stream_usage,
        )
        self._ids = itertools.count(1)
        #: unique per stub, so ids from two stubs (tests, demo workers) never collide
        self._id_prefix = secrets.token_hex(4)
        self._lock = threading.Lock()
        #: requests served per endpoint ("/chat/completions", "/embeddings", "/messages")
        self.requests: dict[str, int] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    def start(self) -> StubProvider:
        if self._server is None:
            self._server = _Server(self, *self._address)
            self._thread = threading.Thread(target=self._server.serve_forever,
                                            kwargs={"poll_interval": 0.05},
                                            name="spanledger-stub-provider", daemon=True)
            self._thread.start()
        return self

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("stub provider is not running")
        return int(self._server.server_address[1])

    @property
    def root_url(self) -> str:
        host = self._address[0]
        return f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def total_requests(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> StubProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids)}"

    def _count(self, path: str) -> None:
        with self._lock:
            self.requests[path] = self.requests.get(path, 0) + 1


def main() -> int:
    """Serve the stub on ``MOCK_LLM_HOST:MOCK_LLM_PORT`` until SIGTERM/SIGINT (containers)."""
    import os
    import signal

    stub = StubProvider(
        host=os.environ.get("MOCK_LLM_HOST", "127.0.0.1"),
        port=int(os.environ.get("MOCK_LLM_PORT", "8080")),
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    print(f"stub LLM provider on {stub.base_url} (bound to {stub._address[0]})", flush=True)
    stopped.wait()
    stub.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
