"""The cases of the coverage matrix: real clients, real instrumentations, the stub provider.

Each case makes one provider call (or one per span shape it covers) inside an app span
named ``case <name>``, so all spans of the call share a trace, and returns what the
provider billed (:class:`~support.matrix.Expected`). The processor test and the
collector test run the same cases.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from spanledger.demo.stub_provider import AnthropicUsage, ChatUsage, StubProvider
from support.matrix import Expected, Pipelines, instrumented, mistral_sdk_tracing
from support.processor import openai_client

MSGS = [{"role": "user", "content": "hi"}]
#: Anthropic: uncached input LARGER than the cache counts, and 1-hour cache writes
A_USAGE = AnthropicUsage(input_tokens=3000, output_tokens=400, cache_read_input_tokens=1000,
                         cache_creation_input_tokens=500, cache_write_1h_tokens=300)
A_EXPECTED = Expected("anthropic", "claude-sonnet-4-5", 4500, 400, 1000, 500, 300)
#: the same usage through an instrumentation that does not see the 1-hour split
A_EXPECTED_5M = Expected("anthropic", "claude-sonnet-4-5", 4500, 400, 1000, 500)
C_USAGE = ChatUsage(prompt_tokens=2000, completion_tokens=300, cached_tokens=1024,
                    reasoning_tokens=100)


@dataclass(frozen=True)
class Case:
    name: str
    #: (pipelines, stub) -> what the provider billed, None: no usage at all (no_usage)
    run: Callable[[Pipelines, StubProvider], Expected | None]
    #: spans with usage the call makes (duplicates included)
    spans_with_usage: int = 1
    #: the case needs an app span around the call (False: the spans stand alone)
    rooted: bool = True


CASES: list[Case] = []


def case(name: str, spans_with_usage: int = 1, rooted: bool = True
         ) -> Callable[[Callable[[Pipelines, StubProvider], Expected | None]], Any]:
    def register(fn: Callable[[Pipelines, StubProvider], Expected | None]) -> Any:
        CASES.append(Case(name, fn, spans_with_usage, rooted))
        return fn
    return register


def anthropic_client(p: Pipelines, stub: StubProvider) -> Any:
    import anthropic

    # anthropic >= 2 traces itself; a client option names the provider (else the global one)
    return anthropic.Anthropic(base_url=stub.root_url, api_key="stub", max_retries=0,
                               open_telemetry={"tracer_provider": p.provider})


@contextlib.contextmanager
def usage(stub: StubProvider, **changes: Any) -> Iterator[None]:
    before = {k: getattr(stub.config, k) for k in changes}
    for k, v in changes.items():
        setattr(stub.config, k, v)
    try:
        yield
    finally:
        for k, v in before.items():
            setattr(stub.config, k, v)


# -- anthropic ---------------------------------------------------------------------------------

@case("anthropic-sdk-own-span")
def _anthropic_sdk(p: Pipelines, stub: StubProvider) -> Expected:
    with usage(stub, anthropic_usage=A_USAGE), instrumented(p.provider):
        anthropic_client(p, stub).messages.create(model="claude-sonnet-4-5", max_tokens=500,
                                                  messages=MSGS)
    return A_EXPECTED


@case("anthropic-sdk+openllmetry", spans_with_usage=2)
def _anthropic_double(p: Pipelines, stub: StubProvider) -> Expected:
    with usage(stub, anthropic_usage=A_USAGE), instrumented(p.provider, "openllmetry-anthropic"):
        anthropic_client(p, stub).messages.create(model="claude-sonnet-4-5", max_tokens=500,
                                                  messages=MSGS)
    return A_EXPECTED  # the SDK's span (with the 1h split) ends first and keeps the cost


@case("anthropic-sdk+openllmetry-stream", spans_with_usage=2)
def _anthropic_double_stream(p: Pipelines, stub: StubProvider) -> Expected:
    with usage(stub, anthropic_usage=A_USAGE), instrumented(p.provider, "openllmetry-anthropic"), \
            anthropic_client(p, stub).messages.stream(
                model="claude-sonnet-4-5", max_tokens=500, messages=MSGS) as stream:
        for _ in stream:
            pass
    return A_EXPECTED


@case("anthropic-sdk+openllmetry-no-app-span", spans_with_usage=2, rooted=False)
def _anthropic_double_two_traces(p: Pipelines, stub: StubProvider) -> Expected:
    # nothing open around the call: the two spans are roots of two different traces
    with usage(stub, anthropic_usage=A_USAGE), instrumented(p.provider, "openllmetry-anthropic"):
        anthropic_client(p, stub).messages.create(model="claude-sonnet-4-5", max_tokens=500,
                                                  messages=MSGS)
    return A_EXPECTED


# -- mistral -------------------------------------------------------------------------------------

def mistral_client(stub: StubProvider) -> Any:
    from mistralai import Mistral

    return Mistral(api_key="stub", server_url=stub.root_url)


@case("mistral-sdk+openllmetry", spans_with_usage=2)
def _mistral_double(p: Pipelines, stub: StubProvider) -> Expected:
    with usage(stub, chat_usage=ChatUsage(prompt_tokens=1800, completion_tokens=250)), \
            instrumented(p.provider, "openllmetry-mistralai"), mistral_sdk_tracing(p.provider):
        mistral_client(stub).chat.complete(model="mistral-large-latest", messages=MSGS)
    return Expected("mistral", "mistral-large-latest", 1800, 250)


@case("mistral-sdk+openllmetry-stream")
def _mistral_stream(p: Pipelines, stub: StubProvider) -> Expected:
    # Mistral ends every stream with a usage chunk; the SDK's own stream span has no usage
    with usage(stub, chat_usage=ChatUsage(prompt_tokens=900, completion_tokens=90),
               stream_usage=True), \
            instrumented(p.provider, "openllmetry-mistralai"), mistral_sdk_tracing(p.provider):
        for _ in mistral_client(stub).chat.stream(model="mistral-small-latest", messages=MSGS):
            pass
    return Expected("mistral", "mistral-small-latest", 900, 90)


@case("mistral-sdk+openllmetry-embeddings")
def _mistral_embeddings(p: Pipelines, stub: StubProvider) -> Expected:
    # OpenLLMetry's embeddings span has no usage; the SDK's own span has it
    with usage(stub, embedding_tokens=64), instrumented(p.provider, "openllmetry-mistralai"), \
            mistral_sdk_tracing(p.provider):
        mistral_client(stub).embeddings.create(model="mistral-embed", inputs=["a", "b"])
    return Expected("mistral", "mistral-embed", 64)


# -- openai family --------------------------------------------------------------------------------

@case("openinference-openai-cached")
def _openinference_chat(p: Pipelines, stub: StubProvider) -> Expected:
    with usage(stub, chat_usage=C_USAGE), instrumented(p.provider, "openinference-openai"):
        openai_client(stub).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    return Expected("openai", "gpt-4o-mini", 2000, 300, 1024)


@case("openinference-openai-stream")
def _openinference_stream(p: Pipelines, stub: StubProvider) -> Expected:
    with usage(stub, chat_usage=C_USAGE), instrumented(p.provider, "openinference-openai"):
        for _ in openai_client(stub).chat.completions.create(
                model="gpt-4o-mini", messages=MSGS, stream=True,
                stream_options={"include_usage": True}):
            pass
    return Expected("openai", "gpt-4o-mini", 2000, 300, 1024)


@case("openinference-openai-embeddings")
def _openinference_embeddings(p: Pipelines, stub: StubProvider) -> Expected:
    with usage(stub, embedding_tokens=77), instrumented(p.provider, "openinference-openai"):
        openai_client(stub).embeddings.create(model="text-embedding-3-small", input=["a"])
    return Expected("openai", "text-embedding-3-small", 77)


@case("openai-v2-no-cached-tokens")
def _openai_v2(p: Pipelines, stub: StubProvider) -> Expected:
    with usage(stub, chat_usage=C_USAGE), instrumented(p.provider, "openai-v2"):
        openai_client(stub).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    # a known limit of the contrib instrumentation: no cached-token count, so the cached
    # 1024 tokens are priced as uncached input (its spans say nothing else)
    return Expected("openai", "gpt-4o-mini", 2000, 300)


@case("openai-v2-embeddings")
def _openai_v2_embeddings(p: Pipelines, stub: StubProvider) -> Expected:
    with usage(stub, embedding_tokens=55), instrumented(p.provider, "openai-v2"):
        openai_client(stub).embeddings.create(model="text-embedding-3-small", input=["a"])
    return Expected("openai", "text-embedding-3-small", 55)


@case("openllmetry-openai-flex-tier")
def _flex(p: Pipelines, stub: StubProvider) -> Expected:
    with usage(stub, chat_usage=C_USAGE), instrumented(p.provider, "openllmetry-openai"):
        openai_client(stub).chat.completions.create(model="gpt-5", messages=MSGS,
                                                    service_tier="flex")
    return Expected("openai", "gpt-5", 2000, 300, 1024, context={"service_tier": "flex"})


@case("openllmetry-openai-priority-tier")
def _priority(p: Pipelines, stub: StubProvider) -> Expected:
    with usage(stub, chat_usage=C_USAGE), instrumented(p.provider, "openllmetry-openai"):
        openai_client(stub).chat.completions.create(model="gpt-4o-mini", messages=MSGS,
                                                    service_tier="priority")
    return Expected("openai", "gpt-4o-mini", 2000, 300, 1024,
                    context={"service_tier": "priority"})


@case("three-openai-instrumentations", spans_with_usage=3)
def _triple(p: Pipelines, stub: StubProvider) -> Expected:
    # what zero-code `opentelemetry-instrument` does with all three installed
    with usage(stub, chat_usage=C_USAGE), instrumented(
            p.provider, "openllmetry-openai", "openai-v2", "openinference-openai"):
        openai_client(stub).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    return Expected("openai", "gpt-4o-mini", 2000, 300, 1024)


@case("openllmetry-openai-stream-without-usage", spans_with_usage=0)
def _stream_without_usage(p: Pipelines, stub: StubProvider) -> None:
    with usage(stub, chat_usage=C_USAGE), instrumented(p.provider, "openllmetry-openai"):
        for _ in openai_client(stub).chat.completions.create(
                model="gpt-4o-mini", messages=MSGS, stream=True):
            pass
    return None  # no usage chunk was asked for: no_usage, never $0


@case("openllmetry-openai-zero-usage", spans_with_usage=0)
def _zero_usage(p: Pipelines, stub: StubProvider) -> None:
    with usage(stub, chat_usage=ChatUsage(prompt_tokens=0, completion_tokens=0)), \
            instrumented(p.provider, "openllmetry-openai"):
        openai_client(stub).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    return None  # a 0/0 answer: no_usage


# -- bedrock -------------------------------------------------------------------------------------

def bedrock_client(stub: StubProvider) -> Any:
    import boto3

    return boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=stub.root_url,
                        aws_access_key_id="stub", aws_secret_access_key="stub")


B_USAGE = AnthropicUsage(input_tokens=3000, output_tokens=200, cache_read_input_tokens=1000,
                         cache_creation_input_tokens=0)


@case("openllmetry-bedrock-converse-nova")
def _bedrock_nova(p: Pipelines, stub: StubProvider) -> Expected:
    # OpenLLMetry strips the vendor ("nova-pro-v1:0"); Converse input EXCLUDES the cache
    with usage(stub, anthropic_usage=B_USAGE), instrumented(p.provider, "openllmetry-bedrock"):
        bedrock_client(stub).converse(modelId="amazon.nova-pro-v1:0",
                                      messages=[{"role": "user", "content": [{"text": "hi"}]}])
    return Expected("aws", "amazon.nova-pro-v1:0", 4000, 200, 1000)


@case("openllmetry-bedrock-converse-llama-cross-region")
def _bedrock_llama(p: Pipelines, stub: StubProvider) -> Expected:
    with usage(stub, anthropic_usage=AnthropicUsage(input_tokens=2500, output_tokens=300)), \
            instrumented(p.provider, "openllmetry-bedrock"):
        bedrock_client(stub).converse(modelId="us.meta.llama3-1-70b-instruct-v1:0",
                                      messages=[{"role": "user", "content": [{"text": "hi"}]}])
    return Expected("aws", "meta.llama3-1-70b-instruct-v1:0", 2500, 300)


def run_case(c: Case, p: Pipelines, stub: StubProvider) -> Expected | None:
    """Run one case, inside its app span unless it stands alone."""
    if not c.rooted:
        return c.run(p, stub)
    with p.tracer().start_as_current_span(f"case {c.name}"):
        return c.run(p, stub)
