"""The stub provider's contract, as the demo and the tests rely on it (real clients)."""

from __future__ import annotations

import http.client
import json
from typing import Any

import anthropic
import openai

from spanledger.demo.stub_provider import AnthropicUsage, ChatUsage, StubProvider


def test_usage_hook_tool_rounds_and_counts() -> None:
    def hook(endpoint: str, body: dict[str, Any]) -> Any:
        if endpoint == "chat":
            return ChatUsage(prompt_tokens=len(body["messages"]) * 10, completion_tokens=3,
                             reasoning_tokens=2)
        if endpoint == "messages":
            return AnthropicUsage(input_tokens=7, output_tokens=5, cache_read_input_tokens=70)
        return 99

    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    with StubProvider(usage_hook=hook, tool_rounds=2, response_model="gpt-4o-mini-2024-07-18") as s:
        client = openai.OpenAI(base_url=s.base_url, api_key="k", max_retries=0)
        messages: list[Any] = [{"role": "user", "content": "go"}]
        rounds = 0
        while True:
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages,
                                                   tools=tools)  # type: ignore[arg-type]
            msg = reply.choices[0].message
            assert reply.model == "gpt-4o-mini-2024-07-18"
            assert reply.usage is not None
            assert reply.usage.prompt_tokens == len(messages) * 10
            assert reply.usage.completion_tokens_details is not None
            assert reply.usage.completion_tokens_details.reasoning_tokens == 2
            if not msg.tool_calls:
                break
            rounds += 1
            messages += [msg.model_dump(exclude_none=True),
                         {"role": "tool", "tool_call_id": msg.tool_calls[0].id, "content": "x"}]
        assert rounds == 2 and msg.content
        emb = client.embeddings.create(model="text-embedding-3-small", input=["a", "b", "c"])
        assert len(emb.data) == 3 and emb.usage.prompt_tokens == 99
        claude = anthropic.Anthropic(base_url=s.root_url, api_key="k", max_retries=0)
        answer = claude.messages.create(model="claude-haiku-4-5", max_tokens=10,
                                        messages=[{"role": "user", "content": "hi"}])
        assert answer.usage.cache_read_input_tokens == 70 and answer.usage.input_tokens == 7
        assert s.requests == {"/chat/completions": 3, "/embeddings": 1, "/messages": 1}


def test_keep_alive_and_errors() -> None:
    with StubProvider() as s:
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
        for _ in range(3):  # one connection, several requests (HTTP/1.1 keep-alive)
            conn.request("POST", "/v1/chat/completions", json.dumps({"model": "m", "messages": []}),
                         {"Content-Type": "application/json"})
            resp = conn.getresponse()
            assert resp.status == 200 and json.loads(resp.read())["usage"]["prompt_tokens"] == 100
        conn.request("POST", "/v1/nope", "{}")
        resp = conn.getresponse()
        assert resp.status == 404 and b"no route" in resp.read()
        conn.request("POST", "/v1/chat/completions", "not json")
        resp = conn.getresponse()
        assert resp.status == 400
        resp.read()
        conn.close()
    assert s.total_requests == 4  # the invalid JSON never reached an endpoint
