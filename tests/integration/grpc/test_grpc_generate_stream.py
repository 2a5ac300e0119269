"""GenerateStream against a real server process on the tiny model: order, finish, parameters."""

from __future__ import annotations

import grpc
import pytest
from openai import AsyncOpenAI
from sentiric_inference.client import (
    AsyncLlamaClient,
    Finish,
    GenerationOptions,
    LlamaClient,
    TextChunk,
    Turn,
)
from sentiric_inference.grpc_api.gen import llama_pb2, llama_pb2_grpc

from tests.support.server import ServerHandle

pytestmark = pytest.mark.model

GREEDY = GenerationOptions(temperature=0.0, max_new_tokens=24)


async def test_tokens_stream_in_order_then_exactly_one_finish(tiny_server: ServerHandle) -> None:
    request = llama_pb2.GenerateStreamRequest(
        user_prompt="Tell me a story.",
        params=llama_pb2.GenerationParams(max_new_tokens=20, temperature=0.0),
    )
    async with grpc.aio.insecure_channel(tiny_server.grpc_target) as channel:
        stub = llama_pb2_grpc.LlamaServiceStub(channel)
        responses = [r async for r in stub.GenerateStream(request, timeout=60)]
    kinds = [r.WhichOneof("type") for r in responses]
    assert kinds[-1] == "finish_details"
    assert kinds.count("finish_details") == 1
    assert set(kinds[:-1]) == {"token"} and len(kinds) > 2
    finish = responses[-1].finish_details
    assert finish.finish_reason == "length"
    assert finish.completion_tokens == 20
    assert finish.prompt_tokens > 5
    # The server only sends whole characters, so the bytes form valid UTF-8.
    text = b"".join(r.token for r in responses[:-1]).decode("utf-8")
    async with AsyncLlamaClient(tiny_server.grpc_target) as client:
        again = await client.generate(
            "Tell me a story.", options=GenerationOptions(max_new_tokens=20, temperature=0.0)
        )
    assert again.text == text


async def test_seed_makes_sampling_reproducible(tiny_server: ServerHandle) -> None:
    def options(seed: int) -> GenerationOptions:
        return GenerationOptions(temperature=1.0, top_k=0, top_p=1.0, seed=seed, max_new_tokens=24)

    async with AsyncLlamaClient(tiny_server.grpc_target) as client:
        first = await client.generate("Pick words.", options=options(1234))
        second = await client.generate("Pick words.", options=options(1234))
        others = [await client.generate("Pick words.", options=options(s)) for s in (1, 2, 3)]
    assert first.text == second.text
    assert any(other.text != first.text for other in others)


async def test_top_p_is_honoured(tiny_server: ServerHandle) -> None:
    # A tiny nucleus keeps only the most likely token: hot sampling turns greedy.
    async with AsyncLlamaClient(tiny_server.grpc_target) as client:
        greedy = await client.generate("Say something.", options=GREEDY)
        nucleus = await client.generate(
            "Say something.",
            options=GenerationOptions(
                temperature=1.5, top_k=0, top_p=1e-6, seed=99, max_new_tokens=24
            ),
        )
    assert nucleus.text == greedy.text


async def test_stop_sequences_end_the_stream_before_the_match(tiny_server: ServerHandle) -> None:
    async with AsyncLlamaClient(tiny_server.grpc_target) as client:
        free = await client.generate("Keep going.", options=GREEDY)
        assert len(free.text) > 8, free
        stop = free.text[5:8]
        cut = free.text.index(stop)
        stopped = await client.generate(
            "Keep going.",
            options=GenerationOptions(temperature=0.0, max_new_tokens=24, stop_sequences=[stop]),
        )
    assert stopped.finish.reason == "stop"
    assert stopped.text == free.text[:cut]
    assert stopped.finish.completion_tokens < free.finish.completion_tokens


async def test_prompt_parts_build_the_same_prompt_as_http(tiny_server: ServerHandle) -> None:
    history = [Turn("user", "Hello there."), Turn("assistant", "Hi! How can I help?")]
    async with AsyncLlamaClient(tiny_server.grpc_target) as client:
        plain = await client.generate("What is new?", options=GREEDY)
        full = await client.generate(
            "What is new?", system_prompt="Answer in one line.", history=history, options=GREEDY
        )
        rag = await client.generate(
            "What is new?", rag_context="The release ships on Friday.", options=GREEDY
        )
    assert full.finish.prompt_tokens > plain.finish.prompt_tokens
    assert rag.finish.prompt_tokens > plain.finish.prompt_tokens
    # The same conversation through the OpenAI API: same prompt, so same tokens and text.
    openai = AsyncOpenAI(base_url=tiny_server.openai_base_url, api_key="unused", max_retries=0)
    async with openai:
        model = (await openai.models.list()).data[0].id
        reply = await openai.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": "Answer in one line."},
                {"role": "user", "content": "Hello there."},
                {"role": "assistant", "content": "Hi! How can I help?"},
                {"role": "user", "content": "What is new?"},
            ],
            temperature=0.0,
            max_tokens=24,
        )
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == full.finish.prompt_tokens
    assert reply.choices[0].message.content == full.text


def test_blocking_client_streams_and_can_stop_early(tiny_server: ServerHandle) -> None:
    with LlamaClient(tiny_server.grpc_target) as client:
        events = list(client.stream("Count.", options=GREEDY, timeout=60))
        assert isinstance(events[-1], Finish) and events[-1].reason == "length"
        assert all(isinstance(e, TextChunk) for e in events[:-1])
        stream = client.stream("Count.", options=GenerationOptions(max_new_tokens=2000))
        first = next(stream)
        stream.close()  # cancels the call
        assert isinstance(first, TextChunk)
        completion = client.generate("Count.", options=GREEDY, trace_id="sync-client")
    assert completion.text == "".join(e.text for e in events[:-1] if isinstance(e, TextChunk))
    assert completion.time_to_first_token is not None
    assert completion.time_to_first_token <= completion.duration
